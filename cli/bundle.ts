/**
 * `npm run build`: bundles the program into dist/ with esbuild, which the
 * launcher (cli/stowage) runs instead of the sources while no source is
 * newer. From sources, Node loads some two hundred modules at every start
 * (a hundred of them zod's); from a cold page cache that cost a restore or a
 * `cat config` about 0.1 s (docs/benchmarks.md).
 *
 *   dist/cli/stowage.js        the command
 *   dist/core/seal-worker.js   the workers (core/program-files.ts finds them)
 *   dist/core/kdf-worker.js
 *   dist/chunks/*.js           code they share, and the commands, each loaded when it runs
 *
 * Packages that load files of their own (native addons, WebAssembly) or are
 * large and only some commands need stay outside and load from
 * node_modules as before.
 */
import { build } from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

/** Pure JavaScript that every command loads: bundled. The other dependencies stay external. */
const BUNDLED_PACKAGES = new Set(['commander', 'zod', 'cli-progress', 'yaml', 'croner', 'tar-stream']);

export async function bundle(outdir = path.join(root, 'dist')): Promise<void> {
  const external = Object.keys(pkg.dependencies).filter((d) => !BUNDLED_PACKAGES.has(d));
  // Built beside, then swapped in: a launcher that starts meanwhile finds the old bundle or none, never half of one.
  const staging = `${outdir}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: ['cli/stowage.ts', 'core/seal-worker.ts', 'core/kdf-worker.ts'],
    outbase: '.',
    outdir: staging,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    chunkNames: 'chunks/[name]-[hash]',
    external: [...external, ...external.map((d) => `${d}/*`)],
    define: { STOWAGE_BUNDLE: 'true' },
    // Bundled CommonJS packages (commander, cli-progress) require Node's own modules.
    banner: { js: "import { createRequire as stowageCreateRequire } from 'node:module'; const require = stowageCreateRequire(import.meta.url);" },
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  const old = `${outdir}.old-${process.pid}`;
  if (fs.existsSync(outdir)) fs.renameSync(outdir, old);
  fs.renameSync(staging, outdir);
  fs.rmSync(old, { recursive: true, force: true });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  await bundle(out ? path.resolve(out) : undefined);
}
