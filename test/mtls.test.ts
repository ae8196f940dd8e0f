/**
 * Mutual TLS: client certificates from the server's own CA, scoped to a
 * repository and a role, revocable. A real server on loopback.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openHttpsBackend } from '../core/backends/https.ts';
import { ForbiddenError } from '../core/errors.ts';
import { ClientAuthority } from '../server/client-certs.ts';
import { stateDirOf } from '../server/server.ts';
import type { Role } from '../server/tokens.ts';
import { stowage, testEnv } from './helpers/cli.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function issue(t: ExecutionContext, stateDir: string, host: string, repo: string, role: Role): Promise<{ cert: string; key: string; serial: string }> {
  const dir = await tempDir(t);
  const r = await new ClientAuthority(stateDir).issue(host, repo, role);
  fs.writeFileSync(path.join(dir, 'c.crt'), r.cert);
  fs.writeFileSync(path.join(dir, 'c.key'), r.key, { mode: 0o600 });
  return { cert: path.join(dir, 'c.crt'), key: path.join(dir, 'c.key'), serial: r.record.serial };
}

async function client(t: ExecutionContext, server: TestServer, repo: string, creds: { cert?: string; key?: string; token?: string }) {
  const be = await openHttpsBackend(`${server.url}/${repo}`, {
    env: { STOWAGE_CONFIG_DIR: await tempDir(t), STOWAGE_RETRY_SECONDS: '1', ...(creds.token ? { STOWAGE_TOKEN: creds.token } : {}) },
    serverFingerprint: server.fingerprint,
    ...(creds.cert ? { clientCert: creds.cert, clientKey: creds.key! } : {}),
  });
  t.teardown(() => be.close());
  return be;
}

test('with client certificates required, every wrong credential is refused and the right one works', async (t) => {
  const server = await startTestServer(t, { clientCerts: 'required' });
  const state = stateDirOf(server.dataDir);
  const good = await issue(t, state, 'web1', 'web', 'append');
  const admin = await issue(t, state, 'ops', 'web', 'admin');
  const elsewhere = await issue(t, state, 'db1', 'db', 'append');
  const revoked = await issue(t, state, 'old', 'web', 'append');
  t.is(await new ClientAuthority(state).revoke('old'), 1);
  const foreign = await issue(t, path.join(await tempDir(t), 'other-ca'), 'web1', 'web', 'append');

  const be = await client(t, server, 'web', good);
  await be.create();
  const data = randomBytes(2000);
  const h = { type: 'data' as const, name: sha(data) };
  await be.save(h, data);
  t.deepEqual(await be.load(h), data);

  const tokenOnly = await client(t, server, 'web', { token: await server.token('web', 'admin') });
  t.regex((await t.throwsAsync(tokenOnly.load(h), { instanceOf: ForbiddenError })).message, /requires a client certificate/);
  t.regex((await t.throwsAsync((await client(t, server, 'web', foreign)).load(h), { instanceOf: ForbiddenError })).message, /not issued by this server's CA/);
  t.regex((await t.throwsAsync((await client(t, server, 'web', revoked)).load(h), { instanceOf: ForbiddenError })).message, /revoked/);
  t.regex((await t.throwsAsync((await client(t, server, 'web', elsewhere)).load(h), { instanceOf: ForbiddenError })).message, /does not belong to that repository/);
  t.regex((await t.throwsAsync(be.remove(h), { instanceOf: ForbiddenError })).message, /cannot delete/);
  await (await client(t, server, 'web', admin)).remove(h);
  await t.throwsAsync(be.load(h));
});

test('a full backup and restore with a client certificate and no token', async (t) => {
  const server = await startTestServer(t, { clientCerts: 'required' });
  const work = await tempDir(t);
  const certs = await issue(t, stateDirOf(server.dataDir), 'web1', 'web', 'append');
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'a'), randomBytes(300_000));
  fs.writeFileSync(path.join(src, 'b.txt'), 'hello');
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'cfg'), STOWAGE_CACHE_DIR: path.join(work, 'cache'), STOWAGE_SERVER_FINGERPRINT: server.fingerprint, STOWAGE_CLIENT_CERT: certs.cert, STOWAGE_CLIENT_KEY: certs.key });
  const url = `${server.url}/web`;
  t.is((await stowage(['-r', url, 'init'], env)).code, 0);
  const b = await stowage(['-r', url, 'backup', src], env);
  t.is(b.code, 0, b.stderr);
  const r = await stowage(['-r', url, 'restore', 'latest', '--target', path.join(work, 'out')], env);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
  const key = fs.statSync(certs.key).mode & 0o777;
  t.is(key, 0o600);
  for (const f of ['client-ca.key', 'client-ca.crt', 'clients.json']) t.is(fs.statSync(path.join(stateDirOf(server.dataDir), f)).mode & 0o777, 0o600, f);
});
