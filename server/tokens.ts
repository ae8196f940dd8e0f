/**
 * Access tokens. A token is `stw_<id>_<secret>`: the id (public, 8 bytes hex)
 * finds its record, the secret (32 random bytes) is checked against the
 * stored SHA-256 with a constant-time comparison. Only the hash is stored,
 * so the token file cannot be replayed; the token is shown once, at `add`.
 * A token belongs to one repository and has one role:
 *
 * - append: create the repository, read, list and add objects, remove locks;
 *   never delete or overwrite anything else;
 * - admin: everything append may, and delete (prune, forget).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import { z } from 'zod';
import { JsonFile } from './json-file.ts';
import type { StateLocation } from './state.ts';

export type Role = 'append' | 'admin';
export const ROLES: readonly Role[] = ['append', 'admin'];

const recordSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  repo: z.string(),
  role: z.enum(['append', 'admin']),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  created: z.string(),
  note: z.string().optional(),
});
export type TokenRecord = z.infer<typeof recordSchema>;
const fileSchema = z.object({ version: z.literal(1), tokens: z.array(recordSchema) });
type TokenFile = z.infer<typeof fileSchema>;

const TOKEN = /^stw_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Compared against when the id is unknown, so a miss costs what a hit costs. */
const DUMMY_HASH = Buffer.alloc(32);

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export class TokenStore {
  private readonly file: JsonFile<TokenFile>;

  constructor(state: StateLocation) {
    this.file = new JsonFile(state, 'tokens.json', fileSchema, () => ({ version: 1, tokens: [] }));
  }

  /** Makes a token; the returned string is the only time it exists in clear. */
  async add(repo: string, role: Role, note?: string): Promise<{ token: string; record: TokenRecord }> {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const record: TokenRecord = {
      id,
      repo,
      role,
      hash: hashSecret(secret).toString('hex'),
      created: new Date().toISOString(),
      ...(note ? { note } : {}),
    };
    await this.file.update((f) => ({ ...f, tokens: [...f.tokens, record] }));
    return { token: `stw_${id}_${secret}`, record };
  }

  async list(): Promise<TokenRecord[]> {
    return (await this.file.get()).tokens;
  }

  /** Removes the token with this id; false if there was none. */
  async revoke(id: string): Promise<boolean> {
    let found = false;
    await this.file.update((f) => {
      const tokens = f.tokens.filter((t) => t.id !== id);
      found = tokens.length !== f.tokens.length;
      return { ...f, tokens };
    });
    return found;
  }

  /** The record of a presented token, or null; constant time in the secret. */
  async verify(presented: string): Promise<TokenRecord | null> {
    const m = TOKEN.exec(presented);
    let record = m ? (await this.file.get()).tokens.find((t) => t.id === m[1]) : undefined;
    // A token added a moment ago by `serve token add` must work at once.
    if (m && !record) record = (await this.file.get(true)).tokens.find((t) => t.id === m[1]);
    const given = hashSecret(m?.[2] ?? presented);
    const stored = record ? Buffer.from(record.hash, 'hex') : DUMMY_HASH;
    const equal = timingSafeEqual(given, stored);
    return record && equal ? record : null;
  }
}
