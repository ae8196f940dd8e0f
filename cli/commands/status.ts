/**
 * `stowage status [--config FILE] [--max-age DURATION]`: the last run of
 * each job (from the daemon's state), and a non-zero exit (19) when a job's
 * last success is older than --max-age, for external monitoring.
 */
import * as path from 'node:path';
import { DEFAULT_CONFIG, loadConfigFile } from '../../core/config-file.ts';
import { parseDuration } from '../../core/units.ts';
import type { Context } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
import { readStatus } from '../job-runner.ts';
import { stateDirOf } from './daemon.ts';

export async function run(ctx: Context, opts: { config?: string; maxAge?: string }): Promise<number> {
  const config = loadConfigFile(path.resolve(opts.config ?? ctx.env['STOWAGE_CONFIG'] ?? DEFAULT_CONFIG));
  const status = readStatus(stateDirOf(config, ctx.env));
  const maxAgeMs = opts.maxAge ? parseDuration(opts.maxAge) : null;
  const now = Date.now();
  const rows = config.jobs.map((j) => {
    const s = status[j.name];
    const ageMs = s?.lastSuccess ? now - Date.parse(s.lastSuccess) : null;
    return { job: j.name, lastResult: s?.lastRun?.result ?? null, lastRun: s?.lastRun?.finished ?? null, lastSuccess: s?.lastSuccess ?? null, message: s?.lastRun?.message ?? null, stale: maxAgeMs !== null && (ageMs === null || ageMs > maxAgeMs) };
  });
  ctx.out.result({ jobs: rows }, () =>
    rows.map((r) => `${r.job}: ${r.lastResult ?? 'never run'}${r.lastRun ? ` at ${r.lastRun}` : ''}; last success ${r.lastSuccess ?? 'never'}${r.stale ? ' (STALE)' : ''}${r.message ? `\n  ${r.message}` : ''}`).join('\n'),
  );
  return rows.some((r) => r.stale) ? EXIT.STALE : EXIT.OK;
}
