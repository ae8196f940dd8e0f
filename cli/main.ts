/**
 * The command line: registers every command with commander, loads a
 * command's module only when it runs, and turns the outcome into an exit
 * status (cli/exit-codes.ts is the only place that decides them).
 */
import { Command, CommanderError } from 'commander';
import { isStowageError } from '../core/errors.ts';
import { runCleanups } from '../core/cleanup.ts';
import { RepositoryLock } from '../core/lock.ts';
import { LocalBackend } from '../core/backends/local.ts';
import { PROGRAM_VERSION } from '../core/version.ts';
import { type Context, type GlobalOptions, makeContext } from './context.ts';
import { EXIT, EXIT_MEANINGS, exitCodeFor } from './exit-codes.ts';
import { stopHandler } from './stop.ts';

type Action = (ctx: Context, ...args: never[]) => Promise<number>;

function exitCodeHelp(): string {
  return (
    '\nExit codes:\n' +
    Object.entries(EXIT_MEANINGS)
      .map(([code, meaning]) => `  ${code.padStart(3)}  ${meaning}`)
      .join('\n') +
    '\n\nEnvironment: STOWAGE_REPOSITORY, STOWAGE_PASSWORD, STOWAGE_PASSWORD_FILE, STOWAGE_PASSWORD_COMMAND,\n' +
    '  STOWAGE_TOKEN (server token), STOWAGE_CACHE_DIR, DOCKER_HOST.\n'
  );
}

export function buildProgram(run: (load: () => Promise<{ run: Action }>, args: unknown[]) => Promise<void>): Command {
  const program = new Command('stowage')
    .description('Encrypted, deduplicating backups of Docker hosts and their containers')
    .version(PROGRAM_VERSION)
    .option('-r, --repo <location>', 'repository: a directory, or https://HOST:PORT/NAME (default: $STOWAGE_REPOSITORY)')
    .option('--password-file <file>', 'read the passphrase from the first line of a file')
    .option('--password-command <cmd>', 'read the passphrase from the output of a shell command')
    .option('--key-hint <id>', 'try this key file first')
    .option('--token-file <file>', 'server token file (default: $STOWAGE_TOKEN)')
    .option('--server-fingerprint <sha256>', "pin the server's certificate by its SHA-256 fingerprint")
    .option('--ca-file <file>', 'trust this CA bundle for the server instead of a pinned fingerprint')
    .option('--client-cert <file>', 'client certificate for a server that requires one (default: $STOWAGE_CLIENT_CERT)')
    .option('--client-key <file>', 'its private key (default: $STOWAGE_CLIENT_KEY)')
    .option('--cache-dir <dir>', 'local cache directory (default: $XDG_CACHE_HOME/stowage)')
    .option('--no-cache', 'do not use the local cache')
    .option('--json', 'print JSON lines for machines instead of text')
    .option('-q, --quiet', 'print only results and errors')
    .addHelpText('after', exitCodeHelp())
    .showHelpAfterError('(run "stowage --help" for usage)')
    .exitOverride();

  const cmd = (name: string, description: string): Command => program.command(name).description(description).exitOverride();

  cmd('init', 'create a new repository')
    .option('--write-only-hosts', 'allow write-only host keys (they can back up but not read old contents)')
    .action((o, c) => run(() => import('./commands/init.ts') as never, [o, c]));

  cmd('backup', 'back up paths, or the containers of a Docker host, into a new snapshot')
    .argument('[path...]', 'files or directories')
    .option('--containers <names...>', 'back up these containers ("all" for every one) with their volumes and specs')
    .option('--label <key=value>', 'back up the containers with this label (repeatable: all must match)', collect, [])
    .option('--compose-project <name>', 'back up the containers of this compose project')
    .option('--images', 'store every image (docker save); images no registry knows (no repo digest) are always stored')
    .option('--volume-mode <mode>', 'read volumes through the Docker API ("api"), from disk ("direct"), or direct when readable ("auto")', 'auto')
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
    .option('--host <name>', 'host name to record (default: this host)')
    .option('--parent <snapshot>', 'compare against this snapshot ("none" to read every file)')
    .option('-e, --exclude <pattern>', 'leave out matching paths (repeatable; glob)', collect, [])
    .option('--exclude-file <file>', 'read exclude patterns from a file (repeatable)', collect, [])
    .action((paths, o, c) => run(() => import('./commands/backup.ts') as never, [paths, o, c]));

  cmd('snapshots', 'list snapshots')
    .option('--host <host>', 'only this host (repeatable)', collect, [])
    .option('--tag <tags>', 'only with these tags (comma means all of them; repeatable means any)', collect, [])
    .option('--path <path>', 'only snapshots of this path (repeatable)', collect, [])
    .option('--source <source>', 'only snapshots of this source: a path, container:NAME or volume:NAME (repeatable)', collect, [])
    .option('--latest <n>', 'only the latest n per host and paths')
    .action((o, c) => run(() => import('./commands/snapshots.ts') as never, [o, c]));

  cmd('ls', 'list the files of a snapshot')
    .argument('<snapshot>', 'ID, unique prefix, or "latest"')
    .argument('[path]', 'a directory or file inside the snapshot')
    .option('-l, --long', 'show mode, owner, size and time')
    .action((s, p, o, c) => run(() => import('./commands/ls.ts') as never, [s, p, o, c]));

  cmd('restore', "restore files, a volume's data, or a whole Docker host's containers from a snapshot")
    .argument('<snapshot>', 'ID, unique prefix, or "latest"')
    .option('-t, --target <dir>', 'directory to restore into')
    .option('--path <path>', 'restore only this file or directory of the snapshot')
    .option('--direct-io', 'write files of 1 MiB or more around the page cache (O_DIRECT): less kernel time, but waits for the disk')
    .option('--volume <name>', "a container snapshot's volume (as --path /volumes/NAME)")
    .option('--into-volume <name>', 'put the data of --volume into this existing volume on DOCKER_HOST')
    .option('--to-host', 'rebuild the containers of a container snapshot on the Docker Engine at DOCKER_HOST')
    .option('--only <names...>', 'with --to-host: only these containers')
    .option('-n, --dry-run', 'with --to-host: print the plan and change nothing')
    .option('--on-conflict <policy>', 'with --to-host: fail, skip or replace objects of the same name', 'fail')
    .option('--map-port <old=new>', 'with --to-host: publish on another host port (repeatable)', collect, [])
    .option('--map-bind <old=new>', 'with --to-host: bind mounts from another host path (repeatable)', collect, [])
    .option('--binds', "with --to-host: also restore bind mounts' data to their (mapped) host paths")
    .option('--health-timeout <duration>', 'with --to-host: how long to wait for a container to be healthy', '120s')
    .action((s, o, c) => run(() => import('./commands/restore.ts') as never, [s, o, c]));

  cmd('cat', 'print a repository object, decrypted')
    .argument('<kind>', 'config, snapshot, index, key, lock, pack, tree or blob')
    .argument('[id]', 'the object ID (or a unique prefix)')
    .action((k, id, _o, c) => run(() => import('./commands/cat.ts') as never, [k, id, c]));

  cmd('key', 'manage the passphrases of a repository')
    .argument('<action>', 'list, add, remove or passwd')
    .argument('[id]', 'key ID for remove')
    .option('--write-only', 'with add: a write-only host key')
    .action((a, id, o, c) => run(() => import('./commands/key.ts') as never, [a, id, o, c]));

  cmd('unlock', 'remove stale locks')
    .option('--remove-all', 'remove all locks, not only stale ones')
    .action((o, c) => run(() => import('./commands/unlock.ts') as never, [o, c]));

  const keepOptions = (c: Command): Command =>
    c
      .option('--keep-last <n>', 'keep the n newest snapshots')
      .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours that have one')
      .option('--keep-daily <n>', 'keep the newest of each of the last n days (UTC)')
      .option('--keep-weekly <n>', 'keep the newest of each of the last n ISO weeks')
      .option('--keep-monthly <n>', 'keep the newest of each of the last n months')
      .option('--keep-yearly <n>', 'keep the newest of each of the last n years')
      .option('--keep-within <duration>', "keep every snapshot this much younger than the group's newest (e.g. 90d)")
      .option('--keep-tag <tag>', 'keep every snapshot with this tag (repeatable)', collect, [])
      .option('--group-by <fields>', 'group by these of host,paths,tags ("" for one group)', 'host,paths');

  keepOptions(cmd('forget', 'remove snapshots by ID or by a retention policy'))
    .argument('[snapshot...]', 'snapshot IDs to remove (instead of a policy)')
    .option('--host <host>', 'only snapshots of this host (repeatable)', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (repeatable)', collect, [])
    .option('--path <path>', 'only snapshots of this path (repeatable)', collect, [])
    .option('-n, --dry-run', 'show what would be kept and why, and remove nothing')
    .option('--prune', 'then prune the data only the removed snapshots used')
    .option('--max-unused <share>', 'with --prune: repack a pack when more than this share is unused', '10%')
    .action((ids, o, c) => run(() => import('./commands/forget.ts') as never, [ids, o, c]));

  cmd('prune', 'delete data that no snapshot references (needs an admin token on a server)')
    .option('--max-unused <share>', 'repack a pack when more than this share of it is unused', '10%')
    .option('-n, --dry-run', 'show what would be deleted and delete nothing')
    .option('--wait <duration>', 'wait this long for running backups to finish (default: refuse at once)')
    .action((o, c) => run(() => import('./commands/prune.ts') as never, [o, c]));

  cmd('check', 'verify the repository: structure, and with --read-data every byte')
    .option('--read-data', 'read, decrypt and verify every pack')
    .option('--read-data-subset <subset>', 'read a share (N%) or a slice (n/m) of the packs')
    .action((o, c) => run(() => import('./commands/check.ts') as never, [o, c]));

  cmd('repair', 'rebuild a damaged part of the repository')
    .argument('<what>', 'index: rebuild the index from the pack headers')
    .action((w, _o, c) => run(() => import('./commands/repair.ts') as never, [w, c]));

  cmd('diff', 'show what changed between two snapshots')
    .argument('<from>', 'snapshot ID, prefix or "latest"')
    .argument('<to>', 'snapshot ID, prefix or "latest"')
    .action((a, b, _o, c) => run(() => import('./commands/diff.ts') as never, [a, b, c]));

  cmd('copy', 'copy snapshots, with everything they reference, to another repository')
    .argument('[snapshot...]', 'snapshots to copy (default: all)')
    .option('--to <location>', 'the target repository')
    .option('--to-password-file <file>', "the target's passphrase (default: $STOWAGE_TO_PASSWORD)")
    .option('--to-password-command <cmd>', "a command printing the target's passphrase")
    .option('--to-token-file <file>', "the target server's token (default: $STOWAGE_TO_TOKEN)")
    .option('--to-server-fingerprint <sha256>', "pin the target server's certificate")
    .option('--to-ca-file <file>', "trust this CA for the target server")
    .option('--to-client-cert <file>', 'client certificate for the target server')
    .option('--to-client-key <file>', 'its key')
    .action((ids, o, c) => run(() => import('./commands/copy.ts') as never, [ids, o, c]));

  cmd('daemon', 'run the jobs of the config file on their schedules')
    .option('--config <file>', 'config file (default: $STOWAGE_CONFIG or /etc/stowage/config.yaml)')
    .action((o, c) => run(() => import('./commands/daemon.ts') as never, [o, c]));

  cmd('config', 'check the config file')
    .argument('<action>', 'check')
    .option('--config <file>', 'config file (default: $STOWAGE_CONFIG or /etc/stowage/config.yaml)')
    .option('--offline', 'do not try to open the repository')
    .action((a, o, c) => run(() => import('./commands/config.ts') as never, [a, o, c]));

  cmd('status', "the last run of each configured job; exit 19 when one is older than --max-age")
    .option('--config <file>', 'config file (default: $STOWAGE_CONFIG or /etc/stowage/config.yaml)')
    .option('--max-age <duration>', 'e.g. 26h')
    .action((o, c) => run(() => import('./commands/status.ts') as never, [o, c]));

  const serve = cmd('serve', 'run the TLS-only backup server (holds no key), or manage its tokens and quotas')
    .option('--data <dir>', 'server data directory (default: $STOWAGE_SERVER_DATA or /var/lib/stowage)')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8443')
    .option('--cert <file>', 'TLS certificate (PEM); default: a self-signed one made on first start')
    .option('--key <file>', 'TLS private key (PEM) for --cert')
    .option('--max-object-size <size>', 'largest object accepted', '64M')
    .option('--max-concurrent <n>', 'requests handled at once', '64')
    .option('--ban-after <n>', 'failed authentications from one address before a ban', '10')
    .option('--ban-for <duration>', 'how long a ban lasts', '15m')
    .option('--client-certs <mode>', 'mutual TLS with certificates from "serve client add": off, optional or required', 'off')
    .option('--store <url>', 'keep objects in S3-compatible storage: s3://BUCKET[/PREFIX] (endpoint and keys from S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (off by default)')
    .action((o, c) => run(() => import('./commands/serve.ts') as never, [o, c]));
  const token = serve.command('token').description('manage access tokens (the server may be running)');
  token
    .command('add')
    .description('create a token for one repository; it is printed once and stored only as a hash')
    .addHelpText('after', '\n--repo NAME (required) names the repository the token is for.')
    .requiredOption('--role <role>', 'append (back up: create, read, list) or admin (may also delete)')
    .option('--note <text>', 'a note to recognise the token by')
    .action((o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.tokenAdd })) as never, [o, c]));
  token
    .command('list')
    .description('list tokens (ids, repositories, roles; never the secrets)')
    .action((o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.tokenList })) as never, [o, c]));
  token
    .command('revoke')
    .description('revoke a token by its id')
    .argument('<id>', 'token id (the hex after "stw_")')
    .action((id, o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.tokenRevoke })) as never, [id, o, c]));
  const client = serve.command('client').description('client certificates for mutual TLS (the server may be running)');
  client
    .command('add')
    .description("issue a host's certificate from the server's CA, for one repository and role")
    .argument('<host>', 'the host the certificate is for')
    .requiredOption('--role <role>', 'append or admin')
    .option('--out <dir>', 'where to write HOST.crt and HOST.key', '.')
    .addHelpText('after', '\n--repo NAME (required) names the repository.')
    .action((h, o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.clientAdd })) as never, [h, o, c]));
  client
    .command('list')
    .description('list issued client certificates')
    .action((o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.clientList })) as never, [o, c]));
  client
    .command('revoke')
    .description('revoke the certificates of a host (or one, by serial)')
    .argument('<host-or-serial>', 'host name or serial number')
    .action((h, o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.clientRevoke })) as never, [h, o, c]));
  serve
    .command('scrub')
    .description('re-hash every stored object against its name (no key needed); exits 13 if any is damaged')
    .addHelpText('after', '\n--repo NAME limits it to one repository.')
    .action((o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.scrub })) as never, [o, c]));
  serve
    .command('quota')
    .description('set or clear the quota of a repository')
    .addHelpText('after', '\n--repo NAME (required) names the repository.')
    .argument('<size>', 'e.g. 500G, or "none"')
    .action((size, o, c) => run(() => import('./commands/serve-admin.ts').then((m) => ({ run: m.quota })) as never, [size, o, c]));

  return program;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let exitCode: number = EXIT.OK;
  let ctx: Context | null = null;
  const program = buildProgram(async (load, args) => {
    const command = args.at(-1) as Command;
    const global = command.optsWithGlobals() as GlobalOptions;
    ctx = makeContext(global, env);
    const mod = await load();
    exitCode = await (mod.run as (ctx: Context, ...a: unknown[]) => Promise<number>)(ctx, ...args.slice(0, -1));
  });
  installSignalHandlers();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    const out = (ctx as Context | null)?.out ?? makeContext({ json: argv.includes('--json') }, env).out;
    if (isStowageError(e)) {
      const code = exitCodeFor(e.code);
      out.error(e.code, e.message, code);
      return code;
    }
    out.error('ERR_BUG', `unexpected error (this is a bug, please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, EXIT.FAILURE);
    return EXIT.FAILURE;
  }
}

let handlersInstalled = false;

/**
 * On SIGINT or SIGTERM: remove our locks and leave with 130. Everything an
 * interrupted backup wrote is a complete object (writes are atomic), and
 * nothing refers to it until a snapshot is saved, so the repository stays
 * valid and the next run adopts what landed.
 */
function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(EXIT.INTERRUPTED);
    stopping = true;
    process.stderr.write(`\nstowage: ${signal}: stopping; the repository stays valid and the next run resumes\n`);
    const graceful = stopHandler();
    if (graceful) {
      void graceful(signal).then(
        (code) => process.exit(code),
        () => process.exit(EXIT.INTERRUPTED),
      );
      return;
    }
    void runCleanups()
      .then(() => RepositoryLock.releaseAll())
      .finally(() => {
      LocalBackend.abandonWrites();
      process.exit(EXIT.INTERRUPTED);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

