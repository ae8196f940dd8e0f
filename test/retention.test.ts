import test from 'ava';
import { applyPolicy, type RetentionPolicy } from '../core/retention.ts';
import type { SnapshotRecord } from '../core/snapshot.ts';

/** A year of nightly snapshots at 02:00 UTC, plus a 14:00 one on each of the last three days. */
function history(host = 'web1'): SnapshotRecord[] {
  const out: SnapshotRecord[] = [];
  const add = (iso: string, tags: string[] = []): void => {
    out.push({
      id: `${host}-${iso}`,
      snapshot: {
        version: 1,
        time: iso,
        host,
        username: 'root',
        tags,
        paths: ['/srv'],
        sources: [{ kind: 'path', path: '/srv' }],
        tree: '0'.repeat(64),
        programVersion: 'test',
        stats: { files: 0, dirs: 0, bytes: 0, filesNew: 0, filesChanged: 0, filesUnchanged: 0, blobsAdded: 0, bytesAdded: 0, bytesUploaded: 0, durationMs: 0 },
      },
    });
  };
  for (let d = new Date('2025-11-24T02:00:00.000Z'); d <= new Date('2026-11-23T02:00:00.000Z'); d = new Date(d.getTime() + 86_400_000)) {
    add(d.toISOString(), d.toISOString().startsWith('2026-03-15') ? ['keep'] : []);
  }
  for (const day of ['2026-11-21', '2026-11-22', '2026-11-23']) add(`${day}T14:00:00.000Z`);
  return out;
}

const kept = (records: SnapshotRecord[], policy: RetentionPolicy): string[] =>
  applyPolicy(records, policy)
    .flatMap((g) => g.keep.map((d) => d.record.snapshot.time.slice(0, 16)))
    .sort();

const at = (...times: string[]): string[] => times.map((t) => (t.length === 10 ? `${t}T02:00` : t)).sort();

const cases: [string, RetentionPolicy, string[]][] = [
  ['keep-last 3', { last: 3 }, at('2026-11-23T14:00', '2026-11-23', '2026-11-22T14:00')],
  ['keep-hourly 2', { hourly: 2 }, at('2026-11-23T14:00', '2026-11-23')],
  ['keep-daily 7', { daily: 7 }, at('2026-11-23T14:00', '2026-11-22T14:00', '2026-11-21T14:00', '2026-11-20', '2026-11-19', '2026-11-18', '2026-11-17')],
  // 2026-11-23 is a Monday: ISO weeks 48 (one day so far), 47, 46, 45 end on Sundays 22, 15, 8.
  ['keep-weekly 4', { weekly: 4 }, at('2026-11-23T14:00', '2026-11-22T14:00', '2026-11-15', '2026-11-08')],
  [
    'keep-monthly 12',
    { monthly: 12 },
    at('2026-11-23T14:00', '2026-10-31', '2026-09-30', '2026-08-31', '2026-07-31', '2026-06-30', '2026-05-31', '2026-04-30', '2026-03-31', '2026-02-28', '2026-01-31', '2025-12-31'),
  ],
  ['keep-yearly 2', { yearly: 2 }, at('2026-11-23T14:00', '2025-12-31')],
  ['keep-yearly 5 keeps what there is', { yearly: 5 }, at('2026-11-23T14:00', '2025-12-31')],
  ['keep-within 2d', { withinMs: 2 * 86_400_000 }, at('2026-11-23T14:00', '2026-11-23', '2026-11-22T14:00', '2026-11-22', '2026-11-21T14:00')],
  ['keep-tag keep', { tags: ['keep'] }, at('2026-03-15')],
  ['last 1 + daily 3 + monthly 2 + tag', { last: 1, daily: 3, monthly: 2, tags: ['keep'] }, at('2026-11-23T14:00', '2026-11-22T14:00', '2026-11-21T14:00', '2026-10-31', '2026-03-15')],
];

for (const [name, policy, expected] of cases) {
  test(`retention over a year of snapshots: ${name}`, (t) => {
    t.deepEqual(kept(history(), policy), expected);
  });
}

test('every snapshot is either kept with a reason or removed, never both', (t) => {
  const records = history();
  const [group] = applyPolicy(records, { daily: 7, weekly: 4, monthly: 12 });
  t.is(group!.keep.length + group!.remove.length, records.length);
  for (const d of group!.keep) t.true(d.reasons.length > 0);
  const weekly = group!.keep.find((d) => d.record.snapshot.time.startsWith('2026-11-15'));
  t.deepEqual(weekly?.reasons, ['weekly 2026-W46']);
});

test('policies apply per host and source; an empty policy is refused', (t) => {
  const groups = applyPolicy([...history('web1'), ...history('db1')], { last: 2 });
  t.is(groups.length, 2);
  for (const g of groups) t.is(g.keep.length, 2);
  t.throws(() => applyPolicy(history(), {}), { message: /no retention policy/ });
});

test('a snapshot dated in the future by its writer counts from when the server received it', (t) => {
  const records = history();
  // A stolen host key writes snapshots claiming to be from 2030, received now.
  const forged = [1, 2, 3].map((i) => {
    const base = records.at(-1)!;
    return { id: `forged-${i}`, snapshot: { ...base.snapshot, time: `2030-01-0${i}T00:00:00.000Z` }, receivedAt: new Date(`2026-11-23T14:0${i}:00.000Z`) };
  });
  const kept = applyPolicy([...records, ...forged], { daily: 3 })[0]!.keep.map((d) => d.record.id);
  // They share today's bucket with the real snapshot; yesterday's and the day before's real ones survive.
  t.true(kept.includes('web1-2026-11-22T14:00:00.000Z'));
  t.true(kept.includes('web1-2026-11-21T14:00:00.000Z'));
});
