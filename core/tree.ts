/**
 * Trees (format §7): one directory listing per tree blob, with full metadata
 * for each entry. Serialised canonically (fixed key order, entries sorted by
 * the bytes of their names) so that an unchanged directory gives the same
 * blob ID and deduplicates.
 */
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

/*
 * Tree blobs are checked by hand rather than with a schema library: a
 * no-change backup decodes every directory of the parent snapshot, and a
 * generic validator cost more than decrypting and decompressing them.
 */
const NODE_TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'chardev', 'blockdev']);
const INTEGER_STRING = /^-?[0-9]+$/;
const HEX_ID = /^[0-9a-f]{64}$/;
const OPTIONAL_STRINGS = ['nameRaw', 'user', 'group', 'ctime', 'inode', 'device', 'target', 'targetRaw', 'rdev'] as const;
const KNOWN_KEYS: ReadonlySet<string> = new Set([
  'name', 'nameRaw', 'type', 'mode', 'uid', 'gid', 'user', 'group', 'mtime', 'ctime', 'inode', 'device', 'links',
  'size', 'content', 'subtree', 'target', 'targetRaw', 'rdev', 'xattrs',
]);

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function isNode(v: unknown): v is TreeNode {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (typeof o['name'] !== 'string' || typeof o['type'] !== 'string' || !NODE_TYPES.has(o['type'])) return false;
  if (!isUint(o['mode']) || o['mode'] > 0o7777 || !isUint(o['uid']) || !isUint(o['gid'])) return false;
  if (typeof o['mtime'] !== 'string' || !INTEGER_STRING.test(o['mtime'])) return false;
  for (const k of OPTIONAL_STRINGS) if (o[k] !== undefined && typeof o[k] !== 'string') return false;
  if (o['links'] !== undefined && !Number.isInteger(o['links'])) return false;
  if (o['size'] !== undefined && !isUint(o['size'])) return false;
  if (o['subtree'] !== undefined && (typeof o['subtree'] !== 'string' || !HEX_ID.test(o['subtree']))) return false;
  const content = o['content'];
  if (content !== undefined && (!Array.isArray(content) || !content.every((c) => typeof c === 'string' && HEX_ID.test(c)))) return false;
  const xattrs = o['xattrs'];
  if (xattrs !== undefined) {
    if (!Array.isArray(xattrs)) return false;
    for (const x of xattrs) {
      if (typeof x !== 'object' || x === null || typeof x.name !== 'string' || typeof x.value !== 'string') return false;
    }
  }
  // Keys this version does not know are dropped, as a schema parse would.
  for (const k of Object.keys(o)) if (!KNOWN_KEYS.has(k)) delete o[k];
  return true;
}

/** Parses a tree blob; null when it is not a valid tree. */
export function decodeTree(plain: Buffer): Tree | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(plain.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const nodes = (parsed as { nodes?: unknown }).nodes;
  if (!Array.isArray(nodes) || !nodes.every(isNode)) return null;
  return { nodes } as Tree;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  if (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

/** Whether two nodes encode alike: a tree of nodes equal to another's is that tree. */
export function sameNode(a: TreeNode, b: TreeNode): boolean {
  return KEY_ORDER.every((k) => sameValue(a[k], b[k]));
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
