/**
 * Scrub: re-hash every stored object against its name, without any key, to
 * find bit rot or tampering on the server's disk before a restore does.
 * (The config is not content-addressed; clients authenticate it.)
 */
import { createHash } from 'node:crypto';
import { OBJECT_TYPES } from '../core/backend.ts';
import type { Store } from './store.ts';

export interface ScrubFinding {
  readonly repo: string;
  readonly object: string;
  readonly problem: string;
}

export interface ScrubResult {
  readonly objects: number;
  readonly bytes: number;
  readonly findings: ScrubFinding[];
}

export async function scrub(store: Store, repos: readonly string[], onObject?: (bytes: number) => void): Promise<ScrubResult> {
  const findings: ScrubFinding[] = [];
  let objects = 0;
  let bytes = 0;
  for (const repo of repos) {
    for (const type of OBJECT_TYPES) {
      if (type === 'config') continue;
      let after: string | null = null;
      do {
        const page = await store.list(repo, type, after, 1000);
        for (const o of page.objects) {
          const hash = createHash('sha256');
          let n = 0;
          try {
            for await (const chunk of await store.read({ repo, type, name: o.name }, 0, Math.max(0, o.size - 1))) {
              if (o.size === 0) break;
              hash.update(chunk as Buffer);
              n += (chunk as Buffer).length;
            }
          } catch (e) {
            findings.push({ repo, object: `${type}/${o.name}`, problem: `unreadable: ${(e as Error).message}` });
            continue;
          }
          objects++;
          bytes += n;
          onObject?.(n);
          const digest = hash.digest('hex');
          if (digest !== o.name) findings.push({ repo, object: `${type}/${o.name}`, problem: `content hashes to ${digest}: damaged on disk` });
        }
        after = page.next;
      } while (after);
    }
  }
  return { objects, bytes, findings };
}
