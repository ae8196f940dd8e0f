/**
 * One run of a configured job, as the daemon does it: the `stowage` command
 * as a child process (a fresh process per run: its memory is returned, and
 * a crash cannot take the daemon down), retried with backoff while the
 * repository is unreachable (exit 14) until the job's deadline, then
 * forget/prune when configured. Returns what happened, for the log, the
 * notifications, the metrics and `stowage status`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConfigFile, type JobConfig, accessArgs, repositoryArgs } from '../core/config-file.ts';
import { launcherUrl } from '../core/program-files.ts';
import { parseDuration } from '../core/units.ts';
import { EXIT } from './exit-codes.ts';
import type { RunReport, RunResult } from './notifier.ts';

const LAUNCHER = fileURLToPath(launcherUrl());
const DEFAULT_RETRY_FOR = '6h';

export interface ChildRun {
  readonly code: number | null;
  readonly summary: Record<string, unknown> | null;
  readonly error: string | null;
}

export class JobRunner {
  private readonly config: ConfigFile;
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: (event: Record<string, unknown>) => void;
  private current: ChildProcess | null = null;
  private stopping = false;

  constructor(config: ConfigFile, env: NodeJS.ProcessEnv, log: (event: Record<string, unknown>) => void) {
    this.config = config;
    this.env = env;
    this.log = log;
  }

  /** Asks the running child to stop cleanly (it removes its lock and restarts stopped containers); no new attempt starts. */
  stop(): void {
    this.stopping = true;
    this.current?.kill('SIGTERM');
  }

  private run(args: string[], retrySeconds: number): Promise<ChildRun> {
    return new Promise((resolve) => {
      const child = spawn(LAUNCHER, [...repositoryArgs(this.config), '--json', ...args], {
        env: {
          ...this.env,
          STOWAGE_NODE: this.env['STOWAGE_NODE'] ?? process.execPath,
          ...(this.config.docker_host ? { DOCKER_HOST: this.config.docker_host } : {}),
          STOWAGE_RETRY_SECONDS: String(Math.max(1, Math.floor(retrySeconds))),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.current = child;
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => {
        this.current = null;
        const lastJson = (text: string, type: string): Record<string, unknown> | null => {
          for (const line of text.trim().split('\n').reverse()) {
            try {
              const v = JSON.parse(line) as Record<string, unknown>;
              if (v['type'] === type) return v;
            } catch {
              // not a JSON line
            }
          }
          return null;
        };
        const errorLine = lastJson(err, 'error');
        resolve({ code, summary: lastJson(out, 'summary'), error: (errorLine?.['message'] as string | undefined) ?? (code === 0 || code === 3 ? null : err.trim().split('\n').at(-1) ?? `exit ${code}`) });
      });
    });
  }

  private backupArgs(job: JobConfig): string[] {
    if (job.copy_to) return copyArgs(job.copy_to);
    const a = ['backup'];
    if (job.paths?.length) a.push(...job.paths);
    if (job.containers) a.push('--containers', ...(job.containers === 'all' ? ['all'] : job.containers));
    for (const l of job.labels ?? []) a.push('--label', l);
    if (job.compose_project) a.push('--compose-project', job.compose_project);
    if (job.volume_mode) a.push('--volume-mode', job.volume_mode);
    if (job.images) a.push('--images');
    for (const e of job.exclude ?? []) a.push('--exclude', e);
    for (const t of job.tags ?? []) a.push('--tag', t);
    return a;
  }

  /** Runs `args` until it stops failing for an unreachable repository, or the deadline passes. */
  private async withRetries(job: JobConfig, args: string[], deadline: number): Promise<{ run: ChildRun; attempts: number }> {
    for (let attempt = 1; ; attempt++) {
      const run = await this.run(args, (deadline - Date.now()) / 1000);
      if (run.code !== EXIT.BACKEND || this.stopping || Date.now() >= deadline) return { run, attempts: attempt };
      const wait = Math.min(Math.min(30_000, parseDuration(job.retry_for ?? DEFAULT_RETRY_FOR) / 20) * 2 ** (attempt - 1), 10 * 60_000, deadline - Date.now());
      this.log({ event: 'retry', job: job.name, attempt, waitMs: Math.round(wait), error: run.error });
      await new Promise((r) => setTimeout(r, wait));
      if (this.stopping) return { run, attempts: attempt };
    }
  }

  async backup(job: JobConfig, scheduled: Date): Promise<RunReport> {
    const started = new Date();
    const deadline = scheduled.getTime() + parseDuration(job.retry_for ?? DEFAULT_RETRY_FOR);
    const { run, attempts } = await this.withRetries(job, this.backupArgs(job), deadline);
    let result: RunResult = run.code === EXIT.OK ? 'success' : run.code === EXIT.PARTIAL ? 'partial' : 'failure';
    let message =
      result === 'failure'
        ? run.code === EXIT.BACKEND
          ? `the repository was unreachable until the deadline (${job.retry_for ?? DEFAULT_RETRY_FOR} after ${scheduled.toISOString()}): ${run.error}`
          : (run.error ?? `exit ${run.code}`)
        : result === 'partial'
          ? 'the snapshot is partial: some entries could not be read (see errors)'
          : job.copy_to
            ? `copy to ${job.copy_to.repository} completed`
            : 'backup completed';
    const summary = run.summary ?? {};
    if (result !== 'failure' && job.forget && !this.stopping) {
      const f = await this.withRetries(job, forgetArgs(job), deadline);
      if (f.run.code !== EXIT.OK) {
        result = 'failure';
        message = `backup completed, but forget${job.forget.prune ? '/prune' : ''} failed: ${f.run.error}`;
      } else message += job.forget.prune ? '; forget and prune done' : '; forget done';
    }
    return {
      job: job.name,
      kind: 'backup',
      result,
      message,
      started: started.toISOString(),
      finished: new Date().toISOString(),
      attempts,
      ...(typeof summary['snapshot'] === 'string' ? { snapshot: summary['snapshot'] } : {}),
      ...(summary['stats'] ? { stats: summary['stats'] as Record<string, unknown> } : {}),
    };
  }

  async check(job: JobConfig, scheduled: Date): Promise<RunReport> {
    const started = new Date();
    const deadline = scheduled.getTime() + parseDuration(job.retry_for ?? DEFAULT_RETRY_FOR);
    const { run, attempts } = await this.withRetries(job, ['check', '--read-data-subset', job.check!.subset], deadline);
    const problems = (run.summary?.['problems'] as unknown[] | undefined)?.length ?? 0;
    return {
      job: job.name,
      kind: 'check',
      result: run.code === EXIT.OK ? 'success' : 'failure',
      message: run.code === EXIT.OK ? 'check passed' : run.code === EXIT.INTEGRITY ? `check found ${problems} problem(s)` : (run.error ?? `exit ${run.code}`),
      started: started.toISOString(),
      finished: new Date().toISOString(),
      attempts,
    };
  }
}

function copyArgs(c: NonNullable<JobConfig['copy_to']>): string[] {
  return ['copy', ...accessArgs(c, 'to-')];
}

function forgetArgs(job: JobConfig): string[] {
  const f = job.forget!;
  const a = ['forget'];
  const n = (flag: string, v: number | undefined): void => {
    if (v !== undefined) a.push(flag, String(v));
  };
  n('--keep-last', f.keep_last);
  n('--keep-hourly', f.keep_hourly);
  n('--keep-daily', f.keep_daily);
  n('--keep-weekly', f.keep_weekly);
  n('--keep-monthly', f.keep_monthly);
  n('--keep-yearly', f.keep_yearly);
  if (f.keep_within) a.push('--keep-within', f.keep_within);
  for (const t of f.keep_tag ?? []) a.push('--keep-tag', t);
  if (f.prune) a.push('--prune');
  if (f.max_unused) a.push('--max-unused', f.max_unused);
  return a;
}

/** The daemon's record of each job's last run and last success, for `stowage status`. */
export interface JobStatus {
  lastRun?: RunReport;
  lastSuccess?: string;
}

export function readStatus(dir: string): Record<string, JobStatus> {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'status.json'), 'utf8')) as Record<string, JobStatus>;
  } catch {
    return {};
  }
}

export function recordStatus(dir: string, report: RunReport): void {
  const all = readStatus(dir);
  const key = report.kind === 'check' ? `${report.job}:check` : report.job;
  all[key] = { lastRun: report, ...(report.result !== 'failure' ? { lastSuccess: report.finished } : all[key]?.lastSuccess ? { lastSuccess: all[key].lastSuccess } : {}) };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, 'status.json.tmp');
  fs.writeFileSync(tmp, JSON.stringify(all, null, 2), { mode: 0o600 });
  fs.renameSync(tmp, path.join(dir, 'status.json'));
}
