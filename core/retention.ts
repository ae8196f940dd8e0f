/**
 * Retention policies (`forget`): which snapshots to keep, and why.
 *
 * Snapshots are grouped (default: by host and sources), and within a group,
 * newest first:
 *
 * - keep-last N: the N newest;
 * - keep-hourly/daily/weekly/monthly/yearly N: the newest snapshot of each
 *   of the N newest hours/days/ISO weeks/months/years that have one (UTC);
 * - keep-within D: every snapshot at most D older than the group's newest;
 * - keep-tag T: every snapshot carrying tag T.
 *
 * A snapshot is kept if any rule keeps it; the reasons are reported.
 *
 * Time: a snapshot's time is what its writer claims. Where the store
 * attests when it received the snapshot (the server does), the earlier of
 * the two counts, so a client that writes snapshots dated in the future
 * cannot make them the "newest" and push real ones out of the policy.
 */
import { UsageError } from './errors.ts';
import type { SnapshotRecord } from './snapshot.ts';

export interface RetentionPolicy {
  readonly last?: number;
  readonly hourly?: number;
  readonly daily?: number;
  readonly weekly?: number;
  readonly monthly?: number;
  readonly yearly?: number;
  /** Milliseconds before the group's newest snapshot. */
  readonly withinMs?: number;
  readonly tags?: readonly string[];
}

export type GroupField = 'host' | 'paths' | 'tags';

export interface Decision {
  readonly record: SnapshotRecord;
  /** Why it is kept (empty: it is removed). */
  readonly reasons: string[];
}

export interface GroupDecision {
  readonly key: string;
  readonly keep: Decision[];
  readonly remove: Decision[];
}

/** Tolerated lead of a snapshot's claimed time over the server's receive time (clock skew). */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

/** The time a policy counts: the claimed time, but never later than the server says it arrived. */
export function effectiveTime(r: SnapshotRecord): Date {
  const claimed = new Date(r.snapshot.time);
  if (!r.receivedAt) return claimed;
  return claimed.getTime() > r.receivedAt.getTime() + CLOCK_SKEW_MS ? r.receivedAt : claimed;
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return !p.last && !p.hourly && !p.daily && !p.weekly && !p.monthly && !p.yearly && !p.withinMs && !(p.tags && p.tags.length > 0);
}

export function groupKey(r: SnapshotRecord, by: readonly GroupField[]): string {
  const s = r.snapshot;
  return by
    .map((f) => {
      if (f === 'host') return `host=${s.host}`;
      if (f === 'paths') return `sources=${s.sources.map((x) => (x.kind === 'path' ? x.path : `${x.kind}:${x.name}`)).sort().join(',')}`;
      return `tags=${[...s.tags].sort().join(',')}`;
    })
    .join(' ');
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** ISO 8601 week-numbering year and week, in UTC. */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${pad(week)}`;
}

const BUCKETS: { key: keyof RetentionPolicy; label: string; of: (d: Date) => string }[] = [
  { key: 'hourly', label: 'hourly', of: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}` },
  { key: 'daily', label: 'daily', of: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` },
  { key: 'weekly', label: 'weekly', of: isoWeek },
  { key: 'monthly', label: 'monthly', of: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}` },
  { key: 'yearly', label: 'yearly', of: (d) => String(d.getUTCFullYear()) },
];

export function applyPolicy(records: readonly SnapshotRecord[], policy: RetentionPolicy, groupBy: readonly GroupField[] = ['host', 'paths']): GroupDecision[] {
  if (isEmptyPolicy(policy)) {
    throw new UsageError('no retention policy given (--keep-last, --keep-daily, --keep-within, …); refusing to forget every snapshot');
  }
  const groups = new Map<string, SnapshotRecord[]>();
  for (const r of records) {
    const k = groupKey(r, groupBy);
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const out: GroupDecision[] = [];
  for (const [key, members] of groups) {
    const sorted = members
      .map((record) => ({ record, time: effectiveTime(record) }))
      .sort((a, b) => b.time.getTime() - a.time.getTime() || b.record.id.localeCompare(a.record.id));
    const reasons = sorted.map(() => [] as string[]);
    if (policy.last) for (let i = 0; i < Math.min(policy.last, sorted.length); i++) reasons[i]!.push('last');
    for (const b of BUCKETS) {
      const n = policy[b.key] as number | undefined;
      if (!n) continue;
      let seen = 0;
      let lastBucket: string | null = null;
      for (let i = 0; i < sorted.length && seen < n; i++) {
        const bucket = b.of(sorted[i]!.time);
        if (bucket === lastBucket) continue;
        lastBucket = bucket;
        seen++;
        reasons[i]!.push(`${b.label} ${bucket}`);
      }
    }
    if (policy.withinMs && sorted.length > 0) {
      const newest = sorted[0]!.time.getTime();
      sorted.forEach((s, i) => {
        if (newest - s.time.getTime() <= policy.withinMs!) reasons[i]!.push('within');
      });
    }
    if (policy.tags?.length) {
      sorted.forEach((s, i) => {
        const tag = policy.tags!.find((t) => t.split(',').every((x) => s.record.snapshot.tags.includes(x)));
        if (tag) reasons[i]!.push(`tag ${tag}`);
      });
    }
    const decisions = sorted.map((s, i) => ({ record: s.record, reasons: reasons[i]! }));
    out.push({ key, keep: decisions.filter((d) => d.reasons.length > 0), remove: decisions.filter((d) => d.reasons.length === 0) });
  }
  return out;
}
