/**
 * Where a user's stowage cache lives: `STOWAGE_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/stowage`, else `~/.cache/stowage`. Kept apart from the
 * cache itself so that the executable can find it (for Node's compile cache)
 * before it loads anything else.
 */
import { homedir } from 'node:os';
import * as path from 'node:path';

export function defaultCacheRoot(env: NodeJS.ProcessEnv): string {
  if (env['STOWAGE_CACHE_DIR']) return env['STOWAGE_CACHE_DIR'];
  const xdg = env['XDG_CACHE_HOME'];
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.cache'), 'stowage');
}
