/** SIGTERM to the daemon while a container is stopped for its backup: it comes back, and the repository stays valid. */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STOWAGE, stowage, testEnv } from '../helpers/cli.ts';
import { importBusybox, requireDocker, startDaemon } from '../helpers/docker.ts';
import { tempDir } from '../helpers/tmp.ts';

test('SIGTERM to the daemon mid-backup restarts the stopped container, exits 0 and leaves a valid repository', async (t) => {
  if (!requireDocker(t)) return;
  const d = await startDaemon(t);
  const work = await tempDir(t);
  await importBusybox(d, 'test/app:1', ['CMD ["sleep","3600"]']);
  await d.docker('run', '-d', '--name', 'db', '-v', 'dbdata:/data', '--label', 'stowage.stop=true', 'test/app:1', 'sh', '-c', 'dd if=/dev/urandom of=/data/big bs=1M count=400 2>/dev/null; trap "exit 0" TERM; while :; do sleep 1; done');
  for (let i = 0; i < 300 && !(await d.docker('exec', 'db', 'sh', '-c', 'test $(stat -c %s /data/big) -ge 419430400 && echo ok').catch(() => '')).includes('ok'); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const repo = path.join(work, 'repo');
  const passFile = path.join(work, 'pass');
  fs.writeFileSync(passFile, 'test passphrase\n', { mode: 0o600 });
  const env = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  delete env['STOWAGE_PASSWORD'];
  t.is((await stowage(['-r', repo, '--password-file', passFile, 'init'], env)).code, 0);
  const config = path.join(work, 'config.yaml');
  fs.writeFileSync(config, `repository: ${repo}\npassword_file: ${passFile}\ndocker_host: ${d.host}\nstate_dir: ${work}/state\njobs:\n  - name: containers\n    schedule: "*/2 * * * * *"\n    containers: all\n    volume_mode: api\n`);
  const daemon = spawn(STOWAGE, ['daemon', '--config', config], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => daemon.on('close', r));
  t.teardown(() => daemon.kill('SIGKILL'));
  // Wait until the backup has stopped db, then stop the daemon.
  const deadline = Date.now() + 60_000;
  while ((await d.docker('inspect', '-f', '{{.State.Running}}', 'db')).trim() === 'true') {
    if (Date.now() > deadline) return t.fail('the backup never stopped db');
    await new Promise((r) => setTimeout(r, 50));
  }
  daemon.kill('SIGTERM');
  t.is(await exited, 0);
  t.is((await d.docker('inspect', '-f', '{{.State.Running}}', 'db')).trim(), 'true', 'db runs again');
  t.deepEqual(fs.readdirSync(path.join(repo, 'locks')), [], 'no lock is left');
  const check = await stowage(['-r', repo, '--password-file', passFile, 'check', '--read-data'], env);
  t.is(check.code, 0, check.stdout + check.stderr);
});
