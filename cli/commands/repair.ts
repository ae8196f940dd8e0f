/** `stowage repair index`: rebuilds the index from the headers of the stored packs. */
import { UsageError } from '../../core/errors.ts';
import { RepositoryLock } from '../../core/lock.ts';
import { mapLimit } from '../../core/repository.ts';
import { type Context, openRepository } from '../context.ts';

export async function run(ctx: Context, what: string): Promise<number> {
  if (what !== 'index') throw new UsageError('repair takes: index');
  const repo = await openRepository(ctx);
  try {
    const lock = await RepositoryLock.acquire(repo, { exclusive: true, operation: 'repair index' });
    try {
      const old = (await repo.listObjects('index')).map((o) => o.name);
      const stored = await repo.listObjects('data');
      const unreadable: string[] = [];
      const packs = (
        await mapLimit(stored, 8, async (o) => {
          try {
            return await repo.readPackInfo(o.name, o.size);
          } catch {
            unreadable.push(o.name);
            ctx.out.warn(`data/${o.name}: header unreadable; left out of the index (see "stowage check --read-data")`);
            return null;
          }
        })
      ).filter((p) => p !== null);
      const { written, removed } = await repo.replaceIndex(packs, old);
      ctx.out.result({ packs: packs.length, unreadable, indexObjectsWritten: written, indexObjectsRemoved: removed }, () =>
        `rebuilt the index from ${packs.length} packs (${unreadable.length} unreadable); ${written} index objects written, ${removed} old ones removed`,
      );
      return 0;
    } finally {
      await lock.release();
    }
  } finally {
    await repo.close();
  }
}
