/**
 * Snapshots (format §8): one sealed object per backup run, naming the root
 * tree and saying when, where and what was backed up.
 */
import { z } from 'zod';
import type { ObjectInfo } from './backend.ts';
import { IntegrityError, SnapshotNotFoundError } from './errors.ts';

export const SNAPSHOT_VERSION = 1;

const sourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('path'), path: z.string() }),
  z.object({ kind: z.literal('container'), name: z.string() }),
  z.object({ kind: z.literal('volume'), name: z.string() }),
]);
export type SnapshotSource = z.infer<typeof sourceSchema>;

const statsSchema = z.object({
  files: z.number(),
  dirs: z.number(),
  bytes: z.number(),
  filesNew: z.number(),
  filesChanged: z.number(),
  filesUnchanged: z.number(),
  blobsAdded: z.number(),
  bytesAdded: z.number(),
  bytesUploaded: z.number(),
  durationMs: z.number(),
});
export type SnapshotStats = z.infer<typeof statsSchema>;

export const snapshotSchema = z.object({
  version: z.literal(SNAPSHOT_VERSION),
  time: z.string(),
  host: z.string(),
  username: z.string(),
  tags: z.array(z.string()),
  paths: z.array(z.string()),
  sources: z.array(sourceSchema),
  tree: z.string().regex(/^[0-9a-f]{64}$/),
  parent: z.string().optional(),
  programVersion: z.string(),
  stats: statsSchema,
  /** Entries that could not be read: the snapshot is partial. */
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  /** Container-aware backups: specs, networks, volumes, images (docs/containers.md). */
  docker: z.unknown().optional(),
  /** Set by `copy`: the ID of the snapshot this one was copied from, in the source repository. */
  copiedFrom: z.string().optional(),
});
export type Snapshot = z.infer<typeof snapshotSchema>;

export interface SnapshotRecord {
  readonly id: string;
  readonly snapshot: Snapshot;
  /** When the store received it, by the store's clock. */
  readonly receivedAt?: Date;
}

/** The part of a repository snapshots live in. */
export interface SnapshotStore {
  saveObject(type: 'snapshots', sealedType: 'snapshot', plaintext: Uint8Array): Promise<string>;
  loadObject(type: 'snapshots', sealedType: 'snapshot', name: string): Promise<Buffer>;
  listObjects(type: 'snapshots'): Promise<ObjectInfo[]>;
}

export async function saveSnapshot(store: SnapshotStore, snap: Snapshot): Promise<string> {
  return await store.saveObject('snapshots', 'snapshot', Buffer.from(JSON.stringify(snap)));
}

export async function loadSnapshot(store: SnapshotStore, id: string): Promise<Snapshot> {
  const plain = await store.loadObject('snapshots', 'snapshot', id);
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new IntegrityError(`snapshots/${id}`, 'decrypts but is not JSON');
  }
  const r = snapshotSchema.safeParse(json);
  if (!r.success) throw new IntegrityError(`snapshots/${id}`, `not a valid snapshot: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`);
  return r.data;
}

/** All snapshots, oldest first. */
export async function listSnapshots(store: SnapshotStore): Promise<SnapshotRecord[]> {
  const infos = await store.listObjects('snapshots');
  const records = await Promise.all(
    infos.map(async (info) => ({ id: info.name, snapshot: await loadSnapshot(store, info.name), ...(info.receivedAt ? { receivedAt: info.receivedAt } : {}) })),
  );
  return records.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
}

/**
 * Resolves `latest`, a full ID or a unique prefix of one (at least 4
 * characters, as restic's short IDs are 8).
 */
export function findSnapshot(records: readonly SnapshotRecord[], ref: string): SnapshotRecord {
  if (ref === 'latest') {
    const last = records.at(-1);
    if (!last) throw new SnapshotNotFoundError('the repository has no snapshots yet');
    return last;
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) throw new SnapshotNotFoundError(`"${ref}" is not a snapshot ID: use "latest", an ID, or a unique prefix of at least 4 hex digits`);
  const hits = records.filter((r) => r.id.startsWith(ref));
  if (hits.length === 0) throw new SnapshotNotFoundError(`no snapshot with ID ${ref}`);
  if (hits.length > 1) throw new SnapshotNotFoundError(`snapshot prefix ${ref} is ambiguous: it matches ${hits.map((h) => h.id.slice(0, 12)).join(', ')}`);
  return hits[0]!;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** The newest snapshot of the same host and the same set of paths: the parent of a new backup. */
export function findParent(records: readonly SnapshotRecord[], host: string, paths: readonly string[]): SnapshotRecord | undefined {
  const key = [...paths].sort().join('\0');
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i]!;
    if (r.snapshot.host === host && [...r.snapshot.paths].sort().join('\0') === key) return r;
  }
  return undefined;
}
