/**
 * Where the program's own files are, whether it runs from its sources or
 * from the bundle that cli/bundle.ts builds into dist/ (which starts faster:
 * a few files instead of some two hundred modules). In the bundle this
 * module's code sits in a file one level below dist/ (dist/cli/,
 * dist/chunks/), next to dist/core/ where the workers' entry points are.
 */

/** Set by the bundler (cli/bundle.ts) and nowhere else; undefined when running from source. */
declare const STOWAGE_BUNDLE: boolean | undefined;

/** Whether this code runs from dist/ rather than from its sources. */
export const BUNDLED = typeof STOWAGE_BUNDLE !== 'undefined' && STOWAGE_BUNDLE;

/** The modules that run as worker threads. */
export type WorkerModule = 'seal-worker' | 'kdf-worker';

/** The module a worker thread runs: core/NAME.ts, or its bundled entry dist/core/NAME.js. */
export function workerUrl(name: WorkerModule): URL {
  return BUNDLED ? new URL(`../core/${name}.js`, import.meta.url) : new URL(`./${name}.ts`, import.meta.url);
}

/** The `stowage` launcher (cli/stowage), for running the program as a child process. */
export function launcherUrl(): URL {
  return BUNDLED ? new URL('../../cli/stowage', import.meta.url) : new URL('../cli/stowage', import.meta.url);
}
