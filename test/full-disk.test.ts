import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalBackend } from '../core/backends/local.ts';
import { NoSpaceError, errnoCode } from '../core/errors.ts';
import { stowage } from './helpers/cli.ts';
import { leftoverTemps } from './helpers/files.ts';
import { tempDir } from './helpers/tmp.ts';

/**
 * A small ext4 file system of its own (a loop mount: root only), so that the
 * disk really fills: packs are written there with O_DIRECT, and the data
 * directories are made there, each of which can be what hits ENOSPC.
 */
async function smallDisk(t: ExecutionContext, mib: number): Promise<string | null> {
  const dir = await tempDir(t);
  const image = path.join(dir, 'disk.img');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  try {
    fs.writeFileSync(image, '');
    fs.truncateSync(image, mib * 1024 * 1024);
    execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', image, mnt], { stdio: 'ignore' });
  } catch (e) {
    // Under CI the machine is known to allow it: a failure to mount is a failure there.
    if (process.env['CI']) t.fail(`cannot loop-mount a file system here: ${String(e)}`);
    else t.pass('no loop mount here (needs root)');
    return null;
  }
  t.teardown(() => execFileSync('umount', [mnt]));
  return mnt;
}

test('a full repository disk fails the backup with its own exit code and message, keeps the repository valid, and the next backup after freeing space succeeds', async (t) => {
  const mnt = await smallDisk(t, 48);
  if (!mnt) return;
  const repo = path.join(mnt, 'repo');
  const src = path.join(await tempDir(t), 'src');
  fs.mkdirSync(src);
  const first = randomBytes(12 * 1024 * 1024);
  fs.writeFileSync(path.join(src, 'first.bin'), first);
  t.is((await stowage(['init', '--repo', repo])).code, 0);
  t.is((await stowage(['backup', '--repo', repo, src])).code, 0);

  // Random data does not compress: 60 MiB cannot fit in what is left of 48.
  fs.writeFileSync(path.join(src, 'big.bin'), randomBytes(60 * 1024 * 1024));
  const full = await stowage(['backup', '--repo', repo, src]);
  t.is(full.code, 16, full.stderr);
  t.regex(full.stderr, /no space left on the repository's disk while writing data\/[0-9a-f]{64}; free space and run again/);
  t.notRegex(full.stderr, /bug/);
  t.deepEqual(leftoverTemps(repo), [], 'no partial pack is left');

  // What the repository held before is whole: check reads every pack, and the first snapshot restores.
  const check = await stowage(['check', '--read-data', '--repo', repo]);
  t.is(check.code, 0, check.stdout + check.stderr);
  const target = await tempDir(t);
  t.is((await stowage(['restore', '--repo', repo, 'latest', '--target', target])).code, 0);
  t.true(fs.readFileSync(path.join(target, src, 'first.bin')).equals(first));

  // With the big file gone there is room again; the packs the failed run left are adopted, not in the way.
  fs.rmSync(path.join(src, 'big.bin'));
  fs.writeFileSync(path.join(src, 'second.bin'), 'after the disk was full\n');
  const again = await stowage(['backup', '--repo', repo, src]);
  t.is(again.code, 0, again.stderr);
  const target2 = await tempDir(t);
  t.is((await stowage(['restore', '--repo', repo, 'latest', '--target', target2])).code, 0);
  t.is(fs.readFileSync(path.join(target2, src, 'second.bin'), 'utf8'), 'after the disk was full\n');
});

test('a disk too full for a new pack directory is the same no-space error as one too full for the pack', async (t) => {
  const mnt = await smallDisk(t, 16);
  if (!mnt) return;
  const be = new LocalBackend(path.join(mnt, 'repo'));
  await be.create();
  // Fill every block, the ones reserved for root included (tests run as root).
  const filler = fs.openSync(path.join(mnt, 'filler'), 'w');
  const block = Buffer.alloc(1024 * 1024);
  try {
    for (;;) fs.writeSync(filler, block);
  } catch (e) {
    t.is(errnoCode(e), 'ENOSPC');
  }
  try {
    for (;;) fs.writeSync(filler, block, 0, 1024);
  } catch {
    // Down to the last kilobyte.
  }
  fs.closeSync(filler);
  const body = randomBytes(2 * 1024 * 1024);
  const name = createHash('sha256').update(body).digest('hex');
  const e = await t.throwsAsync(be.save({ type: 'data', name }, body), { instanceOf: NoSpaceError });
  t.regex(e!.message, new RegExp(`data/${name}`));
  t.false(fs.existsSync(be.filePath({ type: 'data', name })));
});

test('a restore target that fills up ends the restore with the no-space exit code and message; the file cut short holds only verified bytes', async (t) => {
  const mnt = await smallDisk(t, 24);
  if (!mnt) return;
  const src = path.join(await tempDir(t), 'src');
  fs.mkdirSync(src);
  // Random data: 40 MiB cannot fit on 24.
  const big = randomBytes(40 * 1024 * 1024);
  fs.writeFileSync(path.join(src, 'big.bin'), big);
  fs.writeFileSync(path.join(src, 'small.txt'), 'small\n');
  const repo = path.join(await tempDir(t), 'repo');
  t.is((await stowage(['init', '--repo', repo])).code, 0);
  t.is((await stowage(['backup', '--repo', repo, src])).code, 0);

  const r = await stowage(['restore', '--repo', repo, 'latest', '--target', mnt]);
  t.is(r.code, 16, r.stdout + r.stderr);
  t.regex(r.stderr, /no space left on the target's disk while writing \/.*big\.bin, which holds only the \d+ bytes before it; free space and run the restore again/);
  t.notRegex(r.stderr, /bug/);
  const restored = fs.readFileSync(path.join(mnt, src, 'big.bin'));
  t.true(restored.length > 0 && restored.length < big.length, `${restored.length} bytes restored`);
  t.true(restored.equals(big.subarray(0, restored.length)));
});
