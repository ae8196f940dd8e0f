/** `stowage snapshots`: lists snapshots, oldest first. */
import { CLOCK_SKEW_MS } from '../../core/retention.ts';
import { type SnapshotRecord, listSnapshots, shortId } from '../../core/snapshot.ts';
import { type Context, openRepository } from '../context.ts';
import { formatBytes } from '../output.ts';

export interface SnapshotsOptions {
  readonly host?: string[];
  readonly tag?: string[];
  readonly path?: string[];
  readonly source?: string[];
  readonly latest?: string;
}

function sourceName(s: { kind: string; path?: string; name?: string }): string {
  return s.kind === 'path' ? s.path! : `${s.kind}:${s.name}`;
}

export function filterSnapshots(records: readonly SnapshotRecord[], opts: SnapshotsOptions): SnapshotRecord[] {
  let out = records.filter(
    (r) =>
      (!opts.host?.length || opts.host.includes(r.snapshot.host)) &&
      (!opts.tag?.length || opts.tag.some((t) => t.split(',').every((x) => r.snapshot.tags.includes(x)))) &&
      (!opts.path?.length || opts.path.every((p) => r.snapshot.paths.includes(p))) &&
      (!opts.source?.length || opts.source.some((src) => r.snapshot.sources.some((x) => sourceName(x) === src))),
  );
  if (opts.latest !== undefined) {
    const n = Number(opts.latest);
    const byGroup = new Map<string, SnapshotRecord[]>();
    for (const r of out) {
      const key = `${r.snapshot.host}\0${[...r.snapshot.paths].sort().join('\0')}`;
      byGroup.set(key, [...(byGroup.get(key) ?? []), r]);
    }
    const keep = new Set([...byGroup.values()].flatMap((g) => g.slice(-n)));
    out = out.filter((r) => keep.has(r));
  }
  return out;
}

export async function run(ctx: Context, opts: SnapshotsOptions): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    const records = filterSnapshots(await listSnapshots(repo), opts);
    ctx.out.list(
      records.map((r) => ({ id: r.id, short_id: shortId(r.id), ...r.snapshot, receivedAt: r.receivedAt?.toISOString() })),
      () => {
        if (records.length === 0) return 'no snapshots';
        const rows = records.map((r) => [
          shortId(r.id),
          r.snapshot.time.replace('T', ' ').slice(0, 19),
          r.snapshot.host,
          r.snapshot.tags.join(','),
          formatBytes(r.snapshot.stats.bytes),
          r.snapshot.sources.map(sourceName).join(' ') + (r.snapshot.errors ? ' (partial)' : '') + timeNote(r),
        ]);
        return table(['ID', 'Time', 'Host', 'Tags', 'Size', 'Sources'], rows) + `\n${records.length} snapshots`;
      },
    );
    return 0;
  } finally {
    await repo.close();
  }
}

/** Where the snapshot's claimed time and the server's receive time disagree, both are shown (see core/retention.ts). */
function timeNote(r: SnapshotRecord): string {
  if (!r.receivedAt) return '';
  const claimed = Date.parse(r.snapshot.time);
  if (Math.abs(claimed - r.receivedAt.getTime()) <= CLOCK_SKEW_MS) return '';
  return ` [server received it ${r.receivedAt.toISOString().replace('T', ' ').slice(0, 19)}]`;
}

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}
