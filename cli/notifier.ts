/**
 * Tells people how a job went: a JSON POST to a webhook and/or a command
 * that gets the same JSON on stdin (and STOWAGE_RESULT in its environment).
 * Failures always notify, whatever `on` says.
 */
import { spawn } from 'node:child_process';
import { request } from 'undici';

export type RunResult = 'success' | 'partial' | 'failure';

export interface RunReport {
  readonly job: string;
  readonly kind: 'backup' | 'check';
  readonly result: RunResult;
  readonly message: string;
  readonly started: string;
  readonly finished: string;
  readonly attempts: number;
  readonly snapshot?: string;
  readonly stats?: Record<string, unknown>;
}

export interface NotifyConfig {
  readonly webhook?: string;
  readonly command?: string;
  readonly on?: readonly RunResult[];
}

export async function notify(cfg: NotifyConfig | undefined, report: RunReport, log: (event: Record<string, unknown>) => void): Promise<void> {
  if (!cfg) return;
  const wanted = report.result === 'failure' || (cfg.on ?? ['failure', 'partial']).includes(report.result);
  if (!wanted) return;
  const body = JSON.stringify(report);
  if (cfg.webhook) {
    try {
      const res = await request(cfg.webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body, headersTimeout: 15_000, bodyTimeout: 15_000 });
      await res.body.dump();
      log({ event: 'notified', via: 'webhook', job: report.job, status: res.statusCode });
    } catch (e) {
      log({ event: 'notify-failed', via: 'webhook', job: report.job, error: (e as Error).message });
    }
  }
  if (cfg.command) {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn('sh', ['-c', cfg.command!], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, STOWAGE_RESULT: report.result, STOWAGE_JOB: report.job } });
      child.on('error', () => resolve(null));
      child.on('close', resolve);
      child.stdin.end(body);
    });
    log({ event: code === 0 ? 'notified' : 'notify-failed', via: 'command', job: report.job, exitCode: code });
  }
}
