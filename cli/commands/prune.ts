/** `stowage prune`: removes data no snapshot references (see core/prune.ts). */
import { UsageError } from '../../core/errors.ts';
import { type PruneResult, prune } from '../../core/prune.ts';
import type { Repository } from '../../core/repository.ts';
import { parseDuration } from '../../core/units.ts';
import { type Context, openRepository } from '../context.ts';
import { formatBytes } from '../output.ts';

export interface PruneOptions {
  readonly maxUnused?: string;
  readonly dryRun?: boolean;
  readonly wait?: string;
}

/** "10%" or "0.1" → 0.1. */
export function parseShare(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  const v = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
  if (!(v >= 0 && v <= 1)) throw new UsageError(`--max-unused wants a share like 10% or 0.1, not ${JSON.stringify(text)}`);
  return v;
}

export async function runPrune(ctx: Context, repo: Repository, opts: PruneOptions): Promise<PruneResult> {
  const progress = ctx.out.progress('pruning');
  try {
    return await prune(repo, {
      maxUnused: parseShare(opts.maxUnused ?? '10%'),
      dryRun: opts.dryRun ?? false,
      lockWaitMs: opts.wait ? parseDuration(opts.wait) : 0,
      log: (m) => ctx.out.info(m),
    });
  } finally {
    progress.stop();
  }
}

export function describePrune(r: PruneResult, dryRun: boolean): string {
  const verb = dryRun ? 'would' : 'did';
  return [
    `${r.snapshots} snapshots use ${r.usedBlobs} blobs (${formatBytes(r.bytesUsed)})`,
    `packs: ${r.packsKept} kept, ${r.packsToDelete} unused, ${r.packsToRepack} repacked, ${r.unindexedPacks} not indexed`,
    `${dryRun ? 'would free' : 'freed'} ${formatBytes(r.bytesToFree)} of ${formatBytes(r.bytesBefore)}` +
      (dryRun ? '' : ` (${r.packsWritten} packs written, ${r.packsDeleted} deleted, index rewritten)`),
    dryRun ? `(dry run: nothing was changed; prune ${verb} do the above)` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

export async function run(ctx: Context, opts: PruneOptions): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    const r = await runPrune(ctx, repo, opts);
    ctx.out.result({ dryRun: opts.dryRun ?? false, ...r }, () => describePrune(r, opts.dryRun ?? false));
    return 0;
  } finally {
    await repo.close();
  }
}
