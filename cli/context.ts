/**
 * What every command shares: global options, opening the repository they
 * name, and the output they print through.
 */
import { openBackend } from '../core/backends/open.ts';
import { defaultCacheRoot } from '../core/cache-root.ts';
import { UsageError } from '../core/errors.ts';
import { PackWarmer } from '../core/pack-warmer.ts';
import { currentUser } from '../core/idnames.ts';
import { Repository } from '../core/repository.ts';
import { Output } from './output.ts';
import { readPassword } from './password.ts';

export interface GlobalOptions {
  readonly repo?: string;
  readonly passwordFile?: string;
  readonly passwordCommand?: string;
  readonly keyHint?: string;
  readonly tokenFile?: string;
  readonly serverFingerprint?: string;
  readonly caFile?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  readonly cacheDir?: string;
  readonly cache?: boolean;
  readonly json?: boolean;
  readonly quiet?: boolean;
}

export interface Context {
  readonly global: GlobalOptions;
  readonly out: Output;
  readonly env: NodeJS.ProcessEnv;
}

export function makeContext(global: GlobalOptions, env: NodeJS.ProcessEnv): Context {
  return { global, out: new Output({ json: global.json ?? false, quiet: global.quiet ?? false }), env };
}

export function repoLocation(ctx: Context): string {
  const loc = ctx.global.repo ?? ctx.env['STOWAGE_REPOSITORY'];
  if (!loc) throw new UsageError('no repository: pass --repo LOCATION or set STOWAGE_REPOSITORY');
  return loc;
}

export async function backendOf(ctx: Context) {
  const g = ctx.global;
  return await openBackend(repoLocation(ctx), {
    env: ctx.env,
    ...(g.tokenFile ? { tokenFile: g.tokenFile } : {}),
    ...(g.serverFingerprint ? { serverFingerprint: g.serverFingerprint } : {}),
    ...(g.caFile ? { caFile: g.caFile } : {}),
    ...(g.clientCert ? { clientCert: g.clientCert } : {}),
    ...(g.clientKey ? { clientKey: g.clientKey } : {}),
  });
}

export function cacheRootOf(ctx: Context): string | null {
  if (ctx.global.cache === false) return null;
  return ctx.global.cacheDir ?? defaultCacheRoot(ctx.env);
}

export interface OpenRepositoryOptions {
  /**
   * Read the repository's packs into the page cache while the key is derived
   * (core/pack-warmer.ts), for a command that will read most of them; the
   * names of the packs read to their end go into this set as they are read.
   */
  readonly warmPacksInto?: Set<string>;
}

export async function openRepository(ctx: Context, opts: OpenRepositoryOptions = {}): Promise<Repository> {
  const backend = await backendOf(ctx);
  const password = await readPassword(ctx.global, ctx.env);
  const keyHint = ctx.global.keyHint ?? ctx.env['STOWAGE_KEY_HINT'];
  // Started once the passphrase is known, so that it overlaps the derivation only, not a prompt.
  if (opts.warmPacksInto) currentUser();
  const warmer = opts.warmPacksInto ? PackWarmer.start(backend, { into: opts.warmPacksInto }) : null;
  try {
    return await Repository.open(backend, password, { cacheRoot: cacheRootOf(ctx), ...(keyHint ? { keyHint } : {}) });
  } finally {
    void warmer?.stop();
  }
}
