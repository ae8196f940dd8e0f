/** `stowage ls SNAPSHOT [PATH]`: lists what a snapshot holds, recursively. */
import { listSnapshots, findSnapshot } from '../../core/snapshot.ts';
import { type TreeNode, findNode, mtimeDate, walkTree } from '../../core/tree.ts';
import { splitSnapshotPath } from '../../restore/safe-name.ts';
import { type Context, openRepository } from '../context.ts';

export interface LsOptions {
  readonly long?: boolean;
}

function modeString(n: TreeNode): string {
  const t = { file: '-', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b' }[n.type];
  const bits = 'rwxrwxrwx'.split('').map((c, i) => ((n.mode >> (8 - i)) & 1 ? c : '-'));
  if (n.mode & 0o4000) bits[2] = bits[2] === 'x' ? 's' : 'S';
  if (n.mode & 0o2000) bits[5] = bits[5] === 'x' ? 's' : 'S';
  if (n.mode & 0o1000) bits[8] = bits[8] === 'x' ? 't' : 'T';
  return t + bits.join('');
}

export async function run(ctx: Context, snapshotRef: string, pathArg: string | undefined, opts: LsOptions): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    const [records] = await Promise.all([listSnapshots(repo), repo.loadIndex()]);
    const rec = findSnapshot(records, snapshotRef);
    const parts = pathArg ? splitSnapshotPath(pathArg) : [];
    const start = await findNode(repo, rec.snapshot.tree, parts);
    const prefix = parts.map((p) => `/${p}`).join('');
    const entries: { path: string; node: TreeNode }[] = [];
    if (start) entries.push({ path: prefix, node: start });
    const subtree = start === null ? rec.snapshot.tree : start.type === 'dir' ? start.subtree : undefined;
    if (subtree) await walkTree(repo, subtree, prefix, (path, node) => void entries.push({ path, node }));
    ctx.out.list(
      entries.map((e) => ({ path: e.path, type: e.node.type, mode: e.node.mode, uid: e.node.uid, gid: e.node.gid, size: e.node.size ?? 0, mtime: mtimeDate(e.node).toISOString(), ...(e.node.target !== undefined ? { target: e.node.target } : {}) })),
      () =>
        entries
          .map((e) => {
            const name = e.node.type === 'symlink' ? `${e.path} -> ${e.node.target}` : e.path;
            if (!opts.long) return name;
            const owner = `${e.node.user ?? e.node.uid}/${e.node.group ?? e.node.gid}`;
            return `${modeString(e.node)} ${owner.padEnd(12)} ${String(e.node.size ?? 0).padStart(12)} ${mtimeDate(e.node).toISOString().replace('T', ' ').slice(0, 19)} ${name}`;
          })
          .join('\n'),
    );
    return 0;
  } finally {
    await repo.close();
  }
}
