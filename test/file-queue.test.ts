import test from 'ava';
import { FileQueue } from '../restore/file-queue.ts';

const bySize = (n: number): number => n;

test('items come out largest first, whatever order they went in', async (t) => {
  const q = new FileQueue<number>(bySize);
  const sizes = [5, 1, 9, 3, 9, 7, 0, 2, 8, 6, 4];
  for (const s of sizes) q.push(s);
  q.end();
  const out: number[] = [];
  for (let s = await q.take(); s !== null; s = await q.take()) out.push(s);
  t.deepEqual(out, [...sizes].sort((a, b) => b - a));
});

test('a taker that waits gets the next item pushed, and null once the queue ends', async (t) => {
  const q = new FileQueue<number>(bySize);
  const first = q.take();
  const second = q.take();
  q.push(3);
  t.is(await first, 3);
  q.end();
  t.is(await second, null);
  t.is(await q.take(), null);
});

test('abandon drops what is waiting and what is pushed later; a waiting taker gets null', async (t) => {
  const q = new FileQueue<number>(bySize);
  const taker = q.take();
  q.push(1);
  t.is(await taker, 1);
  q.push(2);
  const later = new FileQueue<number>(bySize);
  const waiting = later.take();
  later.abandon();
  t.is(await waiting, null);
  q.abandon();
  t.true(q.abandoned);
  q.push(3);
  t.is(q.length, 0);
  t.is(await q.take(), null);
});

test('pushing after the end (not abandoned) is a bug and says so', (t) => {
  const q = new FileQueue<number>(bySize);
  q.end();
  t.throws(() => q.push(1), { message: /push after end/ });
});
