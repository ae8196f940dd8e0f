/**
 * `stowage daemon [--config FILE]`: runs the configured jobs on their cron
 * schedules (croner) with random jitter, one run at a time (all jobs share
 * one repository), each backup retried while the repository is unreachable
 * until its deadline, then notified, recorded for `stowage status`, and
 * counted in the metrics. One JSON line per event on stdout. SIGTERM stops
 * the current run cleanly (the child removes its lock and restarts the
 * containers it stopped) and exits 0.
 */
import { Cron } from 'croner';
import * as path from 'node:path';
import { DEFAULT_CONFIG, type JobConfig, loadConfigFile } from '../../core/config-file.ts';
import { Metrics } from '../../core/metrics.ts';
import { Semaphore } from '../../core/semaphore.ts';
import { parseDuration } from '../../core/units.ts';
import type { Context } from '../context.ts';
import { JobRunner, recordStatus } from '../job-runner.ts';
import { type RunReport, notify } from '../notifier.ts';
import { setStopHandler } from '../stop.ts';
import { parseListen } from './serve.ts';

export interface DaemonOptions {
  readonly config?: string;
}

export function stateDirOf(config: { state_dir?: string | undefined }, env: NodeJS.ProcessEnv): string {
  return config.state_dir ?? env['STOWAGE_STATE_DIR'] ?? '/var/lib/stowage-daemon';
}

export async function run(ctx: Context, opts: DaemonOptions): Promise<number> {
  const file = path.resolve(opts.config ?? ctx.env['STOWAGE_CONFIG'] ?? DEFAULT_CONFIG);
  const config = loadConfigFile(file);
  const stateDir = stateDirOf(config, ctx.env);
  const log = (event: Record<string, unknown>): void => {
    process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...event }) + '\n');
  };
  const metrics = new Metrics();
  const listener = config.metrics ? await metrics.listen(parseListen(config.metrics.listen).host, parseListen(config.metrics.listen).port) : null;
  if (listener) log({ event: 'metrics', listen: config.metrics!.listen, port: listener.port });
  const runner = new JobRunner(config, ctx.env, log);
  const oneAtATime = new Semaphore(1);
  const timers = new Set<NodeJS.Timeout>();
  let stopping = false;

  const account = (r: RunReport): void => {
    const labels = { job: r.job, kind: r.kind };
    const finished = Date.parse(r.finished) / 1000;
    metrics.set('stowage_job_last_run_timestamp_seconds', 'When the job last finished a run.', finished, labels);
    metrics.set('stowage_job_last_duration_seconds', 'How long the last run took.', finished - Date.parse(r.started) / 1000, labels);
    metrics.set('stowage_job_last_result', 'Result of the last run: 0 success, 1 partial, 2 failure.', r.result === 'success' ? 0 : r.result === 'partial' ? 1 : 2, labels);
    metrics.inc('stowage_job_runs_total', 'Runs by result.', 1, { ...labels, result: r.result });
    if (r.result !== 'failure') metrics.set('stowage_job_last_success_timestamp_seconds', 'When the job last succeeded (or finished partial).', finished, labels);
    else metrics.inc('stowage_job_errors_total', 'Failed runs.', 1, labels);
    const added = Number((r.stats as { bytesUploaded?: number } | undefined)?.bytesUploaded ?? 0);
    if (added > 0) metrics.inc('stowage_job_bytes_added_total', 'Bytes stored in the repository by the job (after compression and encryption).', added, labels);
  };

  const execute = async (job: JobConfig, kind: 'backup' | 'check', scheduled: Date): Promise<void> => {
    await oneAtATime.run(async () => {
      if (stopping) return;
      log({ event: 'start', job: job.name, kind, scheduled: scheduled.toISOString() });
      const report = kind === 'backup' ? await runner.backup(job, scheduled) : await runner.check(job, scheduled);
      log({ event: 'finish', ...report });
      account(report);
      recordStatus(stateDir, report);
      await notify(config.notifications, report, log);
    });
  };

  const schedule = (job: JobConfig, kind: 'backup' | 'check', pattern: string): void => {
    const cron = new Cron(pattern, { paused: true });
    const next = (): void => {
      if (stopping) return;
      const at = cron.nextRun();
      if (!at) return;
      const jitter = job.jitter ? Math.random() * parseDuration(job.jitter) : 0;
      const delay = Math.max(0, at.getTime() - Date.now() + jitter);
      log({ event: 'scheduled', job: job.name, kind, at: new Date(Date.now() + delay).toISOString() });
      const timer = setTimeout(() => {
        timers.delete(timer);
        void execute(job, kind, at).finally(next);
      }, delay);
      timers.add(timer);
    };
    next();
  };

  for (const job of config.jobs) {
    schedule(job, 'backup', job.schedule);
    if (job.check) schedule(job, 'check', job.check.schedule);
  }
  log({ event: 'started', config: file, jobs: config.jobs.map((j) => j.name) });
  return await new Promise<number>((resolve) => {
    setStopHandler(async (signal) => {
      stopping = true;
      for (const t of timers) clearTimeout(t);
      log({ event: 'stopping', signal });
      runner.stop();
      // Wait for the run in progress to end cleanly.
      await oneAtATime.run(async () => {});
      await listener?.close();
      log({ event: 'stopped' });
      resolve(0);
      return 0;
    });
  });
}
