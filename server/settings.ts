/** Per-repository settings the operator sets with `stowage serve quota`: the quota. */
import * as path from 'node:path';
import { z } from 'zod';
import { JsonFile } from './json-file.ts';
import type { StateLocation } from './state.ts';

const fileSchema = z.object({
  version: z.literal(1),
  repos: z.record(z.string(), z.object({ quotaBytes: z.number().int().positive().optional() })),
});
type SettingsFile = z.infer<typeof fileSchema>;

export class RepoSettings {
  private readonly file: JsonFile<SettingsFile>;

  constructor(state: StateLocation) {
    this.file = new JsonFile(state, 'repos.json', fileSchema, () => ({ version: 1, repos: {} }));
  }

  /** The repository's quota in bytes, or null for none. */
  async quota(repo: string): Promise<number | null> {
    return (await this.file.get()).repos[repo]?.quotaBytes ?? null;
  }

  async setQuota(repo: string, bytes: number | null): Promise<void> {
    await this.file.update((f) => {
      const repos = { ...f.repos };
      if (bytes === null) delete repos[repo];
      else repos[repo] = { ...repos[repo], quotaBytes: bytes };
      return { ...f, repos };
    });
  }
}
