/** The server over S3 (Ceph's radosgw, started here): the backend contract holds unchanged. */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { S3Store, s3ClientFromEnv } from '../server/s3-store.ts';
import { backendSuite } from './helpers/backend-suite.ts';
import { type Rgw, haveCeph, requireCeph, startRgw } from './helpers/rgw.ts';
import * as path from 'node:path';
import { stowage, testEnv } from './helpers/cli.ts';
import { generate } from './helpers/dataset.ts';
import { freePort, spawnServerWith, startTestServer } from './helpers/server.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

let rgw: Rgw | null = null;

test.before(async () => {
  if (haveCeph()) rgw = await startRgw();
});
test.after.always(async () => {
  await rgw?.stop();
});

backendSuite(test, 'https server on S3', async (t) => {
  if (!requireCeph(t)) throw new Error('Ceph is not installed');
  const store = new S3Store(s3ClientFromEnv(rgw!.env), { bucket: 'stowage-suite', prefix: `${randomBytes(6).toString('hex')}/` });
  await store.open();
  const server = await startTestServer(t, { store });
  const be = await server.backend('suite', 'admin');
  await be.create();
  return be;
});

test('radosgw stopped in the middle of a backup: a clear error, a valid repository, and the next run completes', async (t) => {
  if (!requireCeph(t)) return;
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const port = await freePort();
  const env = testEnv({ ...rgw!.env, STOWAGE_CONFIG_DIR: path.join(work, 'cfg'), STOWAGE_CACHE_DIR: path.join(work, 'cache'), STOWAGE_RETRY_SECONDS: '2' });
  const server = await spawnServerWith(dataDir, port, env, ['--store', `s3://stowage-kill/${randomBytes(4).toString('hex')}`]);
  t.teardown(() => server.stop());
  const add = await stowage(['serve', '--data', dataDir, '--json', 'token', 'add', '--repo', 'web1', '--role', 'append'], env);
  const clientEnv = { ...env, STOWAGE_TOKEN: JSON.parse(add.stdout.trim()).token as string, STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  const url = `${server.url}/web1`;
  t.is((await stowage(['-r', url, 'init'], clientEnv)).code, 0);
  const src = path.join(work, 'src');
  generate(src, 120);
  const first = stowage(['-r', url, 'backup', src], clientEnv);
  while (!/"status":201.*"type":"data"|"type":"data".*"status":201/.test(server.log())) await new Promise((r) => setTimeout(r, 20));
  await rgw!.killGateway();
  const failed = await first;
  await rgw!.startGateway();
  t.is(failed.code, 14, failed.stderr);
  t.regex(failed.stderr, /object store failed|cannot reach/);
  const second = await stowage(['-r', url, 'backup', src], clientEnv);
  t.is(second.code, 0, second.stderr);
  const restored = await stowage(['-r', url, 'restore', 'latest', '--target', path.join(work, 'out')], clientEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
  t.is((await stowage(['-r', url, 'check', '--read-data'], clientEnv)).code, 0);
});
