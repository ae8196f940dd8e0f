/**
 * Extended attributes (and POSIX ACLs, which Linux stores as the
 * system.posix_acl_* attributes). Node has no xattr API, so this uses the
 * `attr` package's tools: one recursive `getfattr` per backed-up path reads
 * them all in C, and `setfattr` restores the few files that have any. Where
 * the tools are missing, attributes are skipped with one warning.
 */
import { execFile, spawn } from 'node:child_process';
import type { Xattr } from './tree.ts';

export type XattrMap = Map<string, Xattr[]>;

function unescapeGetfattr(s: string): Buffer {
  // getfattr prints unprintable bytes and backslashes as three-digit octal escapes.
  const out: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.toString('latin1', i + 1, i + 4))) {
      out.push(parseInt(raw.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    } else out.push(raw[i]!);
  }
  return Buffer.from(out);
}

export function parseGetfattr(output: string): XattrMap {
  const map: XattrMap = new Map();
  let current: Xattr[] | null = null;
  for (const line of output.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      map.set(unescapeGetfattr(line.slice(8)).toString('utf8'), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const name = line.slice(0, eq);
      let value = line.slice(eq + 1);
      // -e base64 prints "0s" + base64; an empty value prints nothing after '='.
      if (value.startsWith('0s')) value = value.slice(2);
      else if (value.startsWith('"') && value.endsWith('"')) value = Buffer.from(value.slice(1, -1)).toString('base64');
      current.push({ name, value });
    }
  }
  return map;
}

/**
 * All extended attributes under `root`, keyed by the path's bytes as a
 * UTF-8 string (names that are not UTF-8 lose their attributes). Null when the
 * tools are not installed.
 */
export async function readXattrs(root: string): Promise<XattrMap | null> {
  return await new Promise((resolve) => {
    execFile(
      'getfattr',
      ['--absolute-names', '-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--', root],
      { maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(null);
        // getfattr exits non-zero when some file could not be read; keep what it printed.
        resolve(parseGetfattr(stdout ?? ''));
      },
    );
  });
}

/** Sets attributes on one path (not following symlinks); resolves to an error message or null. */
export async function writeXattrs(path: Buffer, attrs: readonly Xattr[]): Promise<string | null> {
  for (const a of attrs) {
    const problem = await new Promise<string | null>((resolve) => {
      const child = spawn('setfattr', ['-h', '-n', a.name, '-v', `0s${a.value}`, '--', path.toString('utf8')], {
        stdio: ['ignore', 'ignore', 'pipe'],
        argv0: 'setfattr',
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', (e) => resolve(e.message));
      child.on('close', (code) => resolve(code === 0 ? null : stderr.trim() || `setfattr exited with ${code}`));
    });
    if (problem) return problem;
  }
  return null;
}
