import test from 'ava';
import { createCipheriv } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from './helpers/dataset.ts';
import { stowage, testEnv } from './helpers/cli.ts';
import { tempDir } from './helpers/tmp.ts';

const GIB = 1024 * 1024 * 1024;

/**
 * Peak RSS is measured by the kernel: getrusage's ru_maxrss of the whole
 * process, worker threads included, written at exit by
 * test/helpers/rss-report.ts, which NODE_OPTIONS loads into the real
 * `stowage` command.
 */
test('backing up a 4 GiB file keeps peak RSS under 400 MiB', async (t) => {
  const work = await tempDir(t);
  const file = path.join(work, 'disk.img');
  // Pseudo-random, so nothing deduplicates or compresses: every byte goes through the whole pipeline.
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 4), Buffer.alloc(16));
  const fd = fs.openSync(file, 'w');
  const zeros = Buffer.alloc(16 << 20);
  for (let i = 0; i < (4 * GIB) / zeros.length; i++) fs.writeSync(fd, cipher.update(zeros));
  fs.closeSync(fd);
  const repo = path.join(work, 'repo');
  const env = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  t.is((await stowage(['-r', repo, 'init'], env)).code, 0);
  const measured = testEnv({
    STOWAGE_CACHE_DIR: path.join(work, 'cache'),
    STOWAGE_TEST_RSS_FILE: path.join(work, 'rss'),
    NODE_OPTIONS: `--import=${path.join(PROJECT_ROOT, 'test/helpers/rss-report.ts')}`,
  });
  const r = await stowage(['-r', repo, 'backup', file], measured);
  t.is(r.code, 0, r.stderr);
  const peakKiB = Number(fs.readFileSync(path.join(work, 'rss'), 'utf8'));
  t.log(`peak RSS ${(peakKiB / 1024).toFixed(0)} MiB while backing up 4 GiB`);
  t.true(peakKiB < 400 * 1024, `peak RSS ${peakKiB} KiB`);
});
