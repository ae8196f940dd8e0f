/**
 * `stowage copy --to LOCATION [SNAPSHOT...]`: copies snapshots (default: all)
 * from the repository of -r to another one. The target is opened with the
 * --to-* options, or STOWAGE_TO_PASSWORD, STOWAGE_TO_TOKEN and
 * STOWAGE_TO_SERVER_FINGERPRINT.
 */
import { copySnapshots } from '../../core/copy.ts';
import { UsageError } from '../../core/errors.ts';
import { shortId } from '../../core/snapshot.ts';
import { type Context, type GlobalOptions, makeContext, openRepository } from '../context.ts';
import { formatBytes } from '../output.ts';

export interface CopyOptions {
  readonly to?: string;
  readonly toPasswordFile?: string;
  readonly toPasswordCommand?: string;
  readonly toTokenFile?: string;
  readonly toServerFingerprint?: string;
  readonly toCaFile?: string;
  readonly toClientCert?: string;
  readonly toClientKey?: string;
}

function targetContext(ctx: Context, o: CopyOptions): Context {
  if (!o.to) throw new UsageError('copy needs --to LOCATION (the target repository)');
  const global: GlobalOptions = {
    repo: o.to,
    ...(o.toPasswordFile ? { passwordFile: o.toPasswordFile } : {}),
    ...(o.toPasswordCommand ? { passwordCommand: o.toPasswordCommand } : {}),
    ...(o.toTokenFile ? { tokenFile: o.toTokenFile } : {}),
    ...(o.toServerFingerprint ? { serverFingerprint: o.toServerFingerprint } : {}),
    ...(o.toCaFile ? { caFile: o.toCaFile } : {}),
    ...(o.toClientCert ? { clientCert: o.toClientCert } : {}),
    ...(o.toClientKey ? { clientKey: o.toClientKey } : {}),
    ...(ctx.global.cacheDir ? { cacheDir: ctx.global.cacheDir } : {}),
    json: ctx.global.json ?? false,
  };
  // The target's secrets come from their own variables; the source's never leak to it.
  const env: NodeJS.ProcessEnv = { ...ctx.env };
  for (const v of ['STOWAGE_PASSWORD', 'STOWAGE_PASSWORD_FILE', 'STOWAGE_PASSWORD_COMMAND', 'STOWAGE_TOKEN', 'STOWAGE_TOKEN_FILE', 'STOWAGE_SERVER_FINGERPRINT', 'STOWAGE_CLIENT_CERT', 'STOWAGE_CLIENT_KEY']) {
    delete env[v];
    const to = ctx.env[v.replace('STOWAGE_', 'STOWAGE_TO_')];
    if (to !== undefined) env[v] = to;
  }
  return makeContext(global, env);
}

export async function run(ctx: Context, refs: string[], opts: CopyOptions): Promise<number> {
  const target = targetContext(ctx, opts);
  const src = await openRepository(ctx);
  try {
    const dst = await openRepository(target);
    const progress = ctx.out.progress('copy');
    try {
      const r = await copySnapshots(src, dst, refs, progress);
      progress.stop();
      ctx.out.result(r, () =>
        [
          ...r.copied.map((c) => `copied ${shortId(c.from)} → ${shortId(c.to)}`),
          ...(r.skipped.length ? [`already in the target: ${r.skipped.map(shortId).join(', ')}`] : []),
          `uploaded ${r.blobsUploaded} blobs, ${formatBytes(r.bytesUploaded)}`,
        ].join('\n'),
      );
      return 0;
    } finally {
      progress.stop();
      await dst.close();
    }
  } finally {
    await src.close();
  }
}
