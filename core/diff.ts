/**
 * What changed between two snapshots: paths added, removed, with changed
 * contents, or with changed metadata only. Identical subtrees (same tree ID)
 * are skipped without being read, so a diff costs what changed.
 */
import { type TreeNode, type TreeStore, loadTree } from './tree.ts';

export type ChangeKind = '+' | '-' | 'M' | 'T' | 'U';

export interface Change {
  /** + added, - removed, M contents changed, T type changed, U metadata only. */
  readonly kind: ChangeKind;
  readonly path: string;
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type === 'symlink') return a.target === b.target && a.targetRaw === b.targetRaw;
  return a.size === b.size && (a.content ?? []).join() === (b.content ?? []).join();
}

function sameMeta(a: TreeNode, b: TreeNode): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtime === b.mtime && JSON.stringify(a.xattrs ?? []) === JSON.stringify(b.xattrs ?? []);
}

export async function diffTrees(store: Pick<TreeStore, 'loadBlob'>, a: string | null, b: string | null, prefix = ''): Promise<Change[]> {
  if (a === b) return [];
  const left = a ? (await loadTree(store, a)).nodes : [];
  const right = b ? (await loadTree(store, b)).nodes : [];
  const byName = new Map(left.map((n) => [n.nameRaw ?? n.name, n]));
  const out: Change[] = [];
  const seen = new Set<string>();
  for (const r of right) {
    const key = r.nameRaw ?? r.name;
    seen.add(key);
    const l = byName.get(key);
    const p = `${prefix}/${r.name}`;
    if (!l) {
      out.push({ kind: '+', path: p });
      if (r.type === 'dir') out.push(...(await diffTrees(store, null, r.subtree ?? null, p)));
    } else if (l.type !== r.type) {
      out.push({ kind: 'T', path: p });
      out.push(...(await diffTrees(store, l.type === 'dir' ? (l.subtree ?? null) : null, r.type === 'dir' ? (r.subtree ?? null) : null, p)));
    } else if (r.type === 'dir') {
      if (!sameMeta(l, r)) out.push({ kind: 'U', path: p });
      out.push(...(await diffTrees(store, l.subtree ?? null, r.subtree ?? null, p)));
    } else if (!sameContent(l, r)) out.push({ kind: 'M', path: p });
    else if (!sameMeta(l, r)) out.push({ kind: 'U', path: p });
  }
  for (const l of left) {
    const key = l.nameRaw ?? l.name;
    if (seen.has(key)) continue;
    const p = `${prefix}/${l.name}`;
    out.push({ kind: '-', path: p });
    if (l.type === 'dir') out.push(...(await diffTrees(store, l.subtree ?? null, null, p)));
  }
  return out;
}
