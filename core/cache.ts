/**
 * A local cache of immutable repository objects (index, snapshots, packs of
 * trees), so that a nightly incremental backup against a remote repository
 * downloads almost nothing. It holds the sealed bytes exactly as stored, so
 * it reveals nothing the server does not already see; each file is checked
 * against its name (SHA-256) when read, and a bad one is dropped.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { ObjectType } from './backend.ts';
import { sha256Hex } from './crypto.ts';
import { errnoCode } from './errors.ts';

export class ObjectCache {
  private readonly dir: string;

  constructor(root: string, repositoryId: string) {
    this.dir = path.join(root, repositoryId);
  }

  private file(type: ObjectType, name: string): string {
    return path.join(this.dir, type, name);
  }

  async get(type: ObjectType, name: string): Promise<Buffer | null> {
    let data: Buffer;
    try {
      data = await fs.readFile(this.file(type, name));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return null;
      return null;
    }
    if (sha256Hex(data) !== name) {
      await fs.rm(this.file(type, name), { force: true });
      return null;
    }
    return data;
  }

  /** Best effort: a cache that cannot be written only costs downloads. */
  async put(type: ObjectType, name: string, data: Uint8Array): Promise<void> {
    try {
      const dir = path.join(this.dir, type);
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const tmp = path.join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
      await fs.writeFile(tmp, data, { mode: 0o600 });
      await fs.rename(tmp, this.file(type, name));
    } catch {
      // ignored on purpose
    }
  }

  /** Drops cached objects of `type` that the repository no longer has. */
  async retainOnly(type: ObjectType, names: ReadonlySet<string>): Promise<void> {
    let entries: string[];
    try {
      entries = await fs.readdir(path.join(this.dir, type));
    } catch {
      return;
    }
    await Promise.all(entries.filter((n) => !names.has(n)).map((n) => fs.rm(path.join(this.dir, type, n), { force: true })));
  }
}
