/**
 * The repository config (format §3.2): the format version and every
 * algorithm choice, by name, so that all clients of a repository chunk,
 * compress and seal alike and a later version can change them.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { type ChunkerParams, DEFAULT_CDC, validateChunkerParams } from './chunker.ts';
import type { CompressionSettings } from './compression.ts';

export const FORMAT_VERSION = 1;
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

const chunkerSchema = z.discriminatedUnion('algorithm', [
  z.object({ algorithm: z.literal('fastcdc'), min: z.number().int(), avg: z.number().int(), max: z.number().int() }),
  z.object({ algorithm: z.literal('fixed'), size: z.number().int() }),
]);

/**
 * A file that matches a rule is cut with the rule's chunker instead of the
 * default. Page-structured database files are the reason: their updates
 * rewrite scattered pages in place, and fixed blocks aligned to pages keep a
 * one-page change to one small blob, where content-defined chunks of a MiB
 * would each be stored again.
 */
const ruleSchema = z.object({
  name: z.string(),
  /** ECMAScript regex tested against the file's path in the snapshot, "/"-separated. */
  path: z.string().optional(),
  /** Hex bytes the file must start with. */
  magic: z.string().regex(/^([0-9a-f]{2})+$/).optional(),
  /** The file's size must be a multiple of this (a page size). */
  sizeMultiple: z.number().int().positive().optional(),
  chunker: chunkerSchema,
});
export type ChunkRule = z.infer<typeof ruleSchema>;

export const configSchema = z.object({
  version: z.literal(FORMAT_VERSION),
  id: z.string().regex(/^[0-9a-f]{64}$/),
  created: z.string(),
  cipher: z.literal('xchacha20-poly1305'),
  blobId: z.literal('blake2b-256-keyed'),
  kdf: z.literal('libsodium-kdf-blake2b'),
  compression: z.object({ algorithm: z.enum(['zstd', 'none']), level: z.number().int().min(-7).max(22) }),
  chunker: chunkerSchema,
  chunkRules: z.array(ruleSchema),
  packSize: z.number().int().min(1024 * 1024).max(512 * 1024 * 1024),
  /** When true, data blobs are sealed to `recoveryPublicKey` and host keys cannot read them. */
  writeOnlyHosts: z.boolean(),
  recoveryPublicKey: z.string(),
});
export type RepositoryConfig = z.infer<typeof configSchema>;

export const DEFAULT_CHUNK_RULES: ChunkRule[] = [
  {
    name: 'postgresql-relation',
    path: '(^|/)(base/[0-9]+|global)/[0-9]+(\\.[0-9]+|_fsm|_vm|_init)?$',
    sizeMultiple: 8192,
    chunker: { algorithm: 'fixed', size: 64 * 1024 },
  },
  {
    name: 'innodb-tablespace',
    path: '(\\.ibd|(^|/)ibdata[0-9]+|(^|/)undo_[0-9]+)$',
    sizeMultiple: 16384,
    chunker: { algorithm: 'fixed', size: 64 * 1024 },
  },
  {
    name: 'sqlite',
    magic: Buffer.from('SQLite format 3\0', 'latin1').toString('hex'),
    sizeMultiple: 512,
    chunker: { algorithm: 'fixed', size: 64 * 1024 },
  },
];

export interface NewConfigOptions {
  readonly chunker?: ChunkerParams;
  readonly compression?: CompressionSettings;
  readonly packSize?: number;
  readonly writeOnlyHosts?: boolean;
  readonly now: Date;
}

export function newConfig(recoveryPublicKey: Buffer, opts: NewConfigOptions): RepositoryConfig {
  const chunker = opts.chunker ?? DEFAULT_CDC;
  const problem = validateChunkerParams(chunker);
  if (problem) throw new Error(problem);
  return {
    version: FORMAT_VERSION,
    id: randomBytes(32).toString('hex'),
    created: opts.now.toISOString(),
    cipher: 'xchacha20-poly1305',
    blobId: 'blake2b-256-keyed',
    kdf: 'libsodium-kdf-blake2b',
    compression: opts.compression ?? { algorithm: 'zstd', level: 1 },
    chunker,
    chunkRules: DEFAULT_CHUNK_RULES,
    packSize: opts.packSize ?? DEFAULT_PACK_SIZE,
    writeOnlyHosts: opts.writeOnlyHosts ?? false,
    recoveryPublicKey: recoveryPublicKey.toString('base64'),
  };
}

/** A compiled rule set: picks the chunker for one file. */
export class ChunkPolicy {
  private readonly rules: { rule: ChunkRule; path: RegExp | null; magic: Buffer | null }[];
  private readonly fallback: ChunkerParams;

  constructor(config: Pick<RepositoryConfig, 'chunker' | 'chunkRules'>) {
    this.fallback = config.chunker;
    this.rules = config.chunkRules.map((rule) => ({
      rule,
      path: rule.path === undefined ? null : new RegExp(rule.path),
      magic: rule.magic === undefined ? null : Buffer.from(rule.magic, 'hex'),
    }));
  }

  /** Longest prefix of a file any rule needs to see. */
  get magicLength(): number {
    return Math.max(0, ...this.rules.map((r) => r.magic?.length ?? 0));
  }

  choose(path: string, size: number, head: Uint8Array): { params: ChunkerParams; rule: string | null } {
    for (const r of this.rules) {
      if (r.path && !r.path.test(path)) continue;
      if (r.rule.sizeMultiple && (size === 0 || size % r.rule.sizeMultiple !== 0)) continue;
      if (r.magic && (head.length < r.magic.length || !Buffer.from(head.buffer, head.byteOffset, r.magic.length).equals(r.magic))) continue;
      return { params: r.rule.chunker, rule: r.rule.name };
    }
    return { params: this.fallback, rule: null };
  }
}
