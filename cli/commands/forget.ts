/**
 * `stowage forget`: removes snapshots by ID or by a retention policy (see
 * core/retention.ts), and with --prune the data only they used.
 */
import { UsageError } from '../../core/errors.ts';
import { RepositoryLock } from '../../core/lock.ts';
import { type GroupField, type RetentionPolicy, applyPolicy, effectiveTime } from '../../core/retention.ts';
import { findSnapshot, listSnapshots, shortId } from '../../core/snapshot.ts';
import { parseDuration } from '../../core/units.ts';
import { type Context, openRepository } from '../context.ts';
import { describePrune, runPrune } from './prune.ts';
import { filterSnapshots } from './snapshots.ts';

export interface ForgetOptions {
  readonly keepLast?: string;
  readonly keepHourly?: string;
  readonly keepDaily?: string;
  readonly keepWeekly?: string;
  readonly keepMonthly?: string;
  readonly keepYearly?: string;
  readonly keepWithin?: string;
  readonly keepTag?: string[];
  readonly groupBy?: string;
  readonly host?: string[];
  readonly tag?: string[];
  readonly path?: string[];
  readonly dryRun?: boolean;
  readonly prune?: boolean;
  readonly maxUnused?: string;
}

function count(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} wants a positive whole number, not ${JSON.stringify(v)}`);
  return n;
}

export function policyOf(o: ForgetOptions): RetentionPolicy {
  const p: Record<string, unknown> = {
    last: count('--keep-last', o.keepLast),
    hourly: count('--keep-hourly', o.keepHourly),
    daily: count('--keep-daily', o.keepDaily),
    weekly: count('--keep-weekly', o.keepWeekly),
    monthly: count('--keep-monthly', o.keepMonthly),
    yearly: count('--keep-yearly', o.keepYearly),
    withinMs: o.keepWithin ? parseDuration(o.keepWithin) : undefined,
    tags: o.keepTag?.length ? o.keepTag : undefined,
  };
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as RetentionPolicy;
}

function groupFields(text: string | undefined): GroupField[] {
  if (text === undefined) return ['host', 'paths'];
  const fields = text.split(',').map((f) => f.trim()).filter(Boolean);
  for (const f of fields) if (!['host', 'paths', 'tags'].includes(f)) throw new UsageError(`--group-by takes host, paths and tags, not ${JSON.stringify(f)}`);
  return fields as GroupField[];
}

export async function run(ctx: Context, ids: string[], opts: ForgetOptions): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: 'forget' });
    let removeIds: string[];
    try {
      const all = await listSnapshots(repo);
      const policy = policyOf(opts);
      if (ids.length > 0) {
        if (Object.keys(policy).length > 0) throw new UsageError('give snapshot IDs or a policy, not both');
        removeIds = [...new Set(ids.map((id) => findSnapshot(all, id).id))];
        ctx.out.result({ dryRun: opts.dryRun ?? false, remove: removeIds }, () => `${opts.dryRun ? 'would remove' : 'removing'} ${removeIds.map(shortId).join(', ')}`);
      } else {
        const groups = applyPolicy(filterSnapshots(all, opts), policy, groupFields(opts.groupBy));
        removeIds = groups.flatMap((g) => g.remove.map((d) => d.record.id));
        const row = (d: { record: (typeof all)[number]; reasons: string[] }): Record<string, unknown> => ({
          id: d.record.id,
          time: d.record.snapshot.time,
          effectiveTime: effectiveTime(d.record).toISOString(),
          reasons: d.reasons,
        });
        ctx.out.result({ dryRun: opts.dryRun ?? false, groups: groups.map((g) => ({ key: g.key, keep: g.keep.map(row), remove: g.remove.map(row) })) }, () =>
          groups
            .map((g) =>
              [
                `${g.key}: keep ${g.keep.length}, remove ${g.remove.length}`,
                ...g.keep.map((d) => `  keep    ${shortId(d.record.id)}  ${d.record.snapshot.time.slice(0, 19).replace('T', ' ')}  ${d.reasons.join(', ')}`),
                ...g.remove.map((d) => `  remove  ${shortId(d.record.id)}  ${d.record.snapshot.time.slice(0, 19).replace('T', ' ')}`),
              ].join('\n'),
            )
            .join('\n'),
        );
      }
      if (!opts.dryRun) for (const id of removeIds) await repo.backend.remove({ type: 'snapshots', name: id });
    } finally {
      await lock.release();
    }
    if (opts.prune && !opts.dryRun) {
      const r = await runPrune(ctx, repo, { ...(opts.maxUnused ? { maxUnused: opts.maxUnused } : {}) });
      ctx.out.result({ prune: r }, () => describePrune(r, false));
    }
    return 0;
  } finally {
    await repo.close();
  }
}
