import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Backend, ObjectInfo, ObjectType } from '../core/backend.ts';
import { LocalBackend } from '../core/backends/local.ts';
import { PackWarmer } from '../core/pack-warmer.ts';
import { tempDir } from './helpers/tmp.ts';

/** A local repository holding `sizes.length` data objects of those sizes. */
async function repoWithPacks(t: Parameters<typeof tempDir>[0], sizes: readonly number[]): Promise<LocalBackend> {
  const be = new LocalBackend(path.join(await tempDir(t), 'repo'));
  await be.create();
  for (const size of sizes) {
    const bytes = randomBytes(size);
    await be.save({ type: 'data', name: createHash('sha256').update(bytes).digest('hex') }, bytes);
  }
  return be;
}

const SIZES = [3 << 20, (1 << 20) + 17, 5000, 1, 2 << 20];
const TOTAL = SIZES.reduce((a, b) => a + b, 0);

test('a warmer left to run reads every pack of a local repository to its end, and names each', async (t) => {
  const be = await repoWithPacks(t, SIZES);
  const into = new Set<string>();
  const w = PackWarmer.start(be, { budgetBytes: 1 << 30, into });
  t.truthy(w);
  t.deepEqual(await w!.finished(), { packs: SIZES.length, bytes: TOTAL });
  const names: string[] = [];
  for await (const o of be.list('data')) names.push(o.name);
  t.deepEqual([...into].sort(), names.sort());
});

test('a warmer stopped before its first read reads nothing', async (t) => {
  const be = await repoWithPacks(t, SIZES);
  const w = PackWarmer.start(be, { budgetBytes: 1 << 30 })!;
  t.deepEqual(await w.stop(), { packs: 0, bytes: 0 });
});

test('a warmer stops at its byte budget, each of its streams after at most one more read', async (t) => {
  const be = await repoWithPacks(t, SIZES);
  const into = new Set<string>();
  const r = await PackWarmer.start(be, { budgetBytes: 1, streams: 2, into })!.finished();
  t.true(r.bytes > 0);
  t.true(r.bytes <= 2 * (1 << 20), `read ${r.bytes} bytes`);
  t.true(r.packs < SIZES.length);
  // Only packs read to their end are named: a restore reads the others on libuv's threads, where a disk read does not stall it.
  t.is(into.size, r.packs);
});

test('a pack that is gone by the time it is read is passed over, and the others are still read', async (t) => {
  const be = await repoWithPacks(t, SIZES);
  // Fault injected: the listing names a pack that a prune has just removed.
  const listing: Backend = Object.create(be, {
    list: {
      value: async function* (type: ObjectType): AsyncIterable<ObjectInfo> {
        yield { name: 'f'.repeat(64), size: 1 << 20 };
        yield* be.list(type);
      },
    },
  }) as Backend;
  t.deepEqual(await PackWarmer.start(listing, { budgetBytes: 1 << 30 })!.finished(), { packs: SIZES.length, bytes: TOTAL });
});

test('a listing that fails ends the warming quietly with what was read', async (t) => {
  const be = await repoWithPacks(t, SIZES);
  const failing: Backend = Object.create(be, {
    list: {
      value: async function* (): AsyncIterable<ObjectInfo> {
        yield* [];
        throw new Error('EIO: the repository disk went away');
      },
    },
  }) as Backend;
  t.deepEqual(await PackWarmer.start(failing)!.finished(), { packs: 0, bytes: 0 });
});

test('a backend whose objects are not files here (a server, S3) is not warmed', (t) => {
  const remote: Backend = Object.create(new LocalBackend('/nonexistent'), { filePath: { value: undefined } }) as Backend;
  t.is(PackWarmer.start(remote), null);
});
