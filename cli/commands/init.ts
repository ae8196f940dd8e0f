/** `stowage init`: creates a repository and its first key. */
import { argon2ParamsFromEnv } from '../../core/keyfile.ts';
import { Repository } from '../../core/repository.ts';
import { type Context, backendOf, cacheRootOf } from '../context.ts';
import { readNewPassword } from '../password.ts';

export interface InitOptions {
  readonly writeOnlyHosts?: boolean;
}

export async function run(ctx: Context, opts: InitOptions): Promise<number> {
  const backend = await backendOf(ctx);
  const password = await readNewPassword(ctx.global, ctx.env, 'STOWAGE_PASSWORD');
  const argon2 = await argon2ParamsFromEnv(ctx.env);
  const repo = await Repository.init(backend, password, {
    argon2,
    cacheRoot: cacheRootOf(ctx),
    writeOnlyHosts: opts.writeOnlyHosts ?? false,
  });
  await repo.close();
  ctx.out.result({ repository: repo.id, location: backend.location, key: repo.keyName, argon2 }, () =>
    [
      `created stowage repository ${repo.id.slice(0, 10)} at ${backend.location}`,
      '',
      'Keep the passphrase safe: without it the data cannot be read, by you or anyone.',
    ].join('\n'),
  );
  return 0;
}
