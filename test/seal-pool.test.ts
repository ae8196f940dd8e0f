import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { whileDeriving } from '../core/keyfile.ts';
import { prestartSealWorkers, prestartedSealWorkers } from '../core/seal-pool.ts';
import { backup, newRepo, restore } from './helpers/repo.ts';
import { generate } from './helpers/dataset.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

// One test in its own file: the started workers belong to the process, and a concurrent test would take them.
test('seal workers started before the key is derived get their keys later, back up and restore', async (t) => {
  const { dir } = await newRepo(t);
  const src = path.join(await tempDir(t), 'data');
  generate(src, 16, 3);
  fs.writeFileSync(path.join(src, 'text.log'), 'a line that compresses\n'.repeat(100_000));
  // As the backup command does: the workers start once the derivation has, and the next pool takes them.
  whileDeriving(() => prestartSealWorkers(2));
  t.is(prestartedSealWorkers(), 0);
  const r = await backup(dir, [src]);
  t.is(prestartedSealWorkers(), 0, 'the backup pool took both workers');
  t.deepEqual(r.errors, []);
  const target = await tempDir(t);
  t.deepEqual((await restore(dir, target)).problems, []);
  t.deepEqual(compareTrees(src, path.join(target, src)), []);
});
