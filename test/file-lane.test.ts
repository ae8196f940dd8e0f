import test from 'ava';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { FileLane, type LaneBlob, type LaneFile, planReads } from '../restore/file-lane.ts';
import { PackReader } from '../core/pack-reader.ts';
import type { RestoreOutcome, RestoreStep } from '../core/seal-worker.ts';
import { tempDir } from './helpers/tmp.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Blobs of the pack file at `file`, end to end from its start, of the given lengths; `cached`: read on the lane's own thread. */
function cut(file: string, lengths: readonly number[], cached = false): LaneBlob[] {
  let offset = 0;
  return lengths.map((length) => {
    const b: LaneBlob = { type: 'data', id: randomBytes(32), key: randomBytes(32), checkId: false, path: file, offset, length, cached };
    offset += length;
    return b;
  });
}

/** Deterministic shuffle (packs hold a file's blobs in random order). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The worker's steps, standing in for the file system: each file's bytes as
 * they arrive, and a blob made to fail its check where asked (a fault a real
 * blob gives only with a damaged pack).
 */
function recordingSteps(failAt?: { file: number; blob: Uint8Array }) {
  const files = new Map<number, Buffer[]>();
  const blobsSeen: Uint8Array[] = [];
  const step = async (s: RestoreStep, read?: Buffer | Error): Promise<RestoreOutcome> => {
    if (s.kind === 'create') {
      files.set(s.file, []);
      return { seq: s.seq, done: true };
    }
    if (s.kind === 'finish') return { seq: s.seq, finished: true };
    const written = files.get(s.file)!;
    if (read instanceof Error) return { seq: s.seq, stage: 'read', error: read.message, at: Buffer.concat(written).length };
    if (!read) throw new Error('a blob came without its bytes');
    blobsSeen.push(s.id);
    if (failAt && failAt.file === s.file && Buffer.compare(Buffer.from(failAt.blob), Buffer.from(s.id)) === 0) return { seq: s.seq, failure: 'decrypt', at: Buffer.concat(written).length };
    written.push(Buffer.from(read));
    return { seq: s.seq, written: read.length };
  };
  return { files, blobsSeen, step };
}

function laneFile(seq: number, blobs: LaneBlob[]): LaneFile {
  return { seq, path: Buffer.from(`/nowhere/${seq}`), size: blobs.reduce((n, b) => n + b.length, 0), direct: false, blobs, mode: 0o644, mtime: 0 };
}

function expected(packs: Map<string, Buffer>, blobs: readonly LaneBlob[]): Buffer {
  return Buffer.concat(blobs.map((b) => packs.get(b.path)!.subarray(b.offset, b.offset + b.length)));
}

test('the blobs of a file that a pack holds close together are read as one span; large blobs far apart in a pack one by one', (t) => {
  // A database file's 64 KiB pages, shuffled within one pack among other files' blobs: one span.
  const pages = cut('/p/a', Array.from({ length: 64 }, () => 64 * KiB));
  const pagesOfFile = shuffled(pages.filter((_, i) => i % 2 === 0), 1);
  const pageUnits = new Set(planReads(pagesOfFile).map((r) => r.unit));
  t.is(pageUnits.size, 1);
  // Two 1 MiB blobs at both ends of a 16 MiB pack, the rest other files': one read each.
  const big = cut('/p/b', Array.from({ length: 16 }, () => MiB));
  const ends = [big[0]!, big[15]!];
  const endUnits = planReads(ends).map((r) => r.unit);
  t.is(new Set(endUnits).size, 2);
  t.deepEqual(
    endUnits.map((u) => u.length),
    [MiB, MiB],
  );
});

for (const [cached, how] of [[false, ' (reads on libuv threads)'], [true, ' (packs in the page cache, read on the lane thread)']] as const) {
  test(`a lane restores its files in order, each byte for byte, reading through an arena smaller than a span${how}`, async (t) => {
    const dir = await tempDir(t);
    const packs = new Map<string, Buffer>();
    const blobsOf: LaneBlob[][] = [];
    for (const name of ['a', 'b']) {
      const file = path.join(dir, name);
      const lengths = Array.from({ length: 48 }, (_, i) => 32 * KiB + ((i * 7919) % (64 * KiB)));
      const bytes = randomBytes(lengths.reduce((n, l) => n + l, 0));
      await writeFile(file, bytes);
      packs.set(file, bytes);
      blobsOf.push(cut(file, lengths, cached));
    }
    // File 1 takes pack a's blobs and pack b's, interleaved and shuffled (two workers filled two packs at once);
    // file 2 the rest of b; file 3 one blob of a again.
    const [a, b] = blobsOf as [LaneBlob[], LaneBlob[]];
    const f1 = shuffled(a, 3).flatMap((x, i) => [x, b[i]!]).slice(0, 80);
    const f2 = b.slice(40);
    const f3 = [a[5]!];
    const steps = recordingSteps();
    // 1 MiB of arena against spans of about 3 MiB: reads the lane waits on go past it.
    const reader = new PackReader(MiB);
    const lane = new FileLane({ read: (p, o, l, force, cached) => reader.read(p, o, l, force, cached), step: steps.step, progress: () => {} }, { maxReads: 4 });
    const outcomes = await Promise.all([lane.add(laneFile(1, f1)), lane.add(laneFile(2, f2)), lane.add(laneFile(3, f3))]);
    for (const [i, blobs] of [f1, f2, f3].entries()) {
      const got = Buffer.concat(steps.files.get(i + 1)!);
      t.true(got.equals(expected(packs, blobs)), `file ${i + 1}`);
      t.is(outcomes[i]!.written, got.length);
      t.is(outcomes[i]!.failed, undefined);
    }
    t.is(steps.blobsSeen.length, f1.length + f2.length + f3.length);
  });
}

for (const [cached, how] of [[false, ' (reads on libuv threads)'], [true, ' (packs in the page cache, read on the lane thread)']] as const) {
  test(`a blob that fails stops its file there: no later blob of it is opened, and the next file is restored whole${how}`, async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'pack');
    const lengths = Array.from({ length: 40 }, () => 100 * KiB);
    const bytes = randomBytes(40 * 100 * KiB);
    await writeFile(file, bytes);
    const blobs = cut(file, lengths, cached);
    const first = blobs.slice(0, 30);
    const second = blobs.slice(30);
    const steps = recordingSteps({ file: 1, blob: first[12]!.id });
    const reader = new PackReader(4 * MiB);
    const lane = new FileLane({ read: (p, o, l, force, cached) => reader.read(p, o, l, force, cached), step: steps.step, progress: () => {} }, { maxReads: 4 });
    const [o1, o2] = await Promise.all([lane.add(laneFile(1, first)), lane.add(laneFile(2, second))]);
    t.is(o1!.failed?.index, 12);
    t.is(o1!.written, 12 * 100 * KiB);
    t.true(Buffer.concat(steps.files.get(1)!).equals(expected(new Map([[file, bytes]]), first.slice(0, 12))));
    // The failed blob was the last of file 1 to be opened.
    t.false(steps.blobsSeen.some((id) => first.slice(13).some((b) => Buffer.compare(Buffer.from(b.id), Buffer.from(id)) === 0)));
    t.true(Buffer.concat(steps.files.get(2)!).equals(expected(new Map([[file, bytes]]), second)));
    t.is(o2!.failed, undefined);
  });
}

for (const [cached, how] of [[false, ' (reads on libuv threads)'], [true, ' (packs in the page cache, read on the lane thread)']] as const) {
  test(`a pack that cannot be opened fails the blob read from it, and the lane goes on with the next file${how}`, async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'pack');
    const bytes = randomBytes(8 * 100 * KiB);
    await writeFile(file, bytes);
    const blobs = cut(file, Array.from({ length: 8 }, () => 100 * KiB), cached);
    const missing = cut(path.join(dir, 'gone'), [100 * KiB], cached);
    const steps = recordingSteps();
    const reader = new PackReader(4 * MiB);
    const lane = new FileLane({ read: (p, o, l, force, cached) => reader.read(p, o, l, force, cached), step: steps.step, progress: () => {} }, { maxReads: 4 });
    const [o1, o2] = await Promise.all([lane.add(laneFile(1, [...blobs.slice(0, 3), ...missing, blobs[3]!])), lane.add(laneFile(2, blobs.slice(4)))]);
    t.is(o1!.failed?.index, 3);
    t.is((o1!.failed?.outcome as { stage?: string }).stage, 'read');
    t.regex((o1!.failed!.outcome as { error: string }).error, /ENOENT/);
    t.is(o1!.written, 3 * 100 * KiB);
    t.true(Buffer.concat(steps.files.get(2)!).equals(expected(new Map([[file, bytes]]), blobs.slice(4))));
  });
}

for (const [cached, how] of [[false, ' (reads on libuv threads)'], [true, ' (packs in the page cache, read on the lane thread)']] as const) {
  test(`a span that a pack cut short cannot fill: the file keeps every blob before the first one past the end${how}`, async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'pack');
    const bytes = randomBytes(40 * 100 * KiB);
    const blobs = cut(file, Array.from({ length: 40 }, () => 100 * KiB), cached);
    // The file takes the pack's blobs in random order (three that survive first); the pack lost its last 14.5 blobs.
    const order = [blobs[4]!, blobs[0]!, blobs[9]!, ...shuffled([...blobs.slice(1, 4), ...blobs.slice(5, 9), ...blobs.slice(10)], 7)];
    const kept = 25 * 100 * KiB + 50 * KiB;
    await writeFile(file, bytes.subarray(0, kept));
    const firstLost = order.findIndex((b) => b.offset + b.length > kept);
    t.true(firstLost >= 3);
    const steps = recordingSteps();
    const reader = new PackReader(8 * MiB);
    const lane = new FileLane({ read: (p, o, l, force, cached) => reader.read(p, o, l, force, cached), step: steps.step, progress: () => {} }, { maxReads: 4 });
    t.is(new Set(planReads(order).map((r) => r.unit)).size, 1);
    const outcome = await lane.add(laneFile(1, order));
    t.is(outcome.failed?.index, firstLost);
    t.true(Buffer.concat(steps.files.get(1)!).equals(expected(new Map([[file, bytes]]), order.slice(0, firstLost))));
  });
}

test('a lane writing a file from packs in the page cache lets its thread\'s event loop turn before the file ends, so progress is heard', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'pack');
  const lengths = Array.from({ length: 64 }, () => 16 * KiB);
  const bytes = randomBytes(lengths.reduce((n, l) => n + l, 0));
  await writeFile(file, bytes);
  const blobs = cut(file, lengths, true);
  const steps = recordingSteps();
  let progressed = 0;
  const reader = new PackReader(4 * MiB);
  // Every read and step here settles without a wait, as a worker's do for packs in the page cache: only the lane
  // can let the event loop turn. breatheMs 0 makes it do so after every blob rather than every 10 ms.
  const lane = new FileLane({ read: (p, o, l, force, cached) => reader.read(p, o, l, force, cached), step: steps.step, progress: (_, n) => (progressed += n) }, { maxReads: 4, breatheMs: 0 });
  let heardAt = -1;
  setImmediate(() => (heardAt = progressed));
  const outcome = await lane.add(laneFile(1, blobs));
  t.true(heardAt >= 0 && heardAt < bytes.length, `the event loop turned with ${heardAt} of ${bytes.length} bytes written`);
  t.is(outcome.written, bytes.length);
  t.true(Buffer.concat(steps.files.get(1)!).equals(bytes));
});

test('a pack reader gives no room past its arena unless forced, and a released read makes room again', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'pack');
  const bytes = randomBytes(3 * MiB);
  await writeFile(file, bytes);
  const reader = new PackReader(2 * MiB);
  const one = await reader.read(file, 0, 1536 * KiB, false)!;
  t.true(one.bytes.equals(bytes.subarray(0, 1536 * KiB)));
  t.is(reader.read(file, MiB, MiB, false), null);
  const forced = await reader.read(file, MiB, MiB, true)!;
  t.true(forced.bytes.equals(bytes.subarray(MiB, 2 * MiB)));
  one.release();
  const again = await reader.read(file, 2 * MiB, MiB, false)!;
  t.true(again.bytes.equals(bytes.subarray(2 * MiB)));
});

test('a read past the end of a pack fails with a short-read error that names the offset', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'pack');
  await writeFile(file, randomBytes(100 * KiB));
  const reader = new PackReader(MiB);
  const e = await t.throwsAsync(reader.read(file, 90 * KiB, 20 * KiB, false)!);
  t.regex(e!.message, /wanted 20480 bytes at offset 92160/);
  t.is((e as { code?: string }).code, 'SHORT_READ');
});
