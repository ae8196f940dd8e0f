/**
 * Pinned server certificates, like SSH's known_hosts: `known-servers.json`
 * in the client's config directory ($STOWAGE_CONFIG_DIR, else
 * $XDG_CONFIG_HOME/stowage, else ~/.config/stowage), mapping `host:port` to
 * the certificate fingerprint seen when the user first gave it (at `init`
 * with --server-fingerprint). Later runs need no flag, and a server that
 * presents another certificate is refused.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';

const fileSchema = z.object({ version: z.literal(1), servers: z.record(z.string(), z.string()) });

export function configDir(env: NodeJS.ProcessEnv): string {
  if (env['STOWAGE_CONFIG_DIR']) return env['STOWAGE_CONFIG_DIR'];
  const xdg = env['XDG_CONFIG_HOME'];
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.config'), 'stowage');
}

function fileOf(env: NodeJS.ProcessEnv): string {
  return path.join(configDir(env), 'known-servers.json');
}

async function read(env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  try {
    const parsed = fileSchema.safeParse(JSON.parse(await fs.readFile(fileOf(env), 'utf8')));
    return parsed.success ? parsed.data.servers : {};
  } catch {
    return {};
  }
}

export async function pinnedFingerprint(env: NodeJS.ProcessEnv, hostPort: string): Promise<string | null> {
  return (await read(env))[hostPort] ?? null;
}

export async function pinFingerprint(env: NodeJS.ProcessEnv, hostPort: string, fingerprint: string): Promise<void> {
  const servers = { ...(await read(env)), [hostPort]: fingerprint };
  const file = fileOf(env);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  await fs.writeFile(tmp, JSON.stringify({ version: 1, servers }, null, 2) + '\n', { mode: 0o600 });
  await fs.rename(tmp, file);
}
