/**
 * Prune: delete what no snapshot references, so that forgotten data is gone
 * from the store (a privacy promise, not only a space saving).
 *
 * Under an exclusive lock:
 *  1. mark every blob reachable from a snapshot (trees walked once each);
 *     refuse if any of them is missing from the index (run check/repair);
 *  2. classify packs: fully used (keep), unused (delete), partly used: repack
 *     when the unused share passes `maxUnused`, else keep as is;
 *  3. repack: read each such pack whole, check its hash, authenticate every
 *     blob kept, and write the blobs (still sealed, with the pack's key
 *     slot) into new packs;
 *  4. write the new index, which supersedes every old index object, and
 *     delete the old ones;
 *  5. delete the unused and repacked packs, and packs no index names (left
 *     by interrupted backups).
 * New packs and index are written before anything is deleted, so a prune
 * killed at any point leaves a repository that restores; the next prune
 * finishes the job.
 */
import type { BlobType } from './envelope.ts';
import type { PackInfo } from './blob-index.ts';
import { sha256Hex } from './crypto.ts';
import { IntegrityError } from './errors.ts';
import { RepositoryLock } from './lock.ts';
import type { KeySlot, SealedBlob } from './pack.ts';
import { type Repository, mapLimit } from './repository.ts';
import { listSnapshots } from './snapshot.ts';
import { loadTree } from './tree.ts';

export interface PruneOptions {
  /** Repack a partly used pack when more than this share of its bytes is unused (0..1). */
  readonly maxUnused: number;
  readonly dryRun?: boolean;
  /** How long to wait for running backups to finish before giving up. */
  readonly lockWaitMs?: number;
  readonly log?: (message: string) => void;
}

export interface PrunePlan {
  readonly snapshots: number;
  readonly usedBlobs: number;
  readonly packsKept: number;
  readonly packsToDelete: number;
  readonly packsToRepack: number;
  readonly unindexedPacks: number;
  readonly bytesBefore: number;
  /** Bytes of blobs that stay. */
  readonly bytesUsed: number;
  readonly bytesToFree: number;
}

export interface PruneResult extends PrunePlan {
  readonly packsWritten: number;
  readonly packsDeleted: number;
  readonly indexObjectsWritten: number;
  readonly indexObjectsRemoved: number;
}

/** Every blob reachable from a snapshot: tree and data IDs, hex. */
export async function reachableBlobs(repo: Repository, treeRoots: readonly string[]): Promise<{ trees: Set<string>; data: Set<string> }> {
  const trees = new Set<string>();
  const data = new Set<string>();
  let frontier = [...new Set(treeRoots)];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const id of frontier) trees.add(id);
    await mapLimit(frontier, 8, async (id) => {
      const tree = await loadTree(repo, id);
      for (const node of tree.nodes) {
        for (const c of node.content ?? []) data.add(c);
        if (node.subtree && !trees.has(node.subtree)) next.push(node.subtree);
      }
    });
    frontier = [...new Set(next)].filter((id) => !trees.has(id));
  }
  return { trees, data };
}

interface PackVerdict {
  readonly pack: PackInfo;
  readonly usedBytes: number;
  readonly unusedBytes: number;
  readonly keep: readonly PackInfo['blobs'][number][];
}

export async function prune(repo: Repository, opts: PruneOptions): Promise<PruneResult> {
  const log = opts.log ?? (() => {});
  const lock = await RepositoryLock.acquire(repo, { exclusive: true, operation: 'prune', waitMs: opts.lockWaitMs ?? 0 });
  try {
    const [records, indexNames, stored] = await Promise.all([
      listSnapshots(repo),
      repo.listObjects('index').then((l) => l.map((o) => o.name)),
      repo.listObjects('data'),
    ]);
    await repo.loadIndex();
    log(`marking blobs used by ${records.length} snapshots`);
    const { trees, data } = await reachableBlobs(repo, records.map((r) => r.snapshot.tree));
    for (const [set, type] of [[trees, 'tree'], [data, 'data']] as const) {
      for (const id of set) {
        if (repo.index.get(id)?.type !== type) {
          throw new IntegrityError(`${type} blob ${id}`, 'is used by a snapshot but missing from the index; refusing to prune (run "stowage check", then "stowage repair index")');
        }
      }
    }
    const used = (id: string, pack: string): boolean => (trees.has(id) || data.has(id)) && repo.index.get(id)?.pack === pack;

    const verdicts: PackVerdict[] = [];
    for (const pack of repo.index.packs()) {
      let usedBytes = 0;
      let unusedBytes = 0;
      const keep = [];
      for (const b of pack.blobs) {
        if (used(b.id.toString('hex'), pack.id)) {
          usedBytes += b.length;
          keep.push(b);
        } else unusedBytes += b.length;
      }
      verdicts.push({ pack, usedBytes, unusedBytes, keep });
    }
    const toDelete = verdicts.filter((v) => v.usedBytes === 0);
    const toRepack = verdicts.filter((v) => v.usedBytes > 0 && v.unusedBytes > 0 && v.unusedBytes / (v.usedBytes + v.unusedBytes) > opts.maxUnused);
    const repackIds = new Set(toRepack.map((v) => v.pack.id));
    const kept = verdicts.filter((v) => v.usedBytes > 0 && !repackIds.has(v.pack.id));
    const unindexed = stored.filter((o) => !repo.index.hasPack(o.name));
    const bytesBefore = stored.reduce((n, o) => n + o.size, 0);
    const plan: PrunePlan = {
      snapshots: records.length,
      usedBlobs: trees.size + data.size,
      packsKept: kept.length,
      packsToDelete: toDelete.length,
      packsToRepack: toRepack.length,
      unindexedPacks: unindexed.length,
      bytesBefore,
      bytesUsed: verdicts.reduce((n, v) => n + v.usedBytes, 0),
      bytesToFree:
        toDelete.reduce((n, v) => n + v.pack.size, 0) + toRepack.reduce((n, v) => n + v.unusedBytes, 0) + unindexed.reduce((n, o) => n + o.size, 0),
    };
    if (opts.dryRun) return { ...plan, packsWritten: 0, packsDeleted: 0, indexObjectsWritten: 0, indexObjectsRemoved: 0 };

    log(`repacking ${toRepack.length} partly used packs`);
    const fresh = await repack(repo, toRepack);
    log(`writing the new index`);
    const { written, removed } = await repo.replaceIndex([...kept.map((v) => v.pack), ...fresh], indexNames);
    const doomed = [...toDelete.map((v) => v.pack.id), ...toRepack.map((v) => v.pack.id), ...unindexed.map((o) => o.name)];
    log(`deleting ${doomed.length} packs`);
    await mapLimit(doomed, 8, (name) => repo.backend.remove({ type: 'data', name }));
    return { ...plan, packsWritten: fresh.length, packsDeleted: doomed.length, indexObjectsWritten: written, indexObjectsRemoved: removed };
  } finally {
    await lock.release();
  }
}

/**
 * Moves the used blobs of partly used packs into new packs. Blobs stay
 * sealed (their additional data names their ID and type, not their pack),
 * but each is authenticated first, so damage is never carried over. Packs
 * with the plain key slot are merged; a write-only host's pack keeps its own
 * sealed content key, so its blobs go to new packs of their own.
 */
async function repack(repo: Repository, verdicts: readonly PackVerdict[]): Promise<PackInfo[]> {
  const out: PackInfo[] = [];
  const groups = new Map<string, { slot: KeySlot; type: BlobType; blobs: SealedBlob[]; bytes: number }>();
  const flushGroup = async (key: string): Promise<void> => {
    const g = groups.get(key);
    if (!g || g.blobs.length === 0) return;
    groups.delete(key);
    out.push(...(await repo.writePacks(g.blobs, g.slot)));
  };
  for (const v of verdicts) {
    const whole = await repo.backend.load({ type: 'data', name: v.pack.id });
    if (sha256Hex(whole) !== v.pack.id) throw new IntegrityError(`data/${v.pack.id}`, 'content does not match its name (SHA-256); refusing to repack it (run "stowage check --read-data")');
    const type = v.keep[0]!.type;
    const slot = v.pack.keySlot;
    const key = slot.kind === 'none' ? `plain-${type}` : `pack-${v.pack.id}`;
    let g = groups.get(key);
    if (!g) {
      g = { slot, type, blobs: [], bytes: 0 };
      groups.set(key, g);
    }
    for (const b of v.keep) {
      const sealed = Buffer.from(whole.subarray(b.offset, b.offset + b.length));
      const idHex = b.id.toString('hex');
      repo.openAndVerify(b.type, idHex, v.pack.id, b.type === 'tree' ? repo.keys.metaKey : repo.dataKeyForPack(v.pack), sealed);
      g.blobs.push({ type: b.type, id: b.id, parts: [sealed], length: sealed.length });
      g.bytes += sealed.length;
    }
    if (slot.kind !== 'none' || g.bytes >= repo.config.packSize * 4) await flushGroup(key);
  }
  for (const key of [...groups.keys()]) await flushGroup(key);
  return out;
}
