/** `stowage key list|add|remove|passwd`: the passphrases that open a repository. */
import { UsageError } from '../../core/errors.ts';
import { argon2ParamsFromEnv } from '../../core/keyfile.ts';
import { type Context, openRepository } from '../context.ts';
import { readNewPassword } from '../password.ts';
import { table } from './snapshots.ts';

export interface KeyOptions {
  readonly writeOnly?: boolean;
}

export async function run(ctx: Context, action: string, id: string | undefined, opts: KeyOptions): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    switch (action) {
      case 'list': {
        const keys = await repo.listKeys();
        ctx.out.list(
          keys.map((k) => ({ id: k.name, current: k.current, ...k.meta })),
          () => table(['', 'ID', 'Kind', 'User', 'Host', 'Created'], keys.map((k) => [k.current ? '*' : '', k.name.slice(0, 8), k.meta?.kind ?? '?', k.meta?.username ?? '?', k.meta?.host ?? '?', k.meta?.created.slice(0, 19).replace('T', ' ') ?? '?'])),
        );
        return 0;
      }
      case 'add': {
        const password = await readNewPassword(ctx.global, ctx.env);
        const name = await repo.addKey(password, opts.writeOnly ? 'host' : 'full', await argon2ParamsFromEnv(ctx.env));
        ctx.out.result({ key: name, kind: opts.writeOnly ? 'host' : 'full' }, () => `added ${opts.writeOnly ? 'write-only host ' : ''}key ${name.slice(0, 8)}`);
        return 0;
      }
      case 'remove': {
        if (!id) throw new UsageError('key remove needs a key ID (see "stowage key list")');
        const keys = await repo.listKeys();
        const hits = keys.filter((k) => k.name.startsWith(id));
        if (hits.length !== 1) throw new UsageError(hits.length === 0 ? `no key ${id}` : `key ID ${id} is ambiguous`);
        const victim = hits[0]!;
        if (victim.current) throw new UsageError('refusing to remove the key that is in use; open the repository with another key to remove this one');
        const fullLeft = keys.filter((k) => k !== victim && k.meta?.kind !== 'host').length;
        if (fullLeft === 0) throw new UsageError('refusing to remove the last full key: the repository would become unreadable');
        await repo.backend.remove({ type: 'keys', name: victim.name });
        ctx.out.result({ removed: victim.name }, () => `removed key ${victim.name.slice(0, 8)}`);
        return 0;
      }
      case 'passwd': {
        const password = await readNewPassword(ctx.global, ctx.env);
        const kind = repo.keys.kind;
        const name = await repo.addKey(password, kind, await argon2ParamsFromEnv(ctx.env));
        await repo.backend.remove({ type: 'keys', name: repo.keyName });
        ctx.out.result({ key: name, replaced: repo.keyName }, () => `changed the passphrase: key ${repo.keyName.slice(0, 8)} replaced by ${name.slice(0, 8)}; no data was touched`);
        return 0;
      }
      default:
        throw new UsageError('key takes one of: list, add, remove, passwd');
    }
  } finally {
    await repo.close();
  }
}
