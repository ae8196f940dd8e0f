/** Repositories for tests: real ones, on disk, with cheap key derivation. */
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { LocalBackend } from '../../core/backends/local.ts';
import { backupPaths, type BackupOptions, type BackupResult } from '../../core/backup.ts';
import { INSECURE_TEST_ARGON2 } from '../../core/keyfile.ts';
import { Repository } from '../../core/repository.ts';
import { SealPool } from '../../core/seal-pool.ts';
import { findSnapshot, listSnapshots } from '../../core/snapshot.ts';
import { type FileRestoreResult, restoreFiles } from '../../restore/file-restorer.ts';
import { tempDir } from './tmp.ts';

export const PASSWORD = 'correct horse battery staple';

export async function newRepo(t: ExecutionContext, opts: { writeOnlyHosts?: boolean; packSize?: number } = {}): Promise<{ repo: Repository; dir: string }> {
  const dir = path.join(await tempDir(t), 'repo');
  const repo = await Repository.init(new LocalBackend(dir), PASSWORD, { argon2: INSECURE_TEST_ARGON2, cacheRoot: null, ...opts });
  return { repo, dir };
}

export async function openRepo(dir: string, password = PASSWORD): Promise<Repository> {
  return await Repository.open(new LocalBackend(dir), password, { cacheRoot: null });
}

export async function backup(dir: string, paths: string[], opts: Partial<BackupOptions> = {}): Promise<BackupResult> {
  const repo = await openRepo(dir);
  try {
    return await backupPaths(repo, { paths, ...opts });
  } finally {
    await repo.close();
  }
}

/** Restores a snapshot (default: the latest) of the repository in `dir` into `target`. */
export async function restore(dir: string, target: string, opts: { snapshot?: string; path?: string; directIo?: boolean } = {}): Promise<FileRestoreResult> {
  const repo = await openRepo(dir);
  await repo.loadIndex();
  const rec = findSnapshot(await listSnapshots(repo), opts.snapshot ?? 'latest');
  const pool = new SealPool(repo.poolKeys(), null);
  try {
    return await restoreFiles({ repo, pool, target, ...(opts.path ? { path: opts.path } : {}), ...(opts.directIo ? { directIo: true } : {}) }, rec.snapshot.tree);
  } finally {
    await pool.close();
    await repo.close();
  }
}

/** Total bytes of all files under a directory. */
export async function duBytes(dir: string): Promise<number> {
  const { readdir, lstat } = await import('node:fs/promises');
  let total = 0;
  for (const e of await readdir(dir, { recursive: true })) {
    const st = await lstat(path.join(dir, e));
    if (st.isFile()) total += st.size;
  }
  return total;
}
