/** The server over S3 (Ceph's radosgw, started here): the backend contract holds unchanged. */
import test from 'ava';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
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

// Serial: it kills the gateway the other tests of this file share, and ava starts concurrent tests only after the
// serial ones (before, the backend suite's tests failed now and then with ECONNREFUSED while it was down).
test.serial('radosgw stopped in the middle of a backup: a clear error, a valid repository, and the next run completes', async (t) => {
  if (!requireCeph(t)) return;
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const port = await freePort();
  const env = testEnv({ ...rgw!.env, STOWAGE_CONFIG_DIR: path.join(work, 'cfg'), STOWAGE_CACHE_DIR: path.join(work, 'cache'), STOWAGE_RETRY_SECONDS: '2' });
  const store = ['--store', `s3://stowage-kill/${randomBytes(4).toString('hex')}`];
  const server = await spawnServerWith(dataDir, port, env, store);
  t.teardown(() => server.stop());
  // Tokens live with the objects in the bucket: added with the same --store.
  const add = await stowage(['serve', '--data', dataDir, ...store, '--json', 'token', 'add', '--repo', 'web1', '--role', 'append'], env);
  const clientEnv = { ...env, STOWAGE_TOKEN: JSON.parse(add.stdout.trim()).token as string, STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  const url = `${server.url}/web1`;
  t.is((await stowage(['-r', url, 'init'], clientEnv)).code, 0);
  const src = path.join(work, 'src');
  // Enough data that the backup is still uploading when the gateway dies: once the first pack is stored, about
  // twenty are still to come, which take longer than the kill does even when the machine is busy.
  generate(src, 320);
  const first = stowage(['-r', url, 'backup', src], clientEnv);
  while (!/"status":201.*"type":"data"|"type":"data".*"status":201/.test(server.log())) await new Promise((r) => setTimeout(r, 20));
  await rgw!.killGateway();
  const failed = await first;
  await rgw!.startGateway();
  t.is(failed.code, 14, failed.stderr);
  t.regex(failed.stderr, /object store failed|cannot reach|state \(\w+\.json\) cannot be read/);
  t.notRegex(failed.stderr, /warning:/, 'a store failure ends the run rather than becoming a warning per file');
  const second = await stowage(['-r', url, 'backup', src], clientEnv);
  t.is(second.code, 0, second.stderr);
  const restored = await stowage(['-r', url, 'restore', 'latest', '--target', path.join(work, 'out')], clientEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
  t.is((await stowage(['-r', url, 'check', '--read-data'], clientEnv)).code, 0);
});

test('two servers over one bucket: backup through one and restore through the other, concurrent backups, a revocation seen by both', async (t) => {
  if (!requireCeph(t)) return;
  const work = await tempDir(t);
  const env = testEnv({ ...rgw!.env, STOWAGE_CONFIG_DIR: path.join(work, 'cfg'), STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const store = ['--store', `s3://stowage-shared/${randomBytes(4).toString('hex')}`];
  const a = await spawnServerWith(path.join(work, 'a'), await freePort(), env, store);
  const b = await spawnServerWith(path.join(work, 'b'), await freePort(), env, store);
  t.teardown(() => Promise.all([a.stop(), b.stop()]).then(() => {}));
  // Added through server a's side of the store; server b has never seen a token file.
  const add = await stowage(['serve', '--data', path.join(work, 'a'), ...store, '--json', 'token', 'add', '--repo', 'web1', '--role', 'append'], env);
  t.is(add.code, 0, add.stderr);
  const token = JSON.parse(add.stdout.trim()).token as string;
  const via = (s: typeof a): NodeJS.ProcessEnv => ({ ...env, STOWAGE_TOKEN: token, STOWAGE_SERVER_FINGERPRINT: s.fingerprint, STOWAGE_CACHE_DIR: path.join(work, `cache-${s.url.split(':').at(-1)}`) });
  t.is((await stowage(['-r', `${a.url}/web1`, 'init'], via(a))).code, 0);
  const srcs = [path.join(work, 'one'), path.join(work, 'two')];
  generate(srcs[0]!, 16, 81);
  generate(srcs[1]!, 16, 82);
  const [r1, r2] = await Promise.all([stowage(['-r', `${a.url}/web1`, 'backup', srcs[0]!], via(a)), stowage(['-r', `${b.url}/web1`, 'backup', srcs[1]!], via(b))]);
  t.is(r1.code, 0, r1.stderr);
  t.is(r2.code, 0, r2.stderr);
  for (const [i, src] of srcs.entries()) {
    // Each restored through the server it was not backed up through.
    const other = i === 0 ? b : a;
    const snaps = JSON.parse((await stowage(['-r', `${other.url}/web1`, '--json', 'snapshots', '--path', src], via(other))).stdout) as { id: string }[];
    const out = path.join(work, `out${i}`);
    const res = await stowage(['-r', `${other.url}/web1`, 'restore', snaps[0]!.id, '--target', out], via(other));
    t.is(res.code, 0, res.stderr);
    t.deepEqual(compareTrees(src, path.join(out, src)), []);
  }
  const id = token.split('_')[1]!;
  t.is((await stowage(['serve', '--data', path.join(work, 'a'), ...store, 'token', 'revoke', id], env)).code, 0);
  // Documented cache lifetime of shared state: 5 s.
  await new Promise((r) => setTimeout(r, 5500));
  for (const s of [a, b]) {
    const refused = await stowage(['-r', `${s.url}/web1`, 'snapshots'], via(s));
    t.is(refused.code, 15, `${s.url}: ${refused.stderr}`);
  }
});

test('serve scrub re-hashes the objects in the S3 store and names a damaged one', async (t) => {
  if (!requireCeph(t)) return;
  const prefix = randomBytes(4).toString('hex');
  const store = new S3Store(s3ClientFromEnv(rgw!.env), { bucket: 'stowage-scrub', prefix: `${prefix}/` });
  await store.open();
  const server = await startTestServer(t, { store });
  const be = await server.backend('web', 'append');
  await be.create();
  const blobs = [randomBytes(3000), randomBytes(4000)];
  const name = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  for (const b of blobs) await be.save({ type: 'data', name: name(b) }, b);
  const env = testEnv(rgw!.env);
  const args = ['serve', '--data', server.dataDir, '--store', `s3://stowage-scrub/${prefix}`, 'scrub'];
  t.is((await stowage(args, env)).code, 0);
  // Rot: the stored bytes change behind the server's back.
  await s3ClientFromEnv(rgw!.env).send(new PutObjectCommand({ Bucket: 'stowage-scrub', Key: `${prefix}/web/data/${name(blobs[1]!)}`, Body: randomBytes(4000) }));
  const rot = await stowage(args, env);
  t.is(rot.code, 13, rot.stderr);
  t.regex(rot.stdout, new RegExp(`damaged: web: data/${name(blobs[1]!)}`));
});
