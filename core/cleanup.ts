/**
 * Work that must be undone however a run ends, including by SIGTERM (the
 * CLI's signal handler runs these before it exits): containers stopped for
 * their backup are started again.
 */
type Cleanup = () => Promise<void>;

const cleanups = new Set<Cleanup>();

/** Registers fn; the returned function unregisters it (call it once the work is undone normally). */
export function registerCleanup(fn: Cleanup): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Runs every registered cleanup once, each failure ignored, within `timeoutMs`. */
export async function runCleanups(timeoutMs = 60_000): Promise<void> {
  const all = [...cleanups];
  cleanups.clear();
  await Promise.race([Promise.allSettled(all.map((fn) => fn())), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}
