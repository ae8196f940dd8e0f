/**
 * The configuration file (`/etc/stowage/config.yaml`, or --config): the
 * repository, how to reach and open it, the jobs with their schedules,
 * retention and checks, notifications and metrics. Secrets are never in it,
 * only references to the files or commands that hold them. Every error
 * names the file, line, key and what to do (ConfigError, exit 2).
 */
import { Cron } from 'croner';
import { accessSync, constants as fsc, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parseDuration } from './units.ts';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, ".", "_" and "-"');
const duration = z.string().refine((s) => {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}, 'a duration such as 90s, 15m, 6h or 7d');
const schedule = z.string().refine((s) => {
  try {
    new Cron(s, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}, 'a cron expression such as "0 2 * * *" (minute hour day month weekday; a sixth, leading field is seconds)');
const count = z.number().int().positive();

const forgetSchema = z
  .object({
    keep_last: count.optional(),
    keep_hourly: count.optional(),
    keep_daily: count.optional(),
    keep_weekly: count.optional(),
    keep_monthly: count.optional(),
    keep_yearly: count.optional(),
    keep_within: duration.optional(),
    keep_tag: z.array(z.string()).optional(),
    prune: z.boolean().optional(),
    max_unused: z.string().optional(),
  })
  .strict();

/** How a repository is reached and opened (RepositoryAccess): the top level's keys, and a copy job's target's. */
const accessKeys = {
  repository: z.string().min(1),
  server_fingerprint: z.string().optional(),
  ca_file: z.string().optional(),
  token_file: z.string().optional(),
  client_cert: z.string().optional(),
  client_key: z.string().optional(),
  password_file: z.string().optional(),
  password_command: z.string().optional(),
};

const jobSchema = z
  .object({
    name,
    schedule,
    /** Random delay added to each run, so many hosts do not hit one server at once. */
    jitter: duration.optional(),
    paths: z.array(z.string()).optional(),
    containers: z.union([z.literal('all'), z.array(z.string())]).optional(),
    labels: z.array(z.string()).optional(),
    compose_project: z.string().optional(),
    volume_mode: z.enum(['auto', 'api', 'direct']).optional(),
    images: z.boolean().optional(),
    exclude: z.array(z.string()).optional(),
    tags: z.array(z.string()).optional(),
    /** Keep retrying an unreachable repository this long after the scheduled time. */
    retry_for: duration.optional(),
    forget: forgetSchema.optional(),
    check: z.object({ schedule, subset: z.string() }).strict().optional(),
    /** A copy job: every snapshot not yet there goes to this second repository (3-2-1). */
    copy_to: z.object(accessKeys).strict().optional(),
  })
  .strict()
  .refine((j) => !!(j.paths?.length || j.containers || j.labels?.length || j.compose_project || j.copy_to), {
    message: 'a job backs up something (paths, containers, labels or compose_project) or copies (copy_to)',
  })
  .refine((j) => !(j.copy_to && (j.paths?.length || j.containers || j.labels?.length || j.compose_project)), {
    message: 'a job backs up or copies, not both (make two jobs)',
  })
  .refine((j) => !(j.paths?.length && (j.containers || j.labels?.length || j.compose_project)), {
    message: 'a job backs up paths or containers, not both (make two jobs)',
  });

export const configFileSchema = z
  .object({
    ...accessKeys,
    cache_dir: z.string().optional(),
    /** Where the daemon keeps the result of each job's last run (`stowage status` reads it). */
    state_dir: z.string().optional(),
    docker_host: z.string().optional(),
    jobs: z.array(jobSchema).min(1),
    notifications: z
      .object({
        webhook: z.string().url().optional(),
        command: z.string().optional(),
        on: z.array(z.enum(['success', 'partial', 'failure'])).optional(),
      })
      .strict()
      .optional(),
    metrics: z.object({ listen: z.string().regex(/^(\[[^\]]+\]|[^:]+):\d{1,5}$/, 'HOST:PORT') }).strict().optional(),
  })
  .strict();
export type ConfigFile = z.infer<typeof configFileSchema>;
export type JobConfig = ConfigFile['jobs'][number];

/** Keys a secret would be written under: refused with a pointer to the reference that replaces them. */
const INLINE_SECRETS: Record<string, string> = {
  password: 'password_file or password_command',
  passphrase: 'password_file or password_command',
  token: 'token_file',
};

export const DEFAULT_CONFIG = '/etc/stowage/config.yaml';

export function loadConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the config file ${file}: ${(e as Error).message}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  /** file:line:col of a key's value, or with `atKey` of the key itself. */
  const where = (keyPath: readonly (string | number)[], atKey = false): string => {
    let node: { range?: [number, number, number] } | undefined;
    if (atKey && keyPath.length > 0) {
      const parent = (keyPath.length > 1 ? doc.getIn(keyPath.slice(0, -1), true) : doc.contents) as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined;
      node = parent?.items?.find((p) => p.key?.value === keyPath.at(-1))?.key;
    } else if (keyPath.length > 0) node = doc.getIn(keyPath, true) as { range?: [number, number, number] } | undefined;
    const pos = node?.range ? lines.linePos(node.range[0]) : null;
    return pos ? `${file}:${pos.line}:${pos.col}` : file;
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lines.linePos(e.pos[0]);
    throw new ConfigError(`${file}:${pos.line}:${pos.col}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const parsed = configFileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const keyPath = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0]!;
      const hint = INLINE_SECRETS[key] ? `secrets are never written in the config: use ${INLINE_SECRETS[key]}` : `check its spelling (examples/config.yaml shows every key)`;
      throw new ConfigError(`${where([...keyPath, key], true)}: unknown key "${[...keyPath, key].join('.')}": ${hint}`);
    }
    const key = keyPath.join('.') || '(top level)';
    throw new ConfigError(`${where(keyPath)}: ${key}: ${issue.message}`);
  }
  const config = parsed.data;
  const base = path.dirname(path.resolve(file));
  const resolve = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(base, p));
  for (const key of ['password_file', 'token_file', 'ca_file', 'client_cert', 'client_key'] as const) {
    const p = resolve(config[key]);
    if (p === undefined) continue;
    try {
      accessSync(p, fsc.R_OK);
    } catch {
      throw new ConfigError(`${where([key])}: ${key}: ${p} does not exist or cannot be read; create it (mode 0600) or fix the path`);
    }
    config[key] = p;
  }
  if (!config.password_file && !config.password_command) {
    throw new ConfigError(`${file}: password_file or password_command is required: the repository's passphrase is read from one of them`);
  }
  if (config.password_file && config.password_command) throw new ConfigError(`${where(['password_command'])}: give password_file or password_command, not both`);
  const names = new Set<string>();
  for (const [i, j] of config.jobs.entries()) {
    if (names.has(j.name)) throw new ConfigError(`${where(['jobs', i, 'name'])}: jobs.${i}.name: two jobs are named "${j.name}"`);
    names.add(j.name);
  }
  return config;
}

/** The config as `config check` prints it: paths resolved, secrets masked (there are none inline; references shown). */
export function describeConfig(c: ConfigFile): unknown {
  return { ...c, password_command: c.password_command ? '(command set; its output is never shown)' : undefined };
}

/** How a repository is reached and opened, as config keys (the top level, or a copy job's target). */
export interface RepositoryAccess {
  readonly repository: string;
  readonly server_fingerprint?: string | undefined;
  readonly ca_file?: string | undefined;
  readonly token_file?: string | undefined;
  readonly client_cert?: string | undefined;
  readonly client_key?: string | undefined;
  readonly password_file?: string | undefined;
  readonly password_command?: string | undefined;
}

const ACCESS_FLAGS: readonly [keyof RepositoryAccess, string][] = [
  ['server_fingerprint', 'server-fingerprint'],
  ['ca_file', 'ca-file'],
  ['token_file', 'token-file'],
  ['client_cert', 'client-cert'],
  ['client_key', 'client-key'],
  ['password_file', 'password-file'],
  ['password_command', 'password-command'],
];

/** The CLI options for `access`: `-r …` for the repository a command works on, or `--to …` (prefix "to-") for a copy's target. */
export function accessArgs(access: RepositoryAccess, prefix: '' | 'to-'): string[] {
  const args = prefix ? ['--to', access.repository] : ['-r', access.repository];
  for (const [key, flag] of ACCESS_FLAGS) {
    const v = access[key];
    if (v) args.push(`--${prefix}${flag}`, v);
  }
  return args;
}

/** The global CLI arguments a job's run needs to reach and open the repository. */
export function repositoryArgs(c: ConfigFile): string[] {
  return [...accessArgs(c, ''), ...(c.cache_dir ? ['--cache-dir', c.cache_dir] : [])];
}
