/**
 * Where a passphrase comes from. Never from argv, where other users of the
 * host can read it: the environment (STOWAGE_PASSWORD), a file, a command
 * (a secret manager), or a prompt on a terminal.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { NoPasswordError, UsageError } from '../core/errors.ts';

export interface PasswordSource {
  readonly passwordFile?: string;
  readonly passwordCommand?: string;
}

export async function readPassword(src: PasswordSource, env: NodeJS.ProcessEnv, prompt = 'repository passphrase: '): Promise<string> {
  const file = src.passwordFile ?? env['STOWAGE_PASSWORD_FILE'];
  const command = src.passwordCommand ?? env['STOWAGE_PASSWORD_COMMAND'];
  if (file) return firstLine(await readFile(file, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`cannot read password file ${file}: ${e.message}`))));
  if (command) return firstLine(await runCommand(command));
  const fromEnv = env['STOWAGE_PASSWORD'];
  if (fromEnv !== undefined) return fromEnv;
  if (process.stdin.isTTY && process.stderr.isTTY) return await promptHidden(prompt);
  throw new NoPasswordError(
    'no passphrase: set STOWAGE_PASSWORD, or pass --password-file FILE or --password-command CMD (or run on a terminal to be asked)',
  );
}

/** A file written by an editor ends with a newline that is not part of the passphrase. */
function firstLine(s: string): string {
  const line = s.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new UsageError('the passphrase source gave an empty passphrase');
  return line;
}

async function runCommand(command: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { encoding: 'utf8', timeout: 60_000 }, (err, stdout) => {
      if (err) reject(new UsageError(`password command failed: ${err.message.split('\n')[0]}`));
      else resolve(stdout);
    });
  });
}

async function promptHidden(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  return await new Promise((resolve, reject) => {
    let value = '';
    const onData = (buf: Buffer): void => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          finish();
          reject(new UsageError('cancelled'));
          return;
        }
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const finish = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

/** Asks twice on a terminal (for init and key add); from other sources once. */
export async function readNewPassword(src: PasswordSource, env: NodeJS.ProcessEnv, newEnvName = 'STOWAGE_NEW_PASSWORD'): Promise<string> {
  const fromEnv = env[newEnvName];
  if (fromEnv !== undefined) return fromEnv;
  if (src.passwordFile || src.passwordCommand || env['STOWAGE_PASSWORD'] !== undefined || !process.stdin.isTTY) return await readPassword(src, env);
  const a = await promptHidden('new passphrase: ');
  const b = await promptHidden('repeat it: ');
  if (a !== b) throw new UsageError('the passphrases do not match');
  if (a.length === 0) throw new UsageError('an empty passphrase is not allowed');
  return a;
}
