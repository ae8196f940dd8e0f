/** Runs the real `stowage` executable, as a user would. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { PROJECT_ROOT } from './dataset.ts';

/** The installed command: a shell launcher that runs cli/stowage.ts on Node. */
export const STOWAGE = path.join(PROJECT_ROOT, 'cli/stowage');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function testEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // The launcher runs `node` from PATH; make it the Node running the tests.
  return { ...process.env, STOWAGE_NODE: process.execPath, STOWAGE_KDF: 'insecure-test', STOWAGE_PASSWORD: 'test passphrase', ...extra };
}

export async function stowage(args: string[], env: NodeJS.ProcessEnv = testEnv(), input?: string): Promise<CliResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(STOWAGE, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}
