/** `copy` to a second repository (here a real server) with its own key. */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STOWAGE, stowage, testEnv } from './helpers/cli.ts';
import { generate } from './helpers/dataset.ts';
import { startTestServer } from './helpers/server.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

test('copy to a second server: restores from the target alone, a second copy uploads nothing, an interrupted copy resumes', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'src');
  generate(src, 48, 91);
  const source = path.join(work, 'source');
  const env = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache'), STOWAGE_CONFIG_DIR: path.join(work, 'cfg') });
  t.is((await stowage(['-r', source, 'init'], env)).code, 0);
  t.is((await stowage(['-r', source, 'backup', src], env)).code, 0);

  const server = await startTestServer(t);
  const target = `${server.url}/offsite`;
  const targetEnv = { ...env, STOWAGE_PASSWORD: 'another passphrase', STOWAGE_TOKEN: await server.token('offsite', 'append'), STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  t.is((await stowage(['-r', target, 'init'], targetEnv)).code, 0);
  const copyEnv = { ...env, STOWAGE_TO_PASSWORD: 'another passphrase', STOWAGE_TO_TOKEN: targetEnv.STOWAGE_TOKEN, STOWAGE_TO_SERVER_FINGERPRINT: server.fingerprint };

  // Interrupted first: killed once a pack has landed on the target, then run again.
  const packs = (): string[] =>
    fs.existsSync(path.join(server.dataDir, 'repos', 'offsite', 'data'))
      ? fs.readdirSync(path.join(server.dataDir, 'repos', 'offsite', 'data'), { recursive: true }).map(String).filter((n) => /[0-9a-f]{64}$/.test(n))
      : [];
  await new Promise<void>((resolve) => {
    const child = spawn(STOWAGE, ['-r', source, 'copy', '--to', target], { env: copyEnv, stdio: 'ignore' });
    const poll = setInterval(() => {
      if (packs().length > 0) child.kill('SIGKILL');
    }, 10);
    child.on('close', () => {
      clearInterval(poll);
      resolve();
    });
  });
  const landed = packs().length;
  t.true(landed > 0);
  const first = await stowage(['-r', source, '--json', 'copy', '--to', target], copyEnv);
  t.is(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout.trim().split('\n').at(-1)!) as { copied: unknown[]; bytesUploaded: number };
  t.is(r1.copied.length, 1);
  const stored = packs().reduce((n, p) => n + fs.statSync(path.join(server.dataDir, 'repos', 'offsite', 'data', p)).size, 0);
  t.log(`${landed} pack(s) landed before the kill; the resumed copy uploaded ${r1.bytesUploaded} of ${stored} bytes`);
  t.true(r1.bytesUploaded < stored, 'what landed before the kill is not uploaded again');

  const out = path.join(work, 'out');
  const restored = await stowage(['-r', target, 'restore', 'latest', '--target', out], targetEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(out, src)), []);

  const again = await stowage(['-r', source, '--json', 'copy', '--to', target], copyEnv);
  t.is(again.code, 0, again.stderr);
  const r2 = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { copied: unknown[]; skipped: unknown[]; bytesUploaded: number };
  t.deepEqual(r2.copied, []);
  t.is(r2.skipped.length, 1);
  t.is(r2.bytesUploaded, 0, 'a second copy uploads nothing');
  // The target's check reads and authenticates everything under its own key.
  t.is((await stowage(['-r', target, 'check', '--read-data'], targetEnv)).code, 0);
});
