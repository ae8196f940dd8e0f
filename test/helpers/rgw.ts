/** Ceph's radosgw for tests (test/helpers/rgw.sh), once per test file; skipped without Ceph unless CI is set. */
import type { ExecutionContext } from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './dataset.ts';
import { freePort } from './server.ts';

const run = promisify(execFile);
const SCRIPT = path.join(PROJECT_ROOT, 'test/helpers/rgw.sh');

export interface Rgw {
  readonly env: Record<string, string>;
  readonly dir: string;
  stop(): Promise<void>;
  /** Kills radosgw only (the cluster stays), to simulate the store going away. */
  killGateway(): Promise<void>;
  /** Starts radosgw again on the same port. */
  startGateway(): Promise<void>;
}

export function haveCeph(): boolean {
  return spawnSync('sh', ['-c', 'command -v ceph-mon && command -v ceph-osd && command -v radosgw'], { stdio: 'ignore' }).status === 0;
}

export function requireCeph(t: ExecutionContext): boolean {
  if (haveCeph()) return true;
  if (process.env['CI']) t.fail('Ceph is missing (apt-get install ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl)');
  else {
    t.log('skipped: Ceph is not installed');
    t.pass();
  }
  return false;
}

export async function startRgw(): Promise<Rgw> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rgw-'));
  const env = { ...process.env, RGW_DATA: dir, RGW_PORT: String(await freePort()), MON_PORT: String(await freePort()) };
  const { stdout } = await run(SCRIPT, ['start'], { env, maxBuffer: 1 << 20 });
  const vars = Object.fromEntries(stdout.split('\n').filter((l) => /^[A-Z_0-9]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return {
    env: vars,
    dir,
    stop: async () => {
      await run(SCRIPT, ['stop'], { env });
    },
    killGateway: async () => {
      await run('sh', ['-c', `kill -9 $(cat ${dir}/run/client.rgw.a.pid); rm -f ${dir}/run/client.rgw.a.pid`]);
    },
    startGateway: async () => {
      await run('sh', ['-c', `CEPH_CONF=${dir}/ceph.conf radosgw -n client.rgw.a && for i in $(seq 1 300); do curl -s -o /dev/null ${vars['S3_ENDPOINT']}/ && exit 0; sleep 0.2; done; exit 1`]);
    },
  };
}
