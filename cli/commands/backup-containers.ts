/** `stowage backup --containers …`: a container-aware backup of the Docker host at DOCKER_HOST. */
import { backupContainers, type VolumeMode } from '../../core/docker/backup.ts';
import { connectEngine } from '../../core/docker/engine.ts';
import { UsageError } from '../../core/errors.ts';
import { shortId } from '../../core/snapshot.ts';
import { type Context, openRepository } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration } from '../output.ts';
import type { BackupCommandOptions } from './backup.ts';

export async function runContainers(ctx: Context, opts: BackupCommandOptions): Promise<number> {
  const mode = (opts.volumeMode ?? 'auto') as VolumeMode;
  if (!['auto', 'api', 'direct'].includes(mode)) throw new UsageError(`--volume-mode takes auto, api or direct, not ${JSON.stringify(opts.volumeMode)}`);
  const names = opts.containers ?? [];
  const all = names.includes('all');
  const engine = await connectEngine(ctx.env);
  const repo = await openRepository(ctx);
  const progress = ctx.out.progress('backup');
  try {
    const r = await backupContainers(repo, engine, {
      selection: {
        all,
        ...(all ? {} : { names }),
        ...(opts.label?.length ? { labels: opts.label } : {}),
        ...(opts.composeProject !== undefined ? { composeProject: opts.composeProject } : {}),
      },
      volumeMode: mode,
      images: opts.images ?? false,
      tags: opts.tag ?? [],
      ...(opts.host ? { host: opts.host } : {}),
      progress,
    });
    progress.stop();
    const s = r.snapshot.stats;
    ctx.out.result({ snapshot: r.id, partial: r.errors.length > 0, errors: r.errors, containers: r.containers, modes: r.modes, stats: s }, () =>
      [
        ...r.errors.map((e) => `error: ${e.path}: ${e.message}`),
        `containers: ${r.containers.join(', ')}`,
        ...Object.entries(r.modes).map(([p, m]) => `${p}: read ${m === 'direct' ? 'from disk (direct mode)' : 'through the Docker API (tar)'}`),
        `added ${formatBytes(s.bytesAdded)} in ${s.blobsAdded} blobs (${formatBytes(s.bytesUploaded)} stored after compression and encryption)`,
        `processed ${s.files} files, ${formatBytes(s.bytes)} in ${formatDuration(s.durationMs / 1000)}`,
        `snapshot ${shortId(r.id)} saved${r.errors.length > 0 ? ` (partial: ${r.errors.length} error(s))` : ''}`,
      ].join('\n'),
    );
    return r.errors.length > 0 ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    progress.stop();
    await repo.close();
  }
}
