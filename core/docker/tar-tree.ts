/**
 * A tar stream (what the Engine's getArchive sends for a path in a
 * container) turned into a tree, in the same format as a path backup, so
 * `ls` and file restore work on volumes. File contents flow through the
 * chunker into the seal pool as they arrive: the stream is read promptly,
 * since the daemon holds the container's lock while it is open.
 *
 * Names are checked: an entry with "..", an absolute name or an empty part
 * is refused and recorded as an error (the snapshot is then partial). Tar
 * carries second-precision times and no inode numbers: hard links become
 * files with the same content (stored once), and an unchanged file is read
 * again each night (dedup keeps the repository from growing).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import type { ArchiveError } from '../archiver.ts';
import { type Chunker, createChunker } from '../chunker.ts';
import type { Counters, ProgressReporter } from '../progress.ts';
import type { Repository } from '../repository.ts';
import type { SealPool } from '../seal-pool.ts';
import { type TreeNode, nameFields, saveTree, targetFields } from '../tree.ts';

export interface TarTreeOptions {
  readonly repo: Repository;
  readonly pool: SealPool;
  /** Where the tree will appear in the snapshot ("/volumes/db"), for messages and chunking rules. */
  readonly snapRoot: string;
  /** Drop the first path component (getArchive of /data sends "data/..."). */
  readonly stripFirst: boolean;
  readonly progress?: ProgressReporter;
  readonly counters?: Counters;
  /** Compute the SHA-256 of every file (to verify image layers against their digests). */
  readonly digests?: boolean;
  /** Keep the bytes of files for which this is true (small metadata files). */
  readonly capture?: (relPath: string) => boolean;
}

export interface TarTreeResult {
  readonly tree: string;
  /** Metadata of the archived directory itself, when the tar has it. */
  readonly rootMeta: Omit<TreeNode, 'name' | 'type' | 'subtree'> | null;
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  readonly errors: ArchiveError[];
  /** By path relative to the archived directory, when `digests` was asked for. */
  readonly fileDigests: Map<string, string>;
  readonly captured: Map<string, Buffer>;
}

/** Bytes gathered before choosing a chunking rule (rules may look at a file's first bytes). */
const HEAD_BYTES = 64 * 1024;

interface DirEntry {
  meta: Omit<TreeNode, 'name' | 'type' | 'subtree'> | null;
  children: Map<string, TreeNode | DirEntry>;
}

const isDir = (x: TreeNode | DirEntry): x is DirEntry => 'children' in x;

function metaOf(h: Header): Omit<TreeNode, 'name' | 'type' | 'subtree'> {
  const mtimeNs = BigInt((h.mtime ?? new Date(0)).getTime()) * 1_000_000n;
  return {
    mode: (h.mode ?? 0o644) & 0o7777,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    ...(h.uname ? { user: h.uname } : {}),
    ...(h.gname ? { group: h.gname } : {}),
    mtime: mtimeNs.toString(),
  };
}

/** Path parts of an entry, or null for a name that would leave the archived directory. */
export function safeParts(name: string, stripFirst: boolean): string[] | null {
  if (name.startsWith('/')) return null;
  const parts = name.split('/').filter((p, i, all) => p !== '' || i === all.length - 1).filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return null;
  return stripFirst ? parts.slice(1) : parts;
}

export async function treeFromTar(opts: TarTreeOptions, tar: Readable): Promise<TarTreeResult> {
  const root: DirEntry = { meta: null, children: new Map() };
  const errors: ArchiveError[] = [];
  const files = new Map<string, TreeNode>();
  let nFiles = 0;
  let nDirs = 0;
  let bytes = 0;
  const pending: Promise<unknown>[] = [];
  const fileDigests = new Map<string, string>();
  const captured = new Map<string, Buffer>();

  const dirAt = (parts: readonly string[]): DirEntry => {
    let d = root;
    for (const p of parts) {
      let next = d.children.get(p);
      if (!next || !isDir(next)) {
        next = { meta: null, children: new Map() };
        d.children.set(p, next);
      }
      d = next;
    }
    return d;
  };

  const ex = extract();
  tar.pipe(ex);
  for await (const entry of ex) {
    const h = entry.header;
    const parts = safeParts(h.name, opts.stripFirst);
    const snapPath = `${opts.snapRoot}/${parts?.join('/') ?? ''}`;
    if (parts === null) {
      errors.push({ path: `${opts.snapRoot}/${h.name}`, message: 'refused: the archive names a path outside the archived directory' });
      entry.resume();
      continue;
    }
    if (parts.length === 0) {
      if (h.type === 'directory') root.meta = metaOf(h);
      entry.resume();
      continue;
    }
    const name = parts.at(-1)!;
    const parent = dirAt(parts.slice(0, -1));
    const base = { ...nameFields(Buffer.from(name, 'utf8')), ...metaOf(h) };
    switch (h.type) {
      case 'directory': {
        dirAt(parts).meta = metaOf(h);
        nDirs++;
        entry.resume();
        break;
      }
      case 'file':
      case 'contiguous-file': {
        const rel = parts.join('/');
        const hash = opts.digests ? createHash('sha256') : null;
        const keep: Buffer[] | null = opts.capture?.(rel) ? [] : null;
        const node = await storeFile(opts, tap(entry as AsyncIterable<Buffer>, (b) => {
          hash?.update(b);
          keep?.push(b);
        }), snapPath, h.size ?? 0, base, pending);
        if (hash) fileDigests.set(rel, hash.digest('hex'));
        if (keep) captured.set(rel, Buffer.concat(keep));
        parent.children.set(name, node);
        files.set(parts.join('/'), node);
        nFiles++;
        bytes += node.size ?? 0;
        if (opts.counters) {
          opts.counters.files++;
          opts.counters.bytes += node.size ?? 0;
          opts.progress?.update(opts.counters, snapPath);
        }
        break;
      }
      case 'symlink':
        parent.children.set(name, { ...base, type: 'symlink', ...targetFields(Buffer.from(h.linkname ?? '', 'utf8')) });
        nFiles++;
        entry.resume();
        break;
      case 'link': {
        const targetParts = safeParts(h.linkname ?? '', opts.stripFirst);
        const target = targetParts ? files.get(targetParts.join('/')) : undefined;
        if (!target) errors.push({ path: snapPath, message: `hard link to ${h.linkname} which the archive did not contain first` });
        else parent.children.set(name, { ...target, ...base, type: 'file' });
        nFiles++;
        entry.resume();
        break;
      }
      case 'character-device':
      case 'block-device':
        parent.children.set(name, {
          ...base,
          type: h.type === 'character-device' ? 'chardev' : 'blockdev',
          rdev: ((BigInt(h.devmajor ?? 0) << 8n) | BigInt(h.devminor ?? 0)).toString(),
        });
        nFiles++;
        entry.resume();
        break;
      default:
        // FIFOs and the like carry no data.
        entry.resume();
    }
  }
  await Promise.all(pending);
  const tree = await saveDir(opts.repo, root);
  return { tree, rootMeta: root.meta, files: nFiles, dirs: nDirs, bytes, errors, fileDigests, captured };
}

async function* tap(source: AsyncIterable<Buffer>, see: (b: Buffer) => void): AsyncIterable<Buffer> {
  for await (const b of source) {
    see(b);
    yield b;
  }
}

/** Chunks one entry's bytes into the pool; the node's content is filled in when the IDs are known. */
async function storeFile(
  opts: TarTreeOptions,
  entry: AsyncIterable<Buffer>,
  snapPath: string,
  size: number,
  base: Omit<TreeNode, 'type'>,
  pending: Promise<unknown>[],
): Promise<TreeNode> {
  let chunker: Chunker | null = null;
  let head: Buffer[] = [];
  let headBytes = 0;
  let total = 0;
  const ids: Promise<Buffer>[] = [];
  const feed = async (c: Chunker, data: Uint8Array | null): Promise<void> => {
    ids.push(...(await opts.pool.feed(c, data)));
  };
  for await (const piece of entry) {
    total += piece.length;
    if (!chunker) {
      head.push(piece);
      headBytes += piece.length;
      if (headBytes < HEAD_BYTES && total < size) continue;
      const first = Buffer.concat(head);
      head = [];
      chunker = createChunker(opts.repo.chunkPolicy.choose(snapPath, size, first).params);
      await feed(chunker, first);
      continue;
    }
    await feed(chunker, piece);
  }
  if (!chunker) {
    const all = Buffer.concat(head);
    chunker = createChunker(opts.repo.chunkPolicy.choose(snapPath, size, all).params);
    await feed(chunker, all);
  }
  await feed(chunker, null);
  const node: { -readonly [K in keyof TreeNode]: TreeNode[K] } = { ...base, type: 'file', size: total, content: [] };
  const done = Promise.all(ids).then((bufs) => {
    node.content = bufs.map((b) => b.toString('hex'));
  });
  // Not awaited: the next entry is read while this one's chunks are hashed; saveDir waits for all.
  pending.push(done);
  return node;
}

async function saveDir(repo: Repository, dir: DirEntry): Promise<string> {
  const nodes: TreeNode[] = [];
  const names = [...dir.children.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const child = dir.children.get(name)!;
    if (isDir(child)) {
      const subtree = await saveDir(repo, child);
      nodes.push({ ...nameFields(Buffer.from(name, 'utf8')), type: 'dir', ...(child.meta ?? { mode: 0o755, uid: 0, gid: 0, mtime: '0' }), subtree });
    } else nodes.push(child);
  }
  return await saveTree(repo, nodes);
}
