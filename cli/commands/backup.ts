/** `stowage backup PATH...`: backs up paths into a new snapshot. */
import * as path from 'node:path';
import { surveySources } from '../../core/archiver.ts';
import { backupPaths } from '../../core/backup.ts';
import { UsageError } from '../../core/errors.ts';
import { shortId } from '../../core/snapshot.ts';
import { EXIT } from '../exit-codes.ts';
import { type Context, openRepository } from '../context.ts';
import { formatBytes, formatDuration } from '../output.ts';
import { readFile } from 'node:fs/promises';

export interface BackupCommandOptions {
  readonly tag?: string[];
  readonly host?: string;
  readonly parent?: string;
  readonly exclude?: string[];
  readonly excludeFile?: string[];
  readonly containers?: string[];
  readonly label?: string[];
  readonly composeProject?: string;
  readonly volumeMode?: string;
  readonly images?: boolean;
}

/**
 * Exclusion patterns as restic users know them: a pattern without "/"
 * matches a name anywhere; one with "/" matches the whole path.
 */
export async function compileExcludes(patterns: readonly string[], files: readonly string[]): Promise<((p: string) => boolean) | undefined> {
  const all = [...patterns];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`cannot read exclude file ${f}: ${e.message}`)));
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (t && !t.startsWith('#')) all.push(t);
    }
  }
  if (all.length === 0) return undefined;
  return (p) => all.some((pat) => (pat.includes('/') ? path.matchesGlob(p, pat) || path.matchesGlob(p, `${pat}/**`) : path.matchesGlob(path.basename(p), pat)));
}

export async function run(ctx: Context, paths: string[], opts: BackupCommandOptions): Promise<number> {
  const containerMode = !!opts.containers?.length || !!opts.label?.length || opts.composeProject !== undefined;
  if (containerMode) {
    if (paths.length > 0) throw new UsageError('back up paths or containers, not both in one snapshot');
    const { runContainers } = await import('./backup-containers.ts');
    return await runContainers(ctx, opts);
  }
  if (paths.length === 0) throw new UsageError('backup needs at least one PATH, or --containers, --label or --compose-project');
  // Started first: it runs while the passphrase's key is derived.
  const survey = surveySources(paths);
  const repo = await openRepository(ctx).catch((e: unknown) => {
    survey.stop();
    throw e;
  });
  const progress = ctx.out.progress('backup');
  try {
    const exclude = await compileExcludes(opts.exclude ?? [], opts.excludeFile ?? []);
    const r = await backupPaths(repo, {
      paths,
      tags: opts.tag ?? [],
      ...(opts.host ? { host: opts.host } : {}),
      ...(opts.parent ? { parent: opts.parent } : {}),
      ...(exclude ? { exclude } : {}),
      progress,
      survey,
    });
    progress.stop();
    const s = r.snapshot.stats;
    ctx.out.result({ snapshot: r.id, parent: r.parent, partial: r.errors.length > 0, errors: r.errors, adoptedPacks: r.adoptedPacks, stats: s }, () =>
      [
        r.parent ? `using parent snapshot ${shortId(r.parent)}` : 'no parent snapshot: reading every file',
        r.adoptedPacks > 0 ? `adopted ${r.adoptedPacks} pack(s) left by an interrupted backup` : '',
        `files: ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged; ${s.dirs} directories`,
        `added ${formatBytes(s.bytesAdded)} in ${s.blobsAdded} blobs (${formatBytes(s.bytesUploaded)} stored after compression and encryption)`,
        `processed ${s.files} files, ${formatBytes(s.bytes)} in ${formatDuration(s.durationMs / 1000)}`,
        r.errors.length > 0 ? `\n${r.errors.length} entries could not be read; the snapshot is partial:\n${r.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}` : '',
        `snapshot ${shortId(r.id)} saved`,
      ]
        .filter((l) => l !== '')
        .join('\n'),
    );
    return r.errors.length > 0 ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    progress.stop();
    await repo.close();
  }
}
