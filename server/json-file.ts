/**
 * A small JSON state file of the server (tokens, repository settings):
 * written atomically with mode 0600, re-read when another process (the
 * `serve token` command) changed it, at most once a second.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { z } from 'zod';

const RECHECK_MS = 1000;

export class JsonFile<T> {
  private readonly file: string;
  private readonly schema: z.ZodType<T>;
  private readonly empty: () => T;
  private value: T | null = null;
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(file: string, schema: z.ZodType<T>, empty: () => T) {
    this.file = file;
    this.schema = schema;
    this.empty = empty;
  }

  /**
   * The current contents, re-read if the file changed since last time;
   * `fresh` checks the file now rather than trusting the last second's look.
   */
  async get(fresh = false): Promise<T> {
    const now = Date.now();
    if (!fresh && this.value !== null && now - this.checkedAt < RECHECK_MS) return this.value;
    this.checkedAt = now;
    let mtimeMs: number;
    try {
      mtimeMs = (await fs.stat(this.file)).mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.value = this.empty();
      this.mtimeMs = -1;
      return this.value;
    }
    if (this.value === null || mtimeMs !== this.mtimeMs) {
      const parsed = this.schema.safeParse(JSON.parse(await fs.readFile(this.file, 'utf8')));
      if (!parsed.success) throw new Error(`${this.file} is damaged: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      this.value = parsed.data;
      this.mtimeMs = mtimeMs;
    }
    return this.value;
  }

  /** Applies fn to a fresh read and writes the result atomically. */
  async update(fn: (v: T) => T): Promise<T> {
    this.value = null;
    const next = fn(await this.get());
    await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${randomBytes(6).toString('hex')}`;
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(next, null, 2) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.file);
    this.value = null;
    return next;
  }
}
