/** `stowage check [--read-data | --read-data-subset N%|n/m]`: lists everything wrong, exits 13 if anything is. */
import { type DataSubset, checkRepository } from '../../core/check.ts';
import { UsageError } from '../../core/errors.ts';
import { RepositoryLock } from '../../core/lock.ts';
import { type Context, openRepository } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes } from '../output.ts';

export interface CheckOptions {
  readonly readData?: boolean;
  readonly readDataSubset?: string;
}

export function parseSubset(o: CheckOptions): DataSubset {
  if (o.readData && o.readDataSubset) throw new UsageError('--read-data and --read-data-subset exclude each other');
  if (o.readData) return { kind: 'all' };
  if (!o.readDataSubset) return { kind: 'none' };
  const t = o.readDataSubset.trim();
  let m = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (m && Number(m[1]) > 0 && Number(m[1]) <= 100) return { kind: 'percent', percent: Number(m[1]) };
  m = /^(\d+)\/(\d+)$/.exec(t);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= Number(m[2]) && Number(m[2]) <= 256) return { kind: 'slice', n: Number(m[1]), m: Number(m[2]) };
  throw new UsageError(`--read-data-subset wants N% (0 < N <= 100) or n/m (1 <= n <= m <= 256), not ${JSON.stringify(o.readDataSubset)}`);
}

export async function run(ctx: Context, opts: CheckOptions): Promise<number> {
  const subset = parseSubset(opts);
  // Reading all the data reads every pack: the first ones may as well be read while the key is derived.
  const repo = await openRepository(ctx, subset.kind === 'all' ? { warmPacksInto: new Set() } : {});
  try {
    if (subset.kind !== 'none') repo.requireContentAccess('check --read-data');
    const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: 'check' });
    const progress = ctx.out.progress('checking');
    try {
      const r = await checkRepository(repo, subset, progress);
      progress.stop();
      for (const n of r.notes) ctx.out.info(n);
      ctx.out.result(r, () =>
        [
          `${r.snapshots} snapshots, ${r.packs} packs` + (r.packsRead > 0 ? `; read ${r.packsRead} packs (${formatBytes(r.bytesRead)})` : ''),
          ...r.problems.map((p) => `error: ${p.object}: ${p.message}`),
          r.problems.length === 0 ? 'no errors were found' : `${r.problems.length} error(s) found`,
        ].join('\n'),
      );
      return r.problems.length === 0 ? EXIT.OK : EXIT.INTEGRITY;
    } finally {
      progress.stop();
      await lock.release();
    }
  } finally {
    await repo.close();
  }
}
