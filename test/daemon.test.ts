/**
 * Nightly operations: the config file, the daemon against a real server,
 * retries through an outage, notifications and metrics.
 */
import test, { type ExecutionContext } from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { STOWAGE, stowage, testEnv } from './helpers/cli.ts';
import { freePort, spawnServer } from './helpers/server.ts';
import { tempDir } from './helpers/tmp.ts';

interface Webhook {
  readonly url: string;
  readonly received: Record<string, unknown>[];
}

/** A plain-HTTP receiver on loopback standing in for the operator's webhook. */
async function webhook(t: ExecutionContext): Promise<Webhook> {
  const received: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

interface Daemon {
  readonly child: ChildProcess;
  readonly events: Record<string, unknown>[];
  waitFor(pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<number | null>;
}

function startDaemon(t: ExecutionContext, config: string, env: NodeJS.ProcessEnv): Daemon {
  const child = spawn(STOWAGE, ['daemon', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l.trim()) events.push(JSON.parse(l) as Record<string, unknown>);
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    events,
    waitFor: async (pred, timeoutMs = 90_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`daemon event not seen; events: ${JSON.stringify(events).slice(-3000)} stderr: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: async () => {
      child.kill('SIGTERM');
      return await exited;
    },
  };
}

function promText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.eE+-]+|NaN)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function setup(t: ExecutionContext) {
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const port = await freePort();
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'cfg'), STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const server = await spawnServer(dataDir, port, env);
  const add = await stowage(['serve', '--data', dataDir, '--json', 'token', 'add', '--repo', 'web1', '--role', 'admin'], env);
  const tokenFile = path.join(work, 'token');
  fs.writeFileSync(tokenFile, JSON.parse(add.stdout.trim()).token as string, { mode: 0o600 });
  const passFile = path.join(work, 'pass');
  fs.writeFileSync(passFile, 'test passphrase\n', { mode: 0o600 });
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'a.txt'), 'hello');
  const url = `${server.url}/web1`;
  const base = { ...env, STOWAGE_PASSWORD: undefined } as NodeJS.ProcessEnv;
  delete base['STOWAGE_PASSWORD'];
  const init = await stowage(['-r', url, '--token-file', tokenFile, '--password-file', passFile, '--server-fingerprint', server.fingerprint, 'init'], base);
  if (init.code !== 0) throw new Error(init.stderr);
  return { work, dataDir, port, env: base, server, tokenFile, passFile, src, url };
}

function writeConfig(file: string, s: Awaited<ReturnType<typeof setup>>, extra: string): void {
  fs.writeFileSync(
    file,
    `repository: ${s.url}
server_fingerprint: "${s.server.fingerprint}"
token_file: ${s.tokenFile}
password_file: ${s.passFile}
state_dir: ${path.join(s.work, 'state')}
${extra}`,
  );
}

test('the daemon runs backups and a prune on schedule, notifies, and its metrics move', async (t) => {
  const s = await setup(t);
  t.teardown(() => s.server.stop());
  const hook = await webhook(t);
  const config = path.join(s.work, 'config.yaml');
  writeConfig(
    config,
    s,
    `jobs:
  - name: files
    schedule: "*/2 * * * * *"
    paths: [${s.src}]
    forget: { keep_last: 1, prune: true }
notifications:
  webhook: ${hook.url}
  on: [success, partial, failure]
metrics:
  listen: 127.0.0.1:0
`,
  );
  const check = await stowage(['config', 'check', '--config', config], s.env);
  t.is(check.code, 0, check.stderr);
  const d = startDaemon(t, config, s.env);
  const port = (await d.waitFor((e) => e['event'] === 'metrics'))['port'] as number;
  const scrape = async (): Promise<Map<string, number>> => promText(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  await d.waitFor((e) => e['event'] === 'finish' && e['result'] === 'success');
  const first = await scrape();
  fs.writeFileSync(path.join(s.src, 'b.txt'), 'second night');
  await d.waitFor((e) => e['event'] === 'finish' && e['result'] === 'success' && d.events.filter((x) => x['event'] === 'finish').length >= 2);
  const second = await scrape();
  const runs = (m: Map<string, number>): number => m.get('stowage_job_runs_total{job="files",kind="backup",result="success"}') ?? 0;
  t.true(runs(second) > runs(first), `runs moved: ${runs(first)} → ${runs(second)}`);
  t.true((second.get('stowage_job_last_success_timestamp_seconds{job="files",kind="backup"}') ?? 0) > Date.now() / 1000 - 60);
  t.is(await d.stop(), 0);
  const finished = d.events.filter((e) => e['event'] === 'finish');
  t.true(finished.length >= 2);
  t.regex(String(finished[0]!['message']), /forget and prune done/);
  t.true(hook.received.length >= 2 && hook.received.every((r) => r['job'] === 'files'));
  const snaps = JSON.parse((await stowage(['-r', s.url, '--token-file', s.tokenFile, '--password-file', s.passFile, '--json', 'snapshots'], s.env)).stdout) as unknown[];
  t.is(snaps.length, 1, 'forget --keep-last 1 with prune ran after the backups');
  const status = await stowage(['status', '--config', config, '--max-age', '1h'], s.env);
  t.is(status.code, 0, status.stdout);
  const stale = await stowage(['status', '--config', config, '--max-age', '1ms'], s.env);
  t.is(stale.code, 19);
});

test('a server down at schedule time and up 20 s later: the run retries and succeeds; down past the deadline: the failure is notified with its cause', async (t) => {
  const s = await setup(t);
  await s.server.stop();
  const hook = await webhook(t);
  const config = path.join(s.work, 'config.yaml');
  writeConfig(
    config,
    s,
    `jobs:
  - name: patient
    schedule: "*/2 * * * * *"
    paths: [${s.src}]
    retry_for: 90s
notifications:
  webhook: ${hook.url}
  on: [success, failure]
`,
  );
  const d = startDaemon(t, config, s.env);
  await d.waitFor((e) => e['event'] === 'start');
  await new Promise((r) => setTimeout(r, 20_000));
  const server = await spawnServer(s.dataDir, s.port, s.env);
  t.teardown(() => server.stop());
  const done = await d.waitFor((e) => e['event'] === 'finish', 120_000);
  t.is(done['result'], 'success', JSON.stringify(done));
  t.is(await d.stop(), 0);
  t.is(hook.received[0]?.['result'], 'success');

  await server.stop();
  const config2 = path.join(s.work, 'config2.yaml');
  writeConfig(config2, s, `jobs:\n  - name: impatient\n    schedule: "*/2 * * * * *"\n    paths: [${s.src}]\n    retry_for: 4s\nnotifications:\n  webhook: ${hook.url}\n  on: [success]\n`);
  const d2 = startDaemon(t, config2, s.env);
  const failed = await d2.waitFor((e) => e['event'] === 'finish', 60_000);
  t.is(failed['result'], 'failure');
  await d2.stop();
  const note = hook.received.find((r) => r['job'] === 'impatient')!;
  t.is(note['result'], 'failure', 'failures notify even when "on" leaves them out');
  t.regex(String(note['message']), /unreachable until the deadline .*cannot reach the server at 127\.0\.0\.1:\d+/);
});

const badConfigs: [string, (s: Awaited<ReturnType<typeof setup>>) => string, RegExp][] = [
  ['unknown key', (s) => `repository: ${s.url}\npassword_file: ${s.passFile}\njobs:\n  - name: a\n    schedule: "0 2 * * *"\n    paths: [/srv]\n    keep_dayly: 7\n`, /config\.yaml:7:5: unknown key "jobs\.0\.keep_dayly": check its spelling/],
  ['a secret written inline', (s) => `repository: ${s.url}\npassword: hunter2\njobs:\n  - name: a\n    schedule: "0 2 * * *"\n    paths: [/srv]\n`, /config\.yaml:2:1: unknown key "password": secrets are never written in the config: use password_file or password_command/],
  ['wrong type', (s) => `repository: ${s.url}\npassword_file: ${s.passFile}\njobs:\n  - name: a\n    schedule: "0 2 * * *"\n    paths: /srv\n`, /config\.yaml:6:12: jobs\.0\.paths: .*array/i],
  ['a bad schedule', (s) => `repository: ${s.url}\npassword_file: ${s.passFile}\njobs:\n  - name: a\n    schedule: "every night"\n    paths: [/srv]\n`, /config\.yaml:5:15: jobs\.0\.schedule: a cron expression/],
  ['missing secret file', (s) => `repository: ${s.url}\npassword_file: ${s.work}/nope\njobs:\n  - name: a\n    schedule: "0 2 * * *"\n    paths: [/srv]\n`, /config\.yaml:2:16: password_file: .*nope does not exist or cannot be read; create it \(mode 0600\) or fix the path/],
  ['unreachable repository', (s) => `repository: https://127.0.0.1:1/web1\npassword_file: ${s.passFile}\ntoken_file: ${s.tokenFile}\nserver_fingerprint: "${s.server.fingerprint}"\njobs:\n  - name: a\n    schedule: "0 2 * * *"\n    paths: [/srv]\n`, /repository: https:\/\/127\.0\.0\.1:1\/web1 cannot be opened with this config: cannot reach the server/],
];

test('bad config: each kind of error names the line, the key and the fix', async (t) => {
  const s = await setup(t);
  t.teardown(() => s.server.stop());
  for (const [what, text, expected] of badConfigs) {
    const file = path.join(s.work, 'config.yaml');
    fs.writeFileSync(file, text(s));
    const r = await stowage(['config', 'check', '--config', file], s.env);
    t.is(r.code, 2, `${what}: ${r.stderr}`);
    t.regex(r.stderr, expected, what);
  }
});

test('the server exposes Prometheus metrics that move with requests and auth failures', async (t) => {
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'cfg') });
  const metricsPort = await freePort();
  const port = await freePort();
  const child = spawn(STOWAGE, ['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  while (!/fingerprint \(SHA-256\): ([0-9A-F:]{95})/.test(err)) await new Promise((r) => setTimeout(r, 50));
  const fp = /fingerprint \(SHA-256\): ([0-9A-F:]{95})/.exec(err)![1]!;
  const scrape = async (): Promise<Map<string, number>> => promText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
  const before = await scrape();
  const token = JSON.parse((await stowage(['serve', '--data', dataDir, '--json', 'token', 'add', '--repo', 'r', '--role', 'append'], env)).stdout.trim()).token as string;
  const url = `https://127.0.0.1:${port}/r`;
  t.is((await stowage(['-r', url, 'init'], { ...env, STOWAGE_TOKEN: token, STOWAGE_SERVER_FINGERPRINT: fp })).code, 0);
  await stowage(['-r', url, 'snapshots'], { ...env, STOWAGE_TOKEN: token.slice(0, -3) + 'AAA', STOWAGE_SERVER_FINGERPRINT: fp });
  const after = await scrape();
  t.true((after.get('stowage_server_auth_failures_total') ?? 0) > (before.get('stowage_server_auth_failures_total') ?? 0));
  t.true([...after.keys()].some((k) => k.startsWith('stowage_server_requests_total{status="201"}')));
  t.true((after.get('stowage_server_stored_bytes{repo="r"}') ?? 0) > 0);
});

test('the commented example config is a valid config', async (t) => {
  const { configFileSchema } = await import('../core/config-file.ts');
  const { parse } = await import('yaml');
  const { PROJECT_ROOT } = await import('./helpers/dataset.ts');
  const parsed = configFileSchema.safeParse(parse(fs.readFileSync(path.join(PROJECT_ROOT, 'examples/config.yaml'), 'utf8')));
  t.true(parsed.success, JSON.stringify(parsed.error?.issues));
});

test('a copy job sends the snapshots to a second repository on schedule', async (t) => {
  const s = await setup(t);
  t.teardown(() => s.server.stop());
  t.is((await stowage(['-r', s.url, '--token-file', s.tokenFile, '--password-file', s.passFile, 'backup', s.src], s.env)).code, 0);
  const offsite = path.join(s.work, 'offsite');
  const offsitePass = path.join(s.work, 'offsite-pass');
  fs.writeFileSync(offsitePass, 'offsite passphrase\n', { mode: 0o600 });
  t.is((await stowage(['-r', offsite, '--password-file', offsitePass, 'init'], s.env)).code, 0);
  const config = path.join(s.work, 'config.yaml');
  writeConfig(config, s, `jobs:\n  - name: offsite\n    schedule: "*/2 * * * * *"\n    copy_to:\n      repository: ${offsite}\n      password_file: ${offsitePass}\n`);
  const d = startDaemon(t, config, s.env);
  const done = await d.waitFor((e) => e['event'] === 'finish');
  t.is(done['result'], 'success', JSON.stringify(done));
  t.regex(String(done['message']), /copy to .* completed/);
  await d.stop();
  const out = path.join(s.work, 'out');
  const r = await stowage(['-r', offsite, '--password-file', offsitePass, 'restore', 'latest', '--target', out], s.env);
  t.is(r.code, 0, r.stderr);
  t.is(fs.readFileSync(path.join(out, s.src, 'a.txt'), 'utf8'), 'hello');
});
