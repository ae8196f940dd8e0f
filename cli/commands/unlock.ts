/** `stowage unlock [--remove-all]`: removes stale locks (or all of them). */
import { removeLocks } from '../../core/lock.ts';
import { type Context, openRepository } from '../context.ts';

export async function run(ctx: Context, opts: { removeAll?: boolean }): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    const n = await removeLocks(repo, opts.removeAll ?? false);
    ctx.out.result({ removed: n }, () => `removed ${n} ${opts.removeAll ? '' : 'stale '}lock(s)`);
    return 0;
  } finally {
    await repo.close();
  }
}
