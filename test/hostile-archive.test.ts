/**
 * Hostile input on the container paths: a tar from a daemon (or a
 * container's crafted names) with "..", absolute names or escaping links,
 * and snapshot trees whose names would leave a volume on restore.
 */
import test from 'ava';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { extract } from 'tar-stream';
import { UnsafePathError } from '../core/errors.ts';
import { treeFromTar } from '../core/docker/tar-tree.ts';
import { SealPool } from '../core/seal-pool.ts';
import { loadTree, saveTree } from '../core/tree.ts';
import { tarFromTree } from '../restore/tree-tar.ts';
import { newRepo } from './helpers/repo.ts';

function tarOf(entries: { name: string; type?: 'file' | 'symlink' | 'directory' | 'link'; body?: string; linkname?: string }[]): Readable {
  const p = pack();
  for (const e of entries) {
    if (e.type === 'symlink' || e.type === 'link') p.entry({ name: e.name, type: e.type, linkname: e.linkname! });
    else if (e.type === 'directory') p.entry({ name: e.name, type: 'directory' });
    else p.entry({ name: e.name }, e.body ?? '');
  }
  p.finalize();
  return p as unknown as Readable;
}

async function names(stream: Readable): Promise<string[]> {
  const out: string[] = [];
  const ex = extract();
  stream.pipe(ex);
  for await (const e of ex) {
    out.push(`${e.header.type}:${e.header.name}${e.header.linkname ? ` -> ${e.header.linkname}` : ''}`);
    e.resume();
  }
  return out;
}

test('a tar entry with "..", an absolute name or a hard link out of the archive is refused and recorded; the rest is kept', async (t) => {
  const { repo } = await newRepo(t);
  const pool = new SealPool(repo.poolKeys(), repo);
  try {
    const tar = tarOf([
      { name: 'data/', type: 'directory' },
      { name: 'data/ok.txt', body: 'fine' },
      { name: 'data/../../etc/passwd', body: 'root::0:0' },
      { name: '/etc/shadow', body: 'x' },
      { name: 'data/out', type: 'link', linkname: '../../etc/passwd' },
      { name: 'data/escape', type: 'symlink', linkname: '../../../../etc' },
    ]);
    const r = await treeFromTar({ repo, pool, snapRoot: '/volumes/v', stripFirst: true }, tar);
    await pool.flush();
    await repo.flush();
    const tree = await loadTree(repo, r.tree);
    t.deepEqual(tree.nodes.map((n) => `${n.type}:${n.name}`).sort(), ['file:ok.txt', 'symlink:escape']);
    t.is(r.errors.length, 3, JSON.stringify(r.errors));
    t.true(r.errors.some((e) => e.path.includes('../../etc/passwd') && /outside the archived directory/.test(e.message)));
    t.true(r.errors.some((e) => /hard link/.test(e.message)));
    // A symlink is data: it is kept as a link, and a restore puts it inside the volume, where it points nowhere of ours.
    t.is(tree.nodes.find((n) => n.name === 'escape')?.target, '../../../../etc');
  } finally {
    await pool.close();
    await repo.close();
  }
});

test('a snapshot tree whose names would leave the volume is refused before any byte of it goes to the Engine', async (t) => {
  const { repo } = await newRepo(t);
  const pool = new SealPool(repo.poolKeys(), null);
  try {
    for (const bad of ['..', '.', 'a/b', '']) {
      const file = await saveTree(repo, [{ name: bad, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', size: 0, content: [] }]);
      const root = await saveTree(repo, [
        { name: 'fine', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', size: 0, content: [] },
        { name: 'sub', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '0', subtree: file },
      ]);
      await repo.flush();
      await repo.loadIndex();
      const tar = tarFromTree(repo, pool, root);
      t.deepEqual(await names(tar.stream).catch(() => []), [], 'not even the good entry went out');
      const err = await t.throwsAsync(tar.done);
      t.true(err instanceof UnsafePathError || /refusing tree entry/.test(err.message), `${JSON.stringify(bad)}: ${err.message}`);
    }
  } finally {
    await pool.close();
    await repo.close();
  }
});

test('a tree becomes a tar with relative names, modes and links kept', async (t) => {
  const { repo } = await newRepo(t);
  const pool = new SealPool(repo.poolKeys(), repo);
  try {
    const r = await treeFromTar(
      { repo, pool, snapRoot: '/volumes/v', stripFirst: true },
      tarOf([
        { name: 'v/', type: 'directory' },
        { name: 'v/a/', type: 'directory' },
        { name: 'v/a/f', body: 'hello' },
        { name: 'v/l', type: 'symlink', linkname: 'a/f' },
      ]),
    );
    await pool.flush();
    await repo.flush();
    await repo.loadIndex();
    const tar = tarFromTree(repo, pool, r.tree);
    t.deepEqual(await names(tar.stream), ['directory:a/', 'file:a/f', 'symlink:l -> a/f']);
    await tar.done;
  } finally {
    await pool.close();
    await repo.close();
  }
});

test('a tree naming an entry twice (a symlink out, then a directory through it) is refused before any byte goes out', async (t) => {
  const { repo } = await newRepo(t);
  const pool = new SealPool(repo.poolKeys(), null);
  try {
    const inner = await saveTree(repo, [{ name: 'passwd', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', size: 0, content: [] }]);
    const root = await saveTree(repo, [
      { name: 'escape', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: '0', target: '../../../etc' },
      { name: 'escape', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '0', subtree: inner },
    ]);
    await repo.flush();
    await repo.loadIndex();
    const tar = tarFromTree(repo, pool, root);
    t.deepEqual(await names(tar.stream).catch(() => []), []);
    await t.throwsAsync(tar.done, { instanceOf: UnsafePathError, message: /names "escape" twice/ });
  } finally {
    await pool.close();
    await repo.close();
  }
});
