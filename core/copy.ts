/**
 * `copy`: snapshots from one repository to another with everything they
 * reference, uploading only what the target lacks. The target may have its
 * own keys: every blob is then opened (authenticated) and sealed again for
 * the target, and trees are rewritten with the target's blob IDs. When both
 * share the ID key, a blob the target already has is not even read.
 *
 * A copied snapshot records `copiedFrom`, so a second copy skips it; an
 * interrupted copy leaves packs the next run adopts, so it resumes without
 * uploading them again.
 */
import { blobId } from './crypto.ts';
import { RepositoryLock } from './lock.ts';
import type { ProgressReporter } from './progress.ts';
import type { Repository } from './repository.ts';
import { type SnapshotRecord, findSnapshot, listSnapshots, saveSnapshot } from './snapshot.ts';
import { type TreeNode, loadTree, saveTree } from './tree.ts';

export interface CopyResult {
  readonly copied: { from: string; to: string }[];
  readonly skipped: string[];
  readonly blobsUploaded: number;
  readonly bytesUploaded: number;
}

export async function copySnapshots(src: Repository, dst: Repository, refs: readonly string[], progress?: ProgressReporter): Promise<CopyResult> {
  const srcLock = await RepositoryLock.acquire(src, { exclusive: false, operation: 'copy (source)' });
  const dstLock = await RepositoryLock.acquire(dst, { exclusive: false, operation: 'copy (target)' });
  try {
    const [srcSnaps, dstSnaps] = await Promise.all([listSnapshots(src), listSnapshots(dst), src.loadIndex(), dst.loadIndex()]);
    await dst.adoptUnindexedPacks((m) => progress?.warn(m));
    const chosen: SnapshotRecord[] = refs.length ? [...new Set(refs.map((r) => findSnapshot(srcSnaps, r)))] : srcSnaps;
    const already = new Set(dstSnaps.map((s) => s.snapshot.copiedFrom).filter((x): x is string => !!x));
    const sameIds = src.keys.idKey.equals(dst.keys.idKey);
    const blobMap = new Map<string, string>();
    const treeMap = new Map<string, string>();
    const copied: { from: string; to: string }[] = [];
    const skipped: string[] = [];

    const copyBlob = async (id: string): Promise<string> => {
      const known = blobMap.get(id);
      if (known) return known;
      // Same ID key: the ID is the same on both sides, and a blob the target has need not be read.
      if (sameIds && dst.hasBlob(id)) {
        blobMap.set(id, id);
        return id;
      }
      const plain = await src.loadBlob('data', id);
      const target = blobId(dst.keys.idKey, plain).toString('hex');
      if (!dst.hasBlob(target)) await dst.saveBlob('data', plain);
      blobMap.set(id, target);
      return target;
    };

    const copyTree = async (id: string): Promise<string> => {
      const known = treeMap.get(id);
      if (known) return known;
      const tree = await loadTree(src, id);
      const nodes: TreeNode[] = [];
      for (const n of tree.nodes) {
        if (n.type === 'file' && n.content) {
          const content: string[] = [];
          for (const c of n.content) content.push(await copyBlob(c));
          nodes.push({ ...n, content });
        } else if (n.type === 'dir' && n.subtree) nodes.push({ ...n, subtree: await copyTree(n.subtree) });
        else nodes.push(n);
      }
      const out = await saveTree(dst, nodes);
      treeMap.set(id, out);
      return out;
    };

    for (const rec of chosen) {
      if (already.has(rec.id)) {
        skipped.push(rec.id);
        continue;
      }
      progress?.phase(`copying snapshot ${rec.id.slice(0, 8)}`);
      const tree = await copyTree(rec.snapshot.tree);
      await dst.flush();
      const { parent: _parent, ...rest } = rec.snapshot;
      const to = await saveSnapshot(dst, { ...rest, tree, copiedFrom: rec.id, ...(rest.docker ? { docker: withoutSourceTrees(rest.docker) } : {}) });
      copied.push({ from: rec.id, to });
    }
    const w = dst.writeStats;
    return { copied, skipped, blobsUploaded: w.blobsAdded, bytesUploaded: w.bytesUploaded };
  } finally {
    await dstLock.release().catch(() => {});
    await srcLock.release().catch(() => {});
  }
}

/** A container snapshot's per-volume parent trees name source-repository trees: not carried over. */
function withoutSourceTrees(docker: unknown): unknown {
  const d = docker as { volumes?: Record<string, unknown>[] };
  if (!Array.isArray(d.volumes)) return docker;
  return { ...d, volumes: d.volumes.map(({ directRoot: _r, ...v }) => v) };
}
