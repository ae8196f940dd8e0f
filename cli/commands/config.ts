/**
 * `stowage config check [--config FILE]`: validates the config file (every
 * error names the line, the key and the fix), checks that the repository can
 * be reached and opened with it, and prints the effective config (secrets are
 * only ever references, and a password command is not shown).
 */
import * as path from 'node:path';
import { DEFAULT_CONFIG, describeConfig, loadConfigFile } from '../../core/config-file.ts';
import { ConfigError, isStowageError } from '../../core/errors.ts';
import { type Context, makeContext, openRepository } from '../context.ts';
import { stringify } from 'yaml';

export async function run(ctx: Context, action: string, opts: { config?: string; offline?: boolean }): Promise<number> {
  if (action !== 'check') throw new ConfigError('config takes: check');
  const file = path.resolve(opts.config ?? ctx.env['STOWAGE_CONFIG'] ?? DEFAULT_CONFIG);
  const config = loadConfigFile(file);
  if (!opts.offline) {
    const repoCtx = makeContext(
      {
        repo: config.repository,
        ...(config.password_file ? { passwordFile: config.password_file } : {}),
        ...(config.password_command ? { passwordCommand: config.password_command } : {}),
        ...(config.token_file ? { tokenFile: config.token_file } : {}),
        ...(config.server_fingerprint ? { serverFingerprint: config.server_fingerprint } : {}),
        ...(config.ca_file ? { caFile: config.ca_file } : {}),
        ...(config.client_cert ? { clientCert: config.client_cert } : {}),
        ...(config.client_key ? { clientKey: config.client_key } : {}),
        json: ctx.global.json ?? false,
      },
      { ...ctx.env, STOWAGE_RETRY_SECONDS: '5' },
    );
    try {
      const repo = await openRepository(repoCtx);
      await repo.close();
    } catch (e) {
      if (!isStowageError(e)) throw e;
      throw new ConfigError(`${file}: repository: ${config.repository} cannot be opened with this config: ${e.message}`);
    }
  }
  const effective = describeConfig(config);
  ctx.out.result({ file, valid: true, config: effective }, () => `${file}: valid${opts.offline ? '' : '; the repository opens with it'}\n\n${stringify(effective)}`);
  return 0;
}
