/**
 * `stowage serve token add|list|revoke` and `stowage serve quota`: edit the
 * server's state files directly (a running server picks changes up within a
 * second). They need the data directory, never a repository key.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UsageError } from '../../core/errors.ts';
import { ClientAuthority } from '../../server/client-certs.ts';
import { parseSize } from '../../core/units.ts';
import { FsStore } from '../../server/fs-store.ts';
import { S3Store, parseS3Url, s3ClientFromEnv } from '../../server/s3-store.ts';
import type { StateLocation } from '../../server/state.ts';
import { scrub as scrubStore } from '../../server/scrub.ts';
import { stateDirOf, storeDirOf } from '../../server/server.ts';
import { EXIT } from '../exit-codes.ts';
import { RepoSettings } from '../../server/settings.ts';
import { isValidRepoName } from '../../server/store.ts';
import { type Role, ROLES, TokenStore } from '../../server/tokens.ts';
import type { Context } from '../context.ts';
import { serverDataDir } from './serve.ts';

interface DataOption {
  readonly data?: string;
}

/** `--data` belongs to `serve`, so on its subcommands it arrives among the inherited options. */
function dataDir(ctx: Context): string {
  return serverDataDir(ctx, (ctx.global as DataOption).data);
}

/** Where the server's tokens, quotas and client certificates are: with `--store s3://…`, in the bucket, shared by every server. */
function stateOf(ctx: Context): StateLocation {
  const store = (ctx.global as { store?: string }).store;
  if (!store) return stateDirOf(dataDir(ctx));
  let loc;
  try {
    loc = parseS3Url(store);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return new S3Store(s3ClientFromEnv(ctx.env), loc).sharedState();
}

/** `--repo` is the global option here: on `serve` subcommands it holds a repository's name on this server. */
function repoName(ctx: Context): string {
  const name = ctx.global.repo;
  if (!name) throw new UsageError('--repo NAME is required: the name of the repository on this server');
  if (!isValidRepoName(name)) throw new UsageError(`invalid repository name ${JSON.stringify(name)}: letters, digits, "-" and "_", up to 64`);
  return name;
}

export async function tokenAdd(ctx: Context, opts: { role: string; note?: string }): Promise<number> {
  if (!ROLES.includes(opts.role as Role)) throw new UsageError(`--role must be append or admin, not ${JSON.stringify(opts.role)}`);
  const store = new TokenStore(stateOf(ctx));
  const { token, record } = await store.add(repoName(ctx), opts.role as Role, opts.note);
  ctx.out.result({ token, id: record.id, repo: record.repo, role: record.role }, () =>
    [token, '', `token ${record.id} (${record.role}) for repository ${record.repo}.`, 'It is shown only now: the server keeps only its hash.'].join('\n'),
  );
  return 0;
}

export async function tokenList(ctx: Context): Promise<number> {
  const records = await new TokenStore(stateOf(ctx)).list();
  const rows = records.map(({ hash: _hash, ...rest }) => rest);
  ctx.out.result(rows, () =>
    rows.length === 0 ? 'no tokens' : rows.map((r) => `${r.id}  ${r.role.padEnd(6)}  ${r.repo}  ${r.created}${r.note ? `  ${r.note}` : ''}`).join('\n'),
  );
  return 0;
}

export async function tokenRevoke(ctx: Context, id: string): Promise<number> {
  const found = await new TokenStore(stateOf(ctx)).revoke(id.replace(/^stw_/, '').split('_')[0]!);
  if (!found) throw new UsageError(`no token with id ${id}`);
  ctx.out.result({ revoked: id }, () => `revoked token ${id}`);
  return 0;
}

export async function quota(ctx: Context, size: string): Promise<number> {
  const bytes = size === 'none' ? null : parseSize(size);
  const repo = repoName(ctx);
  await new RepoSettings(stateOf(ctx)).setQuota(repo, bytes);
  ctx.out.result({ repo, quotaBytes: bytes }, () => (bytes === null ? `repository ${repo} has no quota` : `repository ${repo}: quota ${bytes} bytes`));
  return 0;
}

/** `stowage serve scrub [--repo NAME]`: re-hashes stored objects (on disk or in the S3 store); exits 13 when any is damaged. */
export async function scrub(ctx: Context): Promise<number> {
  const s3 = (ctx.global as { store?: string }).store;
  const store = s3 ? new S3Store(s3ClientFromEnv(ctx.env), parseS3Url(s3)) : new FsStore(storeDirOf(dataDir(ctx)));
  const repos = ctx.global.repo ? [repoName(ctx)] : await store.listRepositories();
  const r = await scrubStore(store, repos);
  ctx.out.result(r, () =>
    [...r.findings.map((f) => `damaged: ${f.repo}: ${f.object}: ${f.problem}`), `scrubbed ${r.objects} objects (${r.bytes} bytes) in ${repos.length} repositories: ${r.findings.length} damaged`].join('\n'),
  );
  return r.findings.length === 0 ? 0 : EXIT.INTEGRITY;
}

export async function clientAdd(ctx: Context, host: string, opts: { role: string; out: string }): Promise<number> {
  if (!ROLES.includes(opts.role as Role)) throw new UsageError(`--role must be append or admin, not ${JSON.stringify(opts.role)}`);
  const repo = repoName(ctx);
  const { key, cert, record } = await new ClientAuthority(stateOf(ctx)).issue(host, repo, opts.role as Role);
  const base = path.join(opts.out, host.replace(/[^A-Za-z0-9_.-]/g, '_'));
  await fs.writeFile(`${base}.key`, key, { mode: 0o600, flag: 'wx' });
  await fs.writeFile(`${base}.crt`, cert, { mode: 0o644, flag: 'wx' });
  ctx.out.result({ host, repo, role: record.role, serial: record.serial, certificate: `${base}.crt`, key: `${base}.key`, fingerprint: record.fingerprint }, () =>
    [`issued a ${record.role} certificate for ${host} on repository ${repo} (serial ${record.serial})`, `  ${base}.crt`, `  ${base}.key (keep it on ${host} only; mode 0600)`].join('\n'),
  );
  return 0;
}

export async function clientList(ctx: Context): Promise<number> {
  const rows = await new ClientAuthority(stateOf(ctx)).list();
  ctx.out.result(rows, () =>
    rows.length === 0 ? 'no client certificates' : rows.map((r) => `${r.serial}  ${r.role.padEnd(6)}  ${r.repo}  ${r.host}${r.revoked ? `  revoked ${r.revoked}` : ''}`).join('\n'),
  );
  return 0;
}

export async function clientRevoke(ctx: Context, which: string): Promise<number> {
  const n = await new ClientAuthority(stateOf(ctx)).revoke(which);
  if (n === 0) throw new UsageError(`no valid client certificate for ${which}`);
  ctx.out.result({ revoked: n }, () => `revoked ${n} certificate(s) of ${which}`);
  return 0;
}
