/**
 * `npm run demo`: the main job end to end on an embedded default. Creates a
 * local repository in a temporary directory, backs up examples/data, lists
 * the snapshot, restores it into another temporary directory and checks that
 * every file came back identical (bytes, mode, mtime, symlinks).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const data = path.join(root, 'examples/data');
const work = mkdtempSync(path.join(tmpdir(), 'stowage-demo-'));
const repo = path.join(work, 'repo');
const target = path.join(work, 'restored');
const env = { ...process.env, STOWAGE_PASSWORD: process.env['STOWAGE_PASSWORD'] ?? 'demo passphrase', STOWAGE_NODE: process.execPath, STOWAGE_CACHE_DIR: path.join(work, 'cache') };

function stowage(...args: string[]): void {
  console.log(`\n$ stowage ${args.join(' ')}`);
  const r = spawnSync(path.join(root, 'cli/stowage'), args, { env, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`demo: "stowage ${args[0]}" exited with ${r.status}`);
    process.exit(1);
  }
}

function fingerprint(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    let what = `${st.mode & 0o7777}`;
    if (st.isSymbolicLink()) what += ` -> ${fs.readlinkSync(p)}`;
    else if (st.isFile()) what += ` ${Math.floor(st.mtimeMs)} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    if (rel) out.set(rel, what);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(rel, n));
  };
  walk('');
  return out;
}

try {
  stowage('--repo', repo, 'init');
  stowage('--repo', repo, 'backup', data, '--tag', 'demo');
  stowage('--repo', repo, 'backup', data, '--tag', 'demo');
  stowage('--repo', repo, 'snapshots');
  stowage('--repo', repo, 'ls', 'latest', path.join(data, 'app'), '--long');
  stowage('--repo', repo, 'restore', 'latest', '--target', target);
  const a = fingerprint(data);
  const b = fingerprint(path.join(target, data));
  const bad = [...a].filter(([k, v]) => b.get(k) !== v).map(([k]) => k);
  if (bad.length > 0 || a.size !== b.size) {
    console.error(`\ndemo: restored tree differs from the original: ${bad.join(', ') || 'entry count'}`);
    process.exit(1);
  }
  console.log(`\ndemo: OK: ${a.size} entries backed up, restored and verified identical (repository: ${repo})`);
} finally {
  if (!process.env['STOWAGE_DEMO_KEEP']) rmSync(work, { recursive: true, force: true });
}
