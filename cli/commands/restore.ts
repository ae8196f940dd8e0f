/** `stowage restore SNAPSHOT --target DIR [--path P]`: restores files. */
import { UsageError } from '../../core/errors.ts';
import { RepositoryLock } from '../../core/lock.ts';
import { SealPool } from '../../core/seal-pool.ts';
import { findSnapshot, listSnapshots, shortId } from '../../core/snapshot.ts';
import { restoreFiles } from '../../restore/file-restorer.ts';
import { EXIT } from '../exit-codes.ts';
import { type Context, openRepository } from '../context.ts';
import { formatBytes } from '../output.ts';

export interface RestoreOptions {
  readonly target?: string;
  readonly path?: string;
}

export async function run(ctx: Context, snapshotRef: string, opts: RestoreOptions): Promise<number> {
  if (!opts.target) throw new UsageError('restore needs --target DIR (where to put the files)');
  const repo = await openRepository(ctx);
  const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: 'restore' });
  const pool = new SealPool(repo.poolKeys(), null);
  const progress = ctx.out.progress('restore');
  try {
    const [records] = await Promise.all([listSnapshots(repo), repo.loadIndex()]);
    const rec = findSnapshot(records, snapshotRef);
    const started = Date.now();
    const r = await restoreFiles({ repo, pool, target: opts.target, ...(opts.path ? { path: opts.path } : {}), progress }, rec.snapshot.tree);
    progress.stop();
    const failed = r.problems.filter((p) => p.content);
    ctx.out.result({ snapshot: rec.id, target: opts.target, files: r.files, dirs: r.dirs, bytes: r.bytes, problems: r.problems, durationMs: Date.now() - started }, () =>
      [
        `restored snapshot ${shortId(rec.id)}${opts.path ? ` path ${opts.path}` : ''} to ${opts.target}: ${r.files} files, ${r.dirs} directories, ${formatBytes(r.bytes)}`,
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
