/**
 * Trees (format §7): one directory listing per tree blob, with full metadata
 * for each entry. Serialised canonically (fixed key order, entries sorted by
 * the bytes of their names) so that an unchanged directory gives the same
 * blob ID and deduplicates.
 */
import { z } from 'zod';
import { IntegrityError, UsageError } from './errors.ts';

export type NodeType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev';

export interface Xattr {
  readonly name: string;
  /** base64 */
  readonly value: string;
}

export interface TreeNode {
  /** The name as UTF-8; for a name that is not valid UTF-8, a lossy rendering (see nameRaw). */
  readonly name: string;
  /** base64 of the name's exact bytes, present only when they are not valid UTF-8. */
  readonly nameRaw?: string;
  readonly type: NodeType;
  /** Permission bits with setuid, setgid and sticky (st_mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly user?: string;
  readonly group?: string;
  /** Nanoseconds since the epoch, as a decimal string (exceeds 2^53). */
  readonly mtime: string;
  /** Kept for change detection of the next backup; not restored. */
  readonly ctime?: string;
  readonly inode?: string;
  readonly device?: string;
  /** Hard link count; files with links > 1 and equal device and inode are linked on restore. */
  readonly links?: number;
  readonly size?: number;
  /** Data blob IDs (hex) in file order; files only. */
  readonly content?: readonly string[];
  /** Tree blob ID (hex); directories only. */
  readonly subtree?: string;
  readonly target?: string;
  readonly targetRaw?: string;
  /** Device number for character and block devices. */
  readonly rdev?: string;
  readonly xattrs?: readonly Xattr[];
}

export interface Tree {
  readonly nodes: readonly TreeNode[];
}

const KEY_ORDER: readonly (keyof TreeNode)[] = [
  'name',
  'nameRaw',
  'type',
  'mode',
  'uid',
  'gid',
  'user',
  'group',
  'mtime',
  'ctime',
  'inode',
  'device',
  'links',
  'size',
  'content',
  'subtree',
  'target',
  'targetRaw',
  'rdev',
  'xattrs',
];

export function nameBytes(n: Pick<TreeNode, 'name' | 'nameRaw'>): Buffer {
  return n.nameRaw !== undefined ? Buffer.from(n.nameRaw, 'base64') : Buffer.from(n.name, 'utf8');
}

/** Name fields for raw bytes: `name` alone when they are valid UTF-8. */
export function nameFields(raw: Buffer): { name: string; nameRaw?: string } {
  const s = raw.toString('utf8');
  return Buffer.from(s, 'utf8').equals(raw) ? { name: s } : { name: s, nameRaw: raw.toString('base64') };
}

export function targetFields(raw: Buffer): { target: string; targetRaw?: string } {
  const s = raw.toString('utf8');
  return Buffer.from(s, 'utf8').equals(raw) ? { target: s } : { target: s, targetRaw: raw.toString('base64') };
}

export function targetBytes(n: TreeNode): Buffer {
  return n.targetRaw !== undefined ? Buffer.from(n.targetRaw, 'base64') : Buffer.from(n.target ?? '', 'utf8');
}

export function encodeTree(nodes: readonly TreeNode[]): Buffer {
  const sorted = [...nodes].sort((a, b) => Buffer.compare(nameBytes(a), nameBytes(b)));
  const canon = sorted.map((n) => {
    const o: Record<string, unknown> = {};
    for (const k of KEY_ORDER) if (n[k] !== undefined) o[k] = n[k];
    return o;
  });
  return Buffer.from(JSON.stringify({ nodes: canon }));
}

const nodeSchema = z.object({
  name: z.string(),
  nameRaw: z.string().optional(),
  type: z.enum(['file', 'dir', 'symlink', 'chardev', 'blockdev']),
  mode: z.number().int().min(0).max(0o7777),
  uid: z.number().int().min(0),
  gid: z.number().int().min(0),
  user: z.string().optional(),
  group: z.string().optional(),
  mtime: z.string().regex(/^-?[0-9]+$/),
  ctime: z.string().optional(),
  inode: z.string().optional(),
  device: z.string().optional(),
  links: z.number().int().optional(),
  size: z.number().int().min(0).optional(),
  content: z.array(z.string().regex(/^[0-9a-f]{64}$/)).optional(),
  subtree: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  target: z.string().optional(),
  targetRaw: z.string().optional(),
  rdev: z.string().optional(),
  xattrs: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
});
const treeSchema = z.object({ nodes: z.array(nodeSchema) });

/** Parses a tree blob; null when it is not a valid tree. */
export function decodeTree(plain: Buffer): Tree | null {
  try {
    const r = treeSchema.safeParse(JSON.parse(plain.toString('utf8')));
    return r.success ? (r.data as Tree) : null;
  } catch {
    return null;
  }
}

/** mtime in nanoseconds as a Date (millisecond precision), for display. */
export function mtimeDate(n: Pick<TreeNode, 'mtime'>): Date {
  return new Date(Number(BigInt(n.mtime) / 1_000_000n));
}

/** The part of a repository trees are read from and written to. */
export interface TreeStore {
  loadBlob(type: 'tree', idHex: string): Promise<Buffer>;
  saveBlob(type: 'tree', plaintext: Uint8Array): Promise<{ id: Buffer; added: boolean }>;
}

export async function loadTree(store: Pick<TreeStore, 'loadBlob'>, idHex: string): Promise<Tree> {
  const tree = decodeTree(await store.loadBlob('tree', idHex));
  if (!tree) throw new IntegrityError(`tree blob ${idHex}`, 'decrypts but is not a valid tree');
  return tree;
}

export async function saveTree(store: TreeStore, nodes: readonly TreeNode[]): Promise<string> {
  return (await store.saveBlob('tree', encodeTree(nodes))).id.toString('hex');
}

/** The node at `parts` below a root tree; null for the root itself. Throws UsageError when absent. */
export async function findNode(store: Pick<TreeStore, 'loadBlob'>, rootTree: string, parts: readonly string[]): Promise<TreeNode | null> {
  let tree = rootTree;
  let node: TreeNode | null = null;
  let display = '';
  for (const [i, part] of parts.entries()) {
    const t = await loadTree(store, tree);
    const found = t.nodes.find((n) => n.name === part);
    display += `/${part}`;
    if (!found) throw new UsageError(`${display} is not in the snapshot (see "stowage ls")`);
    node = found;
    if (i < parts.length - 1) {
      if (found.type !== 'dir' || !found.subtree) throw new UsageError(`${display} is not a directory in the snapshot`);
      tree = found.subtree;
    }
  }
  return node;
}

/** Visits every node below a tree, depth first, with its path. */
export async function walkTree(
  store: Pick<TreeStore, 'loadBlob'>,
  treeId: string,
  prefix: string,
  visit: (path: string, node: TreeNode) => void | Promise<void>,
): Promise<void> {
  const tree = await loadTree(store, treeId);
  for (const node of tree.nodes) {
    const p = `${prefix}/${node.name}`;
    await visit(p, node);
    if (node.type === 'dir' && node.subtree) await walkTree(store, node.subtree, p, visit);
  }
}
