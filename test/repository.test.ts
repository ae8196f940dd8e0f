import test from 'ava';
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { LocalBackend } from '../core/backends/local.ts';
import { IntegrityError, RepositoryNotFoundError, WrongPasswordError } from '../core/errors.ts';
import { INSECURE_TEST_ARGON2 } from '../core/keyfile.ts';
import { Repository } from '../core/repository.ts';
import { PASSWORD, newRepo, openRepo } from './helpers/repo.ts';
import { tempDir } from './helpers/tmp.ts';
import { readFile, writeFile } from 'node:fs/promises';

async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

test('a wrong passphrase is refused with WrongPasswordError and writes nothing', async (t) => {
  const { dir } = await newRepo(t);
  const before = await listAll(dir);
  const e = await t.throwsAsync(openRepo(dir, 'not the passphrase'), { instanceOf: WrongPasswordError });
  t.regex(e.message, /wrong passphrase/);
  t.deepEqual(await listAll(dir), before);
});

test('opening a directory that is not a repository names the location', async (t) => {
  const dir = await tempDir(t);
  const e = await t.throwsAsync(Repository.open(new LocalBackend(dir), PASSWORD, { cacheRoot: null }), { instanceOf: RepositoryNotFoundError });
  t.true(e.message.includes(dir));
});

test('a config swapped for another repository\'s is detected', async (t) => {
  const a = await newRepo(t);
  const b = await newRepo(t);
  await writeFile(path.join(a.dir, 'config'), await readFile(path.join(b.dir, 'config')));
  await t.throwsAsync(openRepo(a.dir), { instanceOf: IntegrityError, message: /config/ });
});

test('a second key opens the repository; changing a passphrase rewrites one key file and no data', async (t) => {
  const { repo, dir } = await newRepo(t);
  await repo.saveObject('snapshots', 'snapshot', Buffer.from('{}'));
  const second = await repo.addKey('second passphrase', 'full', INSECURE_TEST_ARGON2);
  const r2 = await openRepo(dir, 'second passphrase');
  t.is(r2.keyName, second);
  t.is(r2.id, repo.id);
  const keys = await repo.listKeys();
  t.is(keys.length, 2);
  t.true(keys.every((k) => k.meta?.kind === 'full'));
  const dataBefore = (await listAll(dir)).filter((f) => !f.startsWith('keys'));
  const third = await r2.addKey('third', 'full', INSECURE_TEST_ARGON2);
  await r2.backend.remove({ type: 'keys', name: second });
  await t.throwsAsync(openRepo(dir, 'second passphrase'), { instanceOf: WrongPasswordError });
  t.is((await openRepo(dir, 'third')).keyName, third);
  t.deepEqual((await listAll(dir)).filter((f) => !f.startsWith('keys')), dataBefore);
});

test('a write-only host key can be added only to a repository made for them', async (t) => {
  const plain = await newRepo(t);
  await t.throwsAsync(plain.repo.addKey('host', 'host', INSECURE_TEST_ARGON2), { message: /write-only hosts/ });
  const wo = await newRepo(t, { writeOnlyHosts: true });
  await wo.repo.addKey('host', 'host', INSECURE_TEST_ARGON2);
  const host = await openRepo(wo.dir, 'host');
  t.is(host.keys.kind, 'host');
  t.is(host.keys.dataKey, null);
});

test('sealed objects are checked against their names when read', async (t) => {
  const { repo, dir } = await newRepo(t);
  const name = await repo.saveObject('snapshots', 'snapshot', Buffer.from('{"a":1}'));
  const file = path.join(dir, 'snapshots', name);
  const bytes = await readFile(file);
  bytes[bytes.length - 1]! ^= 1;
  await writeFile(file, bytes);
  const e = await t.throwsAsync(repo.loadObject('snapshots', 'snapshot', name), { instanceOf: IntegrityError });
  t.true(e.message.includes(`snapshots/${name}`));
});
