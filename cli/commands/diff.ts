/** `stowage diff A B`: what changed from snapshot A to snapshot B. */
import { diffTrees } from '../../core/diff.ts';
import { findSnapshot, listSnapshots } from '../../core/snapshot.ts';
import { type Context, openRepository } from '../context.ts';

export async function run(ctx: Context, a: string, b: string): Promise<number> {
  const repo = await openRepository(ctx);
  try {
    const [records] = await Promise.all([listSnapshots(repo), repo.loadIndex()]);
    const from = findSnapshot(records, a);
    const to = findSnapshot(records, b);
    const changes = await diffTrees(repo, from.snapshot.tree, to.snapshot.tree);
    const counts = { added: 0, removed: 0, modified: 0, metadata: 0, typeChanged: 0 };
    for (const c of changes) {
      if (c.kind === '+') counts.added++;
      else if (c.kind === '-') counts.removed++;
      else if (c.kind === 'M') counts.modified++;
      else if (c.kind === 'U') counts.metadata++;
      else counts.typeChanged++;
    }
    ctx.out.result({ from: from.id, to: to.id, changes, ...counts }, () =>
      [...changes.map((c) => `${c.kind.padEnd(4)} ${c.path}`), `${counts.added} added, ${counts.removed} removed, ${counts.modified} modified, ${counts.metadata} metadata only, ${counts.typeChanged} type changed`].join('\n'),
    );
    return 0;
  } finally {
    await repo.close();
  }
}
