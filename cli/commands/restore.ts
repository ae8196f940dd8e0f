/** `stowage restore SNAPSHOT --target DIR [--path P]`: restores files. */
import { UsageError } from '../../core/errors.ts';
import { RepositoryLock } from '../../core/lock.ts';
import { SealPool } from '../../core/seal-pool.ts';
import { findSnapshot, listSnapshots, shortId } from '../../core/snapshot.ts';
import { restoreFiles } from '../../restore/file-restorer.ts';
import { EXIT } from '../exit-codes.ts';
import { type Context, openRepository } from '../context.ts';
import { formatBytes } from '../output.ts';
// The Docker side (the engine's client, the state's schemas) is loaded only by the restores that need it: a plain
// restore to a directory started 0.1–0.15 s sooner without it (from a cold page cache, as on a new host).
import type { HostRestoreCommandOptions } from './restore-host.ts';

export interface RestoreOptions extends HostRestoreCommandOptions {
  readonly target?: string;
  readonly path?: string;
  readonly toHost?: boolean;
  readonly directIo?: boolean;
}

export async function run(ctx: Context, snapshotRef: string, opts: RestoreOptions): Promise<number> {
  const docker = opts.toHost || opts.intoVolume !== undefined;
  if (opts.volume !== undefined && opts.path !== undefined) throw new UsageError('--volume NAME already names a path (/volumes/NAME); add --path inside it as --path /volumes/NAME/…');
  const path = opts.volume !== undefined && !opts.intoVolume ? `/volumes/${opts.volume}` : opts.path;
  if (!docker && !opts.target) throw new UsageError('restore needs --target DIR (where to put the files), --to-host, or --into-volume NAME');
  // A whole snapshot needs most of a repository's packs; a path within it may need few.
  const cachedPacks = new Set<string>();
  const repo = await openRepository(ctx, path === undefined ? { warmPacksInto: cachedPacks } : {});
  const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: 'restore' });
  const pool = new SealPool(repo.poolKeys(), null);
  pool.warmUp();
  const progress = ctx.out.progress('restore');
  try {
    const [records] = await Promise.all([listSnapshots(repo), repo.loadIndex()]);
    const rec = findSnapshot(records, snapshotRef);
    repo.requireContentAccess('restore');
    if (opts.toHost) {
      progress.stop();
      return await (await import('./restore-host.ts')).runHostRestore(ctx, repo, pool, rec, opts, ctx.out);
    }
    if (opts.intoVolume !== undefined) {
      progress.stop();
      return await (await import('./restore-host.ts')).runIntoVolume(ctx, repo, pool, rec, opts, ctx.out);
    }
    const target = opts.target!;
    const started = Date.now();
    const r = await restoreFiles({ repo, pool, target, ...(path ? { path } : {}), progress, cachedPacks, directIo: opts.directIo ?? false }, rec.snapshot.tree);
    progress.stop();
    const failed = r.problems.filter((p) => p.content);
    ctx.out.result({ snapshot: rec.id, target, files: r.files, dirs: r.dirs, bytes: r.bytes, problems: r.problems, durationMs: Date.now() - started }, () =>
      [
        `restored snapshot ${shortId(rec.id)}${path ? ` path ${path}` : ''} to ${target}: ${r.files} files, ${r.dirs} directories, ${formatBytes(r.bytes)}`,
        ...r.problems.map((p) => `${p.content ? 'error' : 'warning'}: ${p.path}: ${p.message}`),
      ].join('\n'),
    );
    if (failed.some((p) => p.code === 'ERR_INTEGRITY' || p.code === 'ERR_WRITE_ONLY')) {
      return failed.some((p) => p.code === 'ERR_WRITE_ONLY') ? EXIT.WRONG_PASSWORD : EXIT.INTEGRITY;
    }
    return r.problems.length > 0 ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    progress.stop();
    await pool.close();
    await lock.release().catch(() => {});
    await repo.close();
  }
}
