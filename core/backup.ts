/**
 * One backup run of paths: lock, load the index, adopt what an interrupted
 * run left, archive against the parent snapshot, write packs and index, and
 * only then the snapshot.
 */
import { hostname } from 'node:os';
import { currentUser } from './idnames.ts';
import { Archiver, type ArchiveError, type SourceSurvey, normaliseSources } from './archiver.ts';
import { RepositoryLock } from './lock.ts';
import { type ProgressReporter, silentProgress } from './progress.ts';
import type { Repository } from './repository.ts';
import { SealPool } from './seal-pool.ts';
import { type Snapshot, findParent, findSnapshot, listSnapshots, saveSnapshot } from './snapshot.ts';
import { PROGRAM_VERSION } from './version.ts';

export interface BackupOptions {
  readonly paths: readonly string[];
  readonly tags?: readonly string[];
  /** Host name recorded in the snapshot (default: this host's). */
  readonly host?: string;
  /** Snapshot to compare against, "none" for no parent; default: the latest of this host and paths. */
  readonly parent?: string;
  readonly exclude?: (snapshotPath: string) => boolean;
  readonly progress?: ProgressReporter;
  readonly threads?: number;
  /** A survey of `paths` started before the repository was opened (see surveySources). */
  readonly survey?: SourceSurvey;
}

export interface BackupResult {
  readonly id: string;
  readonly snapshot: Snapshot;
  readonly errors: readonly ArchiveError[];
  readonly parent: string | null;
  readonly adoptedPacks: number;
}

export async function backupPaths(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: 'backup' });
  const pool = new SealPool(repo.poolKeys(), repo, opts.threads !== undefined ? { threads: opts.threads } : {});
  try {
    progress.phase('loading index');
    const [records] = await Promise.all([listSnapshots(repo), repo.loadIndex()]);
    const adoptedPacks = await repo.adoptUnindexedPacks((m) => progress.warn(m));
    const paths = normaliseSources(opts.paths);
    const host = opts.host ?? hostname();
    const parent =
      opts.parent === 'none' ? undefined : opts.parent ? findSnapshot(records, opts.parent) : findParent(records, host, paths);
    // Without a parent every file is read and stored: the workers will be needed. (With one, a backup may store
    // nothing at all, and starting them would only take CPU from the walk.)
    if (!parent) pool.warmUp();
    const archiver = new Archiver({
      repo,
      pool,
      ...(parent ? { parentTree: parent.snapshot.tree } : {}),
      progress,
      ...(opts.exclude ? { exclude: opts.exclude } : {}),
      ...(opts.survey ? { survey: opts.survey } : {}),
    });
    const result = await archiver.run(paths);
    progress.phase('finishing');
    await pool.flush();
    await repo.flush();
    const w = repo.writeStats;
    const snapshot: Snapshot = {
      version: 1,
      time: repo.clock().toISOString(),
      host,
      username: currentUser(),
      tags: [...(opts.tags ?? [])],
      paths,
      sources: paths.map((p) => ({ kind: 'path' as const, path: p })),
      tree: result.tree,
      ...(parent ? { parent: parent.id } : {}),
      programVersion: `stowage ${PROGRAM_VERSION}`,
      stats: {
        ...result.stats,
        blobsAdded: w.blobsAdded,
        bytesAdded: w.blobBytesAdded,
        bytesUploaded: w.bytesUploaded,
        durationMs: Date.now() - started,
      },
      ...(result.errors.length > 0 ? { errors: [...result.errors] } : {}),
    };
    const id = await saveSnapshot(repo, snapshot);
    return { id, snapshot, errors: result.errors, parent: parent?.id ?? null, adoptedPacks };
  } finally {
    await pool.close();
    // Best effort: a lock we cannot remove expires, and must not hide the real error.
    await lock.release().catch(() => {});
  }
}

