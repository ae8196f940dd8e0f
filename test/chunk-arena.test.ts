import test from 'ava';
import { ChunkArena, type Region } from '../core/chunk-arena.ts';

function overlaps(a: Region, b: Region): boolean {
  return a.offset < b.offset + b.length && b.offset < a.offset + a.length;
}

test('arena regions never overlap, and freed space merges back into one span', async (t) => {
  const arena = new ChunkArena(1 << 20);
  const held: Region[] = [];
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let step = 0; step < 2000; step++) {
    if (held.length > 0 && (rand(2) === 0 || arena.available < 64 * 1024)) {
      const r = held.splice(rand(held.length), 1)[0]!;
      // Give back the tail first, then the head: partial releases must merge as well as whole ones.
      const cut = rand(r.length + 1);
      arena.release(r.offset + cut, r.length - cut);
      arena.release(r.offset, cut);
    } else {
      const want = 1 + rand(32 * 1024);
      const r = arena.tryAlloc(want);
      if (!r) continue;
      t.true(r.offset + r.length <= arena.size);
      for (const h of held) if (overlaps(r, h)) t.fail(`region ${r.offset}+${r.length} overlaps ${h.offset}+${h.length}`);
      held.push(r);
    }
  }
  for (const r of held) arena.release(r.offset, r.length);
  t.is(arena.available, arena.size);
  t.deepEqual(await arena.alloc(arena.size), { offset: 0, length: arena.size });
});

test('a waiting request is served first once enough contiguous room is free; smaller later ones do not overtake it', async (t) => {
  const arena = new ChunkArena(100);
  const a = await arena.alloc(40);
  const b = await arena.alloc(40);
  const order: string[] = [];
  const big = arena.alloc(60).then((r) => (order.push('big'), r));
  const small = arena.alloc(10).then((r) => (order.push('small'), r));
  await Promise.resolve();
  t.deepEqual(order, [], 'twenty bytes are free, but the big request is first in line');
  arena.release(a.offset, a.length);
  await new Promise((r) => setImmediate(r));
  t.deepEqual(order, [], 'sixty free in two pieces is not sixty contiguous');
  arena.release(b.offset, b.length);
  const [rb, rs] = await Promise.all([big, small]);
  t.deepEqual(order, ['big', 'small']);
  t.false(overlaps(rb, rs));
  t.is(arena.tryAlloc(101), null);
  await t.throwsAsync(arena.alloc(101), { instanceOf: RangeError });
});
