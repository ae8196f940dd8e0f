/**
 * The Backend contract (core/backend.ts), as tests every backend must pass:
 * the local directory here, the HTTPS client against a real server, and any
 * later store. `make` returns a fresh, created backend.
 */
import type { ExecutionContext, TestFn } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { type Backend, type ObjectType, loadPieces } from '../../core/backend.ts';
import { IntegrityError, ObjectExistsError, ObjectNotFoundError, RepositoryExistsError } from '../../core/errors.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export function backendSuite(test: TestFn, label: string, make: (t: ExecutionContext) => Promise<Backend>): void {
  test(`${label}: saved objects load back byte for byte, whole and by range`, async (t) => {
    const be = await make(t);
    const data = randomBytes(100_000);
    const h = { type: 'data' as const, name: sha(data) };
    await be.save(h, data);
    t.deepEqual(await be.load(h), data);
    t.deepEqual(await be.load(h, { offset: 1000, length: 5000 }), data.subarray(1000, 6000));
    t.deepEqual(await be.load(h, { offset: 99_990, length: 10 }), data.subarray(99_990));
    t.is((await be.stat(h)).size, 100_000);
  });

  test(`${label}: a save given in pieces stores their concatenation`, async (t) => {
    const be = await make(t);
    const parts = [randomBytes(10), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
    const whole = Buffer.concat(parts);
    const h = { type: 'data' as const, name: sha(whole) };
    await be.save(h, parts);
    t.deepEqual(await be.load(h), whole);
  });

  test(`${label}: saving the same bytes again succeeds; other bytes under the name are refused`, async (t) => {
    const be = await make(t);
    const data = randomBytes(1000);
    const h = { type: 'snapshots' as const, name: sha(data) };
    await be.save(h, data);
    await be.save(h, data);
    await t.throwsAsync(be.save(h, randomBytes(1000)), { instanceOf: ObjectExistsError });
    t.deepEqual(await be.load(h), data);
  });

  test(`${label}: missing objects and short ranges are errors, not empty data`, async (t) => {
    const be = await make(t);
    const missing = { type: 'index' as const, name: sha(Buffer.from('nothing')) };
    await t.throwsAsync(be.load(missing), { instanceOf: ObjectNotFoundError });
    await t.throwsAsync(be.stat(missing), { instanceOf: ObjectNotFoundError });
    const data = randomBytes(100);
    const h = { type: 'index' as const, name: sha(data) };
    await be.save(h, data);
    await t.throwsAsync(be.load(h, { offset: 50, length: 100 }), { instanceOf: IntegrityError });
  });

  test(`${label}: pieces of a range load each in a buffer of its own, byte for byte, and a short range is an error`, async (t) => {
    const be = await make(t);
    // Large enough to arrive in many network chunks, so that pieces straddle chunk boundaries.
    const data = randomBytes(3 << 20);
    const h = { type: 'data' as const, name: sha(data) };
    await be.save(h, data);
    const pieces = [
      { offset: 7, length: 1 },
      { offset: 100, length: 70_000 },
      { offset: 70_100, length: 1_000_000 },
      { offset: 2_000_000, length: 0 },
      { offset: 2_000_001, length: (3 << 20) - 2_000_001 },
    ];
    const got = await loadPieces(be, h, pieces);
    t.is(got.length, pieces.length);
    got.forEach((b, i) => {
      t.deepEqual(b, data.subarray(pieces[i]!.offset, pieces[i]!.offset + pieces[i]!.length), `piece ${i}`);
      // A backend that reads pieces itself gives each a buffer of its own, which a restore moves to a worker uncopied.
      if (be.loadPieces) t.is(b.byteLength, b.buffer.byteLength, `piece ${i} fills a buffer of its own`);
    });
    await t.throwsAsync(loadPieces(be, h, [{ offset: 10, length: 5 }, { offset: (3 << 20) - 5, length: 10 }]), { instanceOf: IntegrityError });
  });

  test(`${label}: list yields every object of a type once, and only that type`, async (t) => {
    const be = await make(t);
    const names = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const d = randomBytes(50 + i);
      const name = sha(d);
      names.add(name);
      await be.save({ type: 'data', name }, d);
    }
    const other = randomBytes(10);
    await be.save({ type: 'locks', name: sha(other) }, other);
    const listed: string[] = [];
    for await (const o of be.list('data')) listed.push(o.name);
    t.is(listed.length, 30);
    t.deepEqual(listed.sort(), [...names].sort());
    const types: ObjectType[] = ['keys', 'index', 'snapshots'];
    for (const ty of types) {
      let n = 0;
      for await (const _ of be.list(ty)) n++;
      t.is(n, 0, ty);
    }
  });

  test(`${label}: remove deletes, and removing again is not an error`, async (t) => {
    const be = await make(t);
    const d = randomBytes(10);
    const h = { type: 'locks' as const, name: sha(d) };
    await be.save(h, d);
    await be.remove(h);
    await t.throwsAsync(be.load(h), { instanceOf: ObjectNotFoundError });
    await be.remove(h);
    t.pass();
  });

  test(`${label}: names that are not 64 hex digits are refused`, async (t) => {
    const be = await make(t);
    for (const name of ['../../etc/passwd', 'ABC', 'a'.repeat(63), 'g'.repeat(64), `${'a'.repeat(64)}/x`]) {
      await t.throwsAsync(be.save({ type: 'data', name }, Buffer.from('x')), undefined, name);
    }
    await t.throwsAsync(be.save({ type: 'config', name: 'other' }, Buffer.from('x')));
  });

  test(`${label}: creating a repository where one exists is refused`, async (t) => {
    const be = await make(t);
    await be.save({ type: 'config', name: 'config' }, Buffer.from('c'));
    await t.throwsAsync(be.create(), { instanceOf: RepositoryExistsError });
  });
}
