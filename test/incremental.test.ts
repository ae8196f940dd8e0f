import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findSnapshot, listSnapshots } from '../core/snapshot.ts';
import { decodeTree, findNode, loadTree } from '../core/tree.ts';
import { backup, newRepo, openRepo, restore } from './helpers/repo.ts';
import { tempDir } from './helpers/tmp.ts';

/** Subtree IDs of the directories directly under `src` in a snapshot. */
async function childTrees(dir: string, snapshot: string, src: string): Promise<Map<string, string>> {
  const repo = await openRepo(dir);
  try {
    await repo.loadIndex();
    const rec = findSnapshot(await listSnapshots(repo), snapshot);
    const node = await findNode(repo, rec.snapshot.tree, src.split('/').filter(Boolean));
    const tree = await loadTree(repo, node!.subtree!);
    return new Map(tree.nodes.filter((n) => n.type === 'dir').map((n) => [n.name, n.subtree!]));
  } finally {
    await repo.close();
  }
}

test('a directory with one changed entry gets a new tree; its unchanged siblings keep theirs; the restore shows the change', async (t) => {
  const { repo, dir } = await newRepo(t);
  await repo.close();
  const src = path.join(await tempDir(t), 'src');
  for (const d of ['same', 'mode', 'time']) {
    fs.mkdirSync(path.join(src, d), { recursive: true });
    fs.writeFileSync(path.join(src, d, 'f'), `contents of ${d}`);
    fs.chmodSync(path.join(src, d, 'f'), 0o644);
  }
  const first = await backup(dir, [src]);
  // Metadata only: the contents and sizes stay, so only the tree can tell.
  fs.chmodSync(path.join(src, 'mode', 'f'), 0o600);
  fs.utimesSync(path.join(src, 'time', 'f'), 1_000_000, 1_000_000);
  const second = await backup(dir, [src]);
  t.is(second.parent, first.id);

  const before = await childTrees(dir, first.id, src);
  const after = await childTrees(dir, second.id, src);
  t.is(after.get('same'), before.get('same'));
  t.not(after.get('mode'), before.get('mode'));
  t.not(after.get('time'), before.get('time'));

  const target = await tempDir(t);
  await restore(dir, target, { snapshot: second.id });
  const restored = path.join(target, src);
  t.is(fs.statSync(path.join(restored, 'mode', 'f')).mode & 0o777, 0o600);
  t.is(fs.statSync(path.join(restored, 'same', 'f')).mode & 0o777, 0o644);
  t.is(Math.round(fs.statSync(path.join(restored, 'time', 'f')).mtimeMs / 1000), 1_000_000);
});

test('a tree blob with a malformed node is not a tree; keys this version does not know are dropped', (t) => {
  const good = { name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '1', size: 3, content: ['a'.repeat(64)] };
  const parse = (nodes: unknown[]): ReturnType<typeof decodeTree> => decodeTree(Buffer.from(JSON.stringify({ nodes })));
  t.deepEqual(parse([{ ...good, future: 1 }])?.nodes, [good]);
  for (const bad of [
    { ...good, type: 'socket' },
    { ...good, mode: 0o10000 },
    { ...good, uid: -1 },
    { ...good, mtime: '1.5' },
    { ...good, size: 1.5 },
    { ...good, content: ['A'.repeat(64)] },
    { ...good, subtree: 'xyz' },
    { ...good, user: 7 },
    { ...good, xattrs: [{ name: 'user.a' }] },
    { name: 'f', type: 'file' },
    'f',
  ]) {
    t.is(parse([bad]), null, JSON.stringify(bad));
  }
  t.is(decodeTree(Buffer.from('{"nodes": {}}')), null);
  t.is(decodeTree(Buffer.from('not json')), null);
});
