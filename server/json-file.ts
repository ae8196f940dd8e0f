/**
 * A small JSON state document of the server (tokens, repository settings,
 * client certificates) over a StateDoc: a file in the state directory or an
 * object in the S3 store. Re-read when it changed (another process, such as
 * `serve token add` or another server, wrote it), looking at most once per
 * the document's recheck interval; updated by compare-and-swap.
 */
import type { z } from 'zod';
import { ApiError } from './errors.ts';
import { type StateDoc, type StateLocation, stateDoc } from './state.ts';

export class JsonFile<T> {
  private readonly doc: StateDoc;
  private readonly schema: z.ZodType<T>;
  private readonly empty: () => T;
  private readonly name: string;
  private value: T | null = null;
  private version: string | null = null;
  private checkedAt = 0;

  constructor(loc: StateLocation, name: string, schema: z.ZodType<T>, empty: () => T) {
    this.doc = stateDoc(loc, name);
    this.name = name;
    this.schema = schema;
    this.empty = empty;
  }

  /**
   * The current contents, re-read if they changed since last time; `fresh`
   * looks now rather than trusting the last look.
   */
  async get(fresh = false): Promise<T> {
    try {
      return await this.load(fresh);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      // The state's store is down (S3): retryable, like an object the store cannot give.
      throw new ApiError(503, 'store-unavailable', `the server's state (${this.name}) cannot be read: ${(e as Error).message}`, { 'retry-after': '2' });
    }
  }

  private async load(fresh: boolean): Promise<T> {
    const now = Date.now();
    if (!fresh && this.value !== null && now - this.checkedAt < this.doc.recheckMs) return this.value;
    this.checkedAt = now;
    const version = await this.doc.version();
    if (this.value !== null && version === this.version) return this.value;
    const got = await this.doc.read();
    if (!got) {
      this.value = this.empty();
      this.version = null;
      return this.value;
    }
    const parsed = this.schema.safeParse(JSON.parse(got.text));
    if (!parsed.success) throw new Error(`server state ${this.name} is damaged: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    this.value = parsed.data;
    this.version = got.version;
    return this.value;
  }

  /** Applies fn to the stored value and writes the result; retried when another writer got there first. */
  async update(fn: (v: T) => T): Promise<T> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const got = await this.doc.read();
      const current = got ? this.schema.parse(JSON.parse(got.text)) : this.empty();
      const next = fn(current);
      if (await this.doc.write(JSON.stringify(next, null, 2) + '\n', got?.version ?? null)) {
        this.value = null;
        return next;
      }
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    }
    throw new Error(`server state ${this.name}: too many concurrent updates; try again`);
  }
}
