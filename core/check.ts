/**
 * `check`: is the repository whole, and (with read-data) are its bytes
 * intact? Every problem is collected with the object it concerns, rather
 * than stopping at the first.
 *
 * Structure: every index object loads; every indexed pack is stored with
 * the size the index says, and every blob lies inside its pack; every
 * snapshot loads, and every tree and data blob it reaches is indexed and
 * every tree decrypts. Read-data (all packs or a subset): each pack hashes
 * to its name, its header decrypts and agrees with the index, and every
 * blob in it decrypts and hashes to its ID.
 */
import type { PackInfo } from './blob-index.ts';
import type { BlobType } from './envelope.ts';
import { isStowageError } from './errors.ts';
import type { ProgressReporter } from './progress.ts';
import { type Repository, mapLimit } from './repository.ts';
import { SealPool } from './seal-pool.ts';
import { listSnapshots, loadSnapshot } from './snapshot.ts';
import { loadTree } from './tree.ts';

export interface CheckProblem {
  readonly object: string;
  readonly message: string;
}

/** Which packs read-data reads: none, all, a share, or slice n of m. */
export type DataSubset = { kind: 'none' } | { kind: 'all' } | { kind: 'percent'; percent: number } | { kind: 'slice'; n: number; m: number };

export interface CheckResult {
  readonly problems: CheckProblem[];
  /** Not errors: packs no index names (an interrupted backup left them; the next backup adopts them). */
  readonly notes: string[];
  readonly snapshots: number;
  readonly packs: number;
  readonly packsRead: number;
  readonly bytesRead: number;
}

export function selectPacks(packs: readonly PackInfo[], subset: DataSubset): PackInfo[] {
  switch (subset.kind) {
    case 'none':
      return [];
    case 'all':
      return [...packs];
    case 'percent': {
      const want = Math.ceil((packs.length * subset.percent) / 100);
      return [...packs].sort(() => Math.random() - 0.5).slice(0, want);
    }
    case 'slice':
      // By the first byte of the name, as restic does: stable across runs, so n/m for n = 1..m covers everything.
      return packs.filter((p) => parseInt(p.id.slice(0, 2), 16) % subset.m === subset.n - 1);
  }
}

export async function checkRepository(repo: Repository, subset: DataSubset, progress?: ProgressReporter): Promise<CheckResult> {
  const problems: CheckProblem[] = [];
  const notes: string[] = [];
  const problem = (object: string, message: string): void => {
    problems.push({ object, message });
    progress?.warn(`${object}: ${message}`);
  };

  progress?.phase('index');
  await repo.loadIndexTolerant(problem);
  const stored = new Map((await repo.listObjects('data')).map((o) => [o.name, o.size]));
  const packs = [...repo.index.packs()];
  for (const p of packs) {
    const size = stored.get(p.id);
    if (size === undefined) problem(`data/${p.id}`, 'indexed but missing from the store');
    else if (size !== p.size) problem(`data/${p.id}`, `stored with ${size} bytes, the index says ${p.size}: truncated or replaced`);
    for (const b of p.blobs) {
      if (b.offset + b.length > p.size) problem(`data/${p.id}`, `index places blob ${b.id.toString('hex')} past the end of the pack`);
    }
  }
  for (const name of stored.keys()) if (!repo.index.hasPack(name)) notes.push(`data/${name} is not indexed (left by an interrupted backup: the next backup adopts it, prune removes it)`);

  progress?.phase('snapshots');
  const names = (await repo.listObjects('snapshots')).map((o) => o.name);
  const roots: { snapshot: string; tree: string }[] = [];
  for (const name of names) {
    try {
      roots.push({ snapshot: name, tree: (await loadSnapshot(repo, name)).tree });
    } catch (e) {
      if (!isStowageError(e)) throw e;
      problem(`snapshots/${name}`, e.message);
    }
  }
  await checkTrees(repo, roots, problem);

  const selected = selectPacks(packs.filter((p) => stored.get(p.id) === p.size), subset);
  let bytesRead = 0;
  if (selected.length > 0) {
    progress?.phase('reading data');
    const pool = new SealPool(repo.poolKeys(), null);
    try {
      await mapLimit(selected, 2, async (p) => {
        // Read first, then added: `bytesRead += await …` would add to the total as it was before the await, losing the
        // other reader's packs.
        const n = await readPack(repo, pool, p, problem);
        bytesRead += n;
      });
    } finally {
      await pool.close();
    }
  }
  return { problems, notes, snapshots: names.length, packs: packs.length, packsRead: selected.length, bytesRead };
}

/** Walks every tree once, checking that trees decrypt and that every blob they name is indexed. */
async function checkTrees(repo: Repository, roots: readonly { snapshot: string; tree: string }[], problem: (o: string, m: string) => void): Promise<void> {
  const seen = new Set<string>();
  let frontier = roots.map((r) => ({ tree: r.tree, where: `snapshot ${r.snapshot.slice(0, 8)}: /` }));
  while (frontier.length > 0) {
    const next: { tree: string; where: string }[] = [];
    for (const f of frontier) seen.add(f.tree);
    await mapLimit(frontier, 8, async ({ tree: id, where }) => {
      if (repo.index.get(id)?.type !== 'tree') {
        problem(`tree blob ${id}`, `${where} refers to it, but it is not in the index`);
        return;
      }
      let tree;
      try {
        tree = await loadTree(repo, id);
      } catch (e) {
        if (!isStowageError(e)) throw e;
        problem(`tree blob ${id}`, `${where}: ${e.message}`);
        return;
      }
      const base = where.endsWith('/') ? where : `${where}/`;
      for (const node of tree.nodes) {
        for (const c of node.content ?? []) {
          if (repo.index.get(c)?.type !== 'data') problem(`data blob ${c}`, `${base}${node.name} refers to it, but it is not in the index`);
        }
        if (node.type === 'dir') {
          if (!node.subtree) problem(`tree blob ${id}`, `${base}${node.name} is a directory without a subtree`);
          else if (!seen.has(node.subtree)) next.push({ tree: node.subtree, where: `${base}${node.name}` });
        }
      }
    });
    const unique = new Map(next.filter((n) => !seen.has(n.tree)).map((n) => [n.tree, n]));
    frontier = [...unique.values()];
  }
}

/**
 * Reads a whole pack and verifies it on a seal worker (its SHA-256 against
 * its name, every blob the index puts in it), and checks its header against
 * the index; returns the bytes read. A local pack is read by the worker
 * itself; a remote one is fetched here and handed over.
 */
async function readPack(repo: Repository, pool: SealPool, p: PackInfo, problem: (o: string, m: string) => void): Promise<number> {
  const object = `data/${p.id}`;
  const blobs: { type: BlobType; id: Buffer; key: Buffer; offset: number; length: number }[] = [];
  for (const b of p.blobs) {
    try {
      blobs.push({ type: b.type, id: b.id, key: b.type === 'tree' ? repo.keys.metaKey : repo.dataKeyForPack(p), offset: b.offset, length: b.length });
    } catch (e) {
      if (!isStowageError(e)) throw e;
      problem(object, e.message);
    }
  }
  const path = repo.packFile(p.id);
  let bytes: Buffer | undefined;
  if (!path) {
    try {
      bytes = await repo.backend.load({ type: 'data', name: p.id });
    } catch (e) {
      if (!isStowageError(e)) throw e;
      problem(object, e.message);
      return 0;
    }
  }
  const verdict = pool.verifyPack({ name: p.id, ...(path ? { path } : {}), ...(bytes ? { bytes } : {}), blobs });
  try {
    const header = await repo.readPackInfo(p.id, p.size);
    const listed = new Set(header.blobs.map((e) => `${e.id.toString('hex')}@${e.offset}+${e.length}`));
    for (const b of p.blobs) {
      if (!listed.has(`${b.id.toString('hex')}@${b.offset}+${b.length}`)) problem(object, `the index places blob ${b.id.toString('hex')} where the pack header does not`);
    }
  } catch (e) {
    if (!isStowageError(e)) throw e;
    problem(object, e.message);
  }
  const r = await verdict;
  if (r.readError !== undefined) {
    problem(object, `cannot be read: ${r.readError}`);
    return 0;
  }
  if (!r.nameMatches) problem(object, 'content does not match its name (SHA-256): damaged or tampered with');
  for (const f of r.failures) {
    const b = blobs[f.index]!;
    const idHex = b.id.toString('hex');
    if (f.failure === 'decrypt') problem(`${b.type} blob ${idHex}`, `in pack ${p.id}: does not decrypt (damaged or tampered with)`);
    else if (f.failure === 'id') problem(`${b.type} blob ${idHex}`, `in pack ${p.id}: decrypts, but its content does not hash to its ID`);
  }
  return r.read;
}
