import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { openHttpsBackend } from '../core/backends/https.ts';
import { ForbiddenError, ObjectExistsError, ServerIdentityError } from '../core/errors.ts';
import { backendSuite } from './helpers/backend-suite.ts';
import { stowage, testEnv } from './helpers/cli.ts';
import { logLines, startTestServer, type TestServer } from './helpers/server.ts';
import { cachedBytes } from './helpers/files.ts';
import { tempDir } from './helpers/tmp.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

backendSuite(test, 'https server', async (t) => {
  const server = await startTestServer(t);
  const be = await server.backend('suite', 'admin');
  await be.create();
  return be;
});

/** A request that skips certificate checks, to speak to the server as an attacker or a broken client would. */
function raw(server: TestServer, method: string, urlPath: string, opts: { token?: string; body?: Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${server.url}${urlPath}`,
      {
        method,
        rejectUnauthorized: false,
        headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Every file under dir, relative. */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

test('a plain HTTP request to the port gets no HTTP response', async (t) => {
  const server = await startTestServer(t);
  const reply = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(server.port, '127.0.0.1', () => s.write('GET /v1/x HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
  t.false(reply.toString('latin1').includes('HTTP/'), `got: ${JSON.stringify(reply.toString('latin1').slice(0, 40))}`);
});

test('a client with the wrong pinned fingerprint refuses before sending a request, naming both fingerprints', async (t) => {
  const server = await startTestServer(t);
  const token = await server.token('web', 'append');
  const wrong = Array.from({ length: 32 }, () => 'AB').join(':');
  const be = await openHttpsBackend(`${server.url}/web`, { env: { STOWAGE_TOKEN: token, STOWAGE_CONFIG_DIR: await tempDir(t) }, serverFingerprint: wrong });
  const err = await t.throwsAsync(be.create(), { instanceOf: ServerIdentityError });
  t.true(err.message.includes(wrong) && err.message.includes(server.fingerprint));
  await be.close();
  t.deepEqual(logLines(server.logFile), [], 'the server saw no request');
});

test('without a pinned fingerprint or a trusted CA the client refuses and shows the fingerprint to check', async (t) => {
  const server = await startTestServer(t);
  const token = await server.token('web', 'append');
  const be = await openHttpsBackend(`${server.url}/web`, { env: { STOWAGE_TOKEN: token, STOWAGE_CONFIG_DIR: await tempDir(t) } });
  const err = await t.throwsAsync(be.create(), { instanceOf: ServerIdentityError });
  t.regex(err.message, /not trusted/);
  t.true(err.message.includes(server.fingerprint));
  await be.close();
});

test('a fingerprint given once is remembered for later runs', async (t) => {
  const server = await startTestServer(t);
  const env = { STOWAGE_TOKEN: await server.token('web', 'append'), STOWAGE_CONFIG_DIR: await tempDir(t) };
  const first = await openHttpsBackend(`${server.url}/web`, { env, serverFingerprint: server.fingerprint.replace(/:/g, '').toLowerCase() });
  await first.create();
  await first.close();
  const later = await openHttpsBackend(`${server.url}/web`, { env });
  t.deepEqual(await collect(later.list('keys')), []);
  await later.close();
  t.is(fs.statSync(path.join(env.STOWAGE_CONFIG_DIR, 'known-servers.json')).mode & 0o777, 0o600);
});

test('the server accepts a CA-verified connection when the client trusts its certificate', async (t) => {
  const server = await startTestServer(t);
  const caFile = path.join(server.dataDir, 'state', 'tls-cert.pem');
  const be = await openHttpsBackend(`https://localhost:${server.port}/web`, {
    env: { STOWAGE_TOKEN: await server.token('web', 'append'), STOWAGE_CONFIG_DIR: await tempDir(t) },
    caFile,
  });
  await be.create();
  t.deepEqual(await collect(be.list('index')), []);
  await be.close();
});

test('an append token can add and read but cannot delete or overwrite; only its own locks may go', async (t) => {
  const server = await startTestServer(t);
  const be = await server.backend('web', 'append');
  await be.create();
  const config = randomBytes(200);
  await be.save({ type: 'config', name: 'config' }, config);
  await t.throwsAsync(be.save({ type: 'config', name: 'config' }, randomBytes(200)), { instanceOf: ObjectExistsError });
  const data = randomBytes(5000);
  const h = { type: 'data' as const, name: sha(data) };
  await be.save(h, data);
  const refused = await t.throwsAsync(be.remove(h), { instanceOf: ForbiddenError });
  t.regex(refused.message, /admin/);
  await t.throwsAsync(be.remove({ type: 'snapshots', name: sha(data) }), { instanceOf: ForbiddenError });
  t.deepEqual(await be.load(h), data);
  t.deepEqual(await be.load({ type: 'config', name: 'config' }), config);
  const lock = randomBytes(100);
  await be.save({ type: 'locks', name: sha(lock) }, lock);
  await be.remove({ type: 'locks', name: sha(lock) });
  t.deepEqual(await collect(be.list('locks')), []);

  const admin = await server.backend('web', 'admin');
  await admin.remove(h);
  t.deepEqual(await collect(be.list('data')), []);
});

test('a token works only for its repository; no token or a wrong one is refused', async (t) => {
  const server = await startTestServer(t);
  const mine = await server.backend('mine', 'admin');
  await mine.create();
  const otherToken = await server.token('other', 'admin');
  const cross = await raw(server, 'GET', '/v1/mine/keys/', { token: otherToken });
  t.is(cross.status, 403);
  t.is(JSON.parse(cross.body).error, 'wrong-repository');
  t.is((await raw(server, 'GET', '/v1/mine/keys/')).status, 401);
  t.is((await raw(server, 'GET', '/v1/mine/keys/', { token: otherToken.slice(0, -2) + 'xx' })).status, 401);
  t.is((await raw(server, 'GET', '/v1/mine/keys/', { token: 'not-a-token' })).status, 401);
  t.is((await raw(server, 'POST', '/v1/other', { token: await server.token('mine', 'admin') })).status, 403);
});

test('repeated failed authentication bans the address for a while, even with a good token', async (t) => {
  const server = await startTestServer(t, { ban: { maxFailures: 3, banMs: 1500 } });
  const good = await server.token('web', 'append');
  t.is((await raw(server, 'POST', '/v1/web', { token: good })).status, 201);
  for (let i = 0; i < 3; i++) t.is((await raw(server, 'GET', '/v1/web/keys/', { token: `stw_${'0'.repeat(16)}_${'A'.repeat(43)}` })).status, 401);
  const banned = await raw(server, 'GET', '/v1/web/keys/', { token: good });
  t.is(banned.status, 429);
  t.regex(JSON.parse(banned.body).message, /try again in \d+ s/);
  await new Promise((r) => setTimeout(r, 1600));
  t.is((await raw(server, 'GET', '/v1/web/keys/', { token: good })).status, 200);
});

test('a body that does not hash to its name is refused and leaves nothing on disk', async (t) => {
  const server = await startTestServer(t);
  const be = await server.backend('web', 'append');
  await be.create();
  const data = randomBytes(3000);
  const err = await t.throwsAsync(be.save({ type: 'data', name: sha(randomBytes(10)) }, data));
  t.regex(err.message, /SHA-256/);
  t.deepEqual(filesUnder(path.join(server.dataDir, 'repos', 'web')), []);
});

test('names with path tricks are refused before anything is touched', async (t) => {
  const server = await startTestServer(t);
  const token = await server.token('web', 'admin');
  await raw(server, 'POST', '/v1/web', { token });
  const body = Buffer.from('x');
  for (const p of ['/v1/web/data/..%2F..%2Fstate%2Ftokens.json', '/v1/web/data/../../state/tokens.json', '/v1/../state/tokens.json', '/v1/web/keys/' + 'a'.repeat(63) + '/', '/v1/web/config/../secret']) {
    const res = await raw(server, 'PUT', p, { token, body, headers: { 'content-length': '1' } });
    t.true([400, 404].includes(res.status), `${p}: ${res.status}`);
  }
  t.is((await raw(server, 'GET', '/v1/web/data/..%2F..%2Fstate%2Fsecret', { token })).status, 400);
  t.deepEqual(filesUnder(path.join(server.dataDir, 'repos', 'web')), []);
});

test('an oversized body is refused before it is stored', async (t) => {
  const server = await startTestServer(t, { limits: { maxObjectBytes: 4096 } });
  const be = await server.backend('web', 'append');
  await be.create();
  const data = randomBytes(5000);
  const err = await t.throwsAsync(be.save({ type: 'data', name: sha(data) }, data), { instanceOf: ForbiddenError });
  t.regex(err.message, /limit of 4096/);
  t.deepEqual(filesUnder(path.join(server.dataDir, 'repos', 'web')), []);
});

test('a body that stops half-way leaves nothing on disk', async (t) => {
  const server = await startTestServer(t);
  const token = await server.token('web', 'append');
  t.is((await raw(server, 'POST', '/v1/web', { token })).status, 201);
  const data = randomBytes(200_000);
  await new Promise<void>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false }, () => {
      s.write(`PUT /v1/web/data/${sha(data)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${data.length}\r\n\r\n`);
      s.write(data.subarray(0, 100_000), () => setTimeout(() => s.destroy(), 100));
    });
    s.on('close', () => resolve());
    s.on('error', () => {});
  });
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(filesUnder(path.join(server.dataDir, 'repos', 'web')), []);
  const stored = await raw(server, 'GET', `/v1/web/data/`, { token });
  t.deepEqual(JSON.parse(stored.body).objects, []);
});

test('the server keeps tokens as hashes and its secrets private, and logs neither tokens nor addresses', async (t) => {
  const server = await startTestServer(t, { ban: { maxFailures: 2 } });
  const token = await server.token('web', 'append');
  await raw(server, 'POST', '/v1/web', { token });
  await raw(server, 'GET', '/v1/web/keys/', { token: token + 'x' });
  await raw(server, 'GET', '/v1/web/keys/', { token: token + 'y' });
  const state = path.join(server.dataDir, 'state');
  for (const f of fs.readdirSync(state)) t.is(fs.statSync(path.join(state, f)).mode & 0o777, 0o600, f);
  t.is(fs.statSync(state).mode & 0o777, 0o700);
  // stw_ + 16 hex + _ : the rest is the secret (base64url, which may itself hold "_").
  const secret = token.slice('stw_'.length + 16 + 1);
  t.is(secret.length, 43);
  t.false(fs.readFileSync(path.join(state, 'tokens.json'), 'utf8').includes(secret));
  const log = fs.readFileSync(server.logFile, 'utf8');
  t.true(log.includes('"status":401'), 'failures are logged');
  t.true(log.includes('banned'), 'the ban is logged');
  t.false(log.includes(secret), 'no token secret in the log');
  t.false(log.includes('127.0.0.1'), 'no client address in the log');
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('serve scrub re-hashes stored objects without a key and names the damaged one', async (t) => {
  const server = await startTestServer(t);
  const be = await server.backend('web', 'append');
  await be.create();
  const objects = [randomBytes(5000), randomBytes(7000)];
  for (const o of objects) await be.save({ type: 'data', name: sha(o) }, o);
  const env = testEnv();
  const clean = await stowage(['serve', '--data', server.dataDir, '--json', 'scrub'], env);
  t.is(clean.code, 0, clean.stderr);
  t.is(JSON.parse(clean.stdout.trim()).objects, 2);
  const victim = sha(objects[1]!);
  const file = path.join(server.dataDir, 'repos', 'web', 'data', victim.slice(0, 2), victim);
  const bytes = fs.readFileSync(file);
  bytes[1234]! ^= 1;
  fs.writeFileSync(file, bytes);
  const rot = await stowage(['serve', '--data', server.dataDir, 'scrub'], env);
  t.is(rot.code, 13);
  t.regex(rot.stdout, new RegExp(`damaged: web: data/${victim}`));
});

test('a data pack is stored by the server byte for byte and around its page cache; one that fails its hash leaves nothing', async (t) => {
  const server = await startTestServer(t);
  const be = await server.backend('web', 'append');
  await be.create();
  for (const size of [1024 * 1024, 6 * 1024 * 1024 + 17]) {
    const data = randomBytes(size);
    await be.save({ type: 'data', name: sha(data) }, data);
    const stored = path.join(server.dataDir, 'repos', 'web', 'data', sha(data).slice(0, 2), sha(data));
    const cached = cachedBytes(stored);
    t.true(cached <= 4096, `${size} bytes: ${cached} in the page cache`);
    t.true(fs.readFileSync(stored).equals(data), `${size} bytes`);
  }
  const big = randomBytes(5 * 1024 * 1024);
  await t.throwsAsync(be.save({ type: 'data', name: sha(randomBytes(10)) }, big));
  t.deepEqual(filesUnder(path.join(server.dataDir, 'repos', 'web', 'tmp')), []);
});
