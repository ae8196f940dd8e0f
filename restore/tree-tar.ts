/**
 * A snapshot tree as a tar stream, for the Engine's putArchive (data into a
 * volume through a helper container) and loadImage (an image stored with
 * `docker save`). Every name is checked as in a file restore (one safe
 * component: no "..", no "/"), so a hostile snapshot cannot aim the archive
 * outside its target; every blob is authenticated before its bytes go out.
 */
import { Readable } from 'node:stream';
import { pack as tarPack, type Pack } from 'tar-stream';
import { UnsafePathError } from '../core/errors.ts';
import { blobIntegrityError, type Repository } from '../core/repository.ts';
import type { SealPool } from '../core/seal-pool.ts';
import { type TreeNode, loadTree, nameBytes, targetBytes } from '../core/tree.ts';
import { ReadAhead } from './read-ahead.ts';
import { checkName } from './safe-name.ts';

export interface TreeTarStats {
  files: number;
  bytes: number;
}

function mtimeOf(n: TreeNode): Date {
  return new Date(Number(BigInt(n.mtime) / 1_000_000n));
}

/**
 * Streams the contents of tree `treeId` (not the directory itself) as a tar.
 * `done` settles when the archive is complete: a consumer must await it, as
 * a refused name or a damaged blob ends the stream early, and a receiver
 * would otherwise take the truncated archive for the whole.
 */
export function tarFromTree(repo: Repository, pool: SealPool, treeId: string, stats: TreeTarStats = { files: 0, bytes: 0 }): { stream: Readable; done: Promise<void> } {
  const p = tarPack();
  const done = (async () => {
    // Every name is checked before the first byte goes out: a refused snapshot puts nothing into a volume.
    await checkNames(repo, treeId, '');
    await addTree(repo, pool, p, treeId, '', stats);
    p.finalize();
  })();
  done.catch((e: unknown) => p.destroy(e instanceof Error ? e : new Error(String(e))));
  const stream = p as unknown as Readable;
  // The failure is reported through `done`; the stream's own error event must not go unheard.
  stream.on('error', () => {});
  return { stream, done };
}

async function checkNames(repo: Repository, treeId: string, prefix: string): Promise<void> {
  const seen = new Set<string>();
  for (const n of (await loadTree(repo, treeId)).nodes) {
    const raw = nameBytes(n);
    checkName(raw, prefix);
    // A name twice (a symlink, then a directory through it) could aim later entries elsewhere.
    if (seen.has(raw.toString('latin1'))) throw new UnsafePathError(`refusing tree ${treeId.slice(0, 12)}: it names ${JSON.stringify(n.name)} twice in ${prefix || '/'}`);
    seen.add(raw.toString('latin1'));
    if (n.type === 'dir' && n.subtree) await checkNames(repo, n.subtree, `${prefix}${raw.toString('utf8')}/`);
  }
}

async function addTree(repo: Repository, pool: SealPool, p: Pack, treeId: string, prefix: string, stats: TreeTarStats): Promise<void> {
  const tree = await loadTree(repo, treeId);
  for (const n of tree.nodes) {
    const raw = nameBytes(n);
    checkName(raw, prefix);
    const name = prefix + raw.toString('utf8');
    const common = { name, mode: n.mode, uid: n.uid, gid: n.gid, mtime: mtimeOf(n), ...(n.user ? { uname: n.user } : {}), ...(n.group ? { gname: n.group } : {}) };
    if (n.type === 'dir') {
      await entry(p, { ...common, name: `${name}/`, type: 'directory' });
      if (n.subtree) await addTree(repo, pool, p, n.subtree, `${name}/`, stats);
    } else if (n.type === 'symlink') {
      await entry(p, { ...common, type: 'symlink', linkname: targetBytes(n).toString('utf8') });
      stats.files++;
    } else if (n.type === 'file') {
      await addFile(repo, pool, p, n, common, stats);
    }
    // Device nodes are not put into volumes: containers get devices from the host.
  }
}

function entry(p: Pack, header: Parameters<Pack['entry']>[0]): Promise<void> {
  return new Promise((resolve, reject) => {
    p.entry(header, (err) => (err ? reject(err) : resolve()));
  });
}

/** Blobs of one file read and opened ahead of the one being streamed. */
const OPEN_AHEAD = 4;

async function addFile(repo: Repository, pool: SealPool, p: Pack, n: TreeNode, common: Record<string, unknown>, stats: TreeTarStats): Promise<void> {
  const size = n.size ?? 0;
  const done = new Promise<void>((resolve, reject) => {
    const sink = p.entry({ ...common, type: 'file', size } as Parameters<Pack['entry']>[0], (err) => (err ? reject(err) : resolve()));
    // A failure is reported through `done`: the entry's own error event (destroy(e) below) must not go unheard,
    // or it ends the process as an uncaught exception.
    sink.on('error', () => {});
    const pump = async (): Promise<void> => {
      let written = 0;
      const ids = n.content ?? [];
      // The next blobs are read and opened (on the workers) while this one goes into the stream, in order.
      const ahead = new ReadAhead(ids.length, OPEN_AHEAD, async (i) => {
        const id = ids[i]!;
        const { pack, key, checkId, sealed } = await repo.loadSealedBlob('data', id);
        const r = await pool.open('data', Buffer.from(id, 'hex'), key, sealed, checkId);
        if (r === 'decrypt' || r === 'id') throw blobIntegrityError('data', id, pack, r);
        return r;
      });
      for (let i = 0; i < ids.length; i++) {
        const r = await ahead.take();
        written += r.length;
        if (!sink.write(r)) await new Promise<void>((ok) => sink.once('drain', ok));
      }
      if (written !== size) throw new Error(`${common['name'] as string}: the tree says ${size} bytes, its blobs hold ${written}`);
      (sink as unknown as { end(): void }).end();
    };
    pump().catch((e: unknown) => {
      sink.destroy(e instanceof Error ? e : new Error(String(e)));
      reject(e);
    });
  });
  await done;
  stats.files++;
  stats.bytes += size;
}
