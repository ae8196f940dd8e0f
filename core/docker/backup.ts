/**
 * A container-aware backup: for the chosen containers of one Docker host,
 * their volumes' and binds' data, their complete specs, their networks,
 * volumes and images, in one snapshot.
 *
 * Per container, in order: its `stowage.pre` command (exec'd inside it),
 * then if labelled `stowage.stop=true` it is stopped (its dependants first),
 * then its volumes are read (once each, however many containers share them),
 * then it is started again (dependants last; only what was running) and its
 * `stowage.post` command runs. Containers are restarted even when the backup
 * fails. A container removed meanwhile, or a volume that cannot be read, is
 * recorded as an error: the snapshot is partial (exit 3), everything else is
 * kept.
 */
import type Docker from 'dockerode';
import * as fss from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { Archiver, type ArchiveError } from '../archiver.ts';
import { DockerError, UsageError } from '../errors.ts';
import { currentUser } from '../idnames.ts';
import { registerCleanup } from '../cleanup.ts';
import { RepositoryLock } from '../lock.ts';
import { type ProgressReporter, newCounters, silentProgress } from '../progress.ts';
import type { Repository } from '../repository.ts';
import { SealPool } from '../seal-pool.ts';
import { type Snapshot, type SnapshotRecord, type SnapshotSource, listSnapshots, saveSnapshot } from '../snapshot.ts';
import { type TreeNode, nameFields, saveTree } from '../tree.ts';
import { parseDuration } from '../units.ts';
import { PROGRAM_VERSION } from '../version.ts';
import { type Engine, call, describe, isNotFound } from './engine.ts';
import { type ContainerSpec, type InspectMount, normaliseConfig, normaliseHostConfig, normaliseMounts, normaliseNetworks } from './spec.ts';
import { type DockerState, type ImageRef, type NetworkSpec, type VolumeSpec, dockerStateSchema } from './state.ts';
import { treeFromTar } from './tar-tree.ts';

export interface Selection {
  readonly all?: boolean;
  readonly names?: readonly string[];
  /** KEY=VALUE or KEY. */
  readonly labels?: readonly string[];
  readonly composeProject?: string;
}

export type VolumeMode = 'auto' | 'api' | 'direct';

export interface ContainerBackupOptions {
  readonly selection: Selection;
  readonly volumeMode?: VolumeMode;
  /** Store every image (`docker save`); images without a repository digest are always stored. */
  readonly images?: boolean;
  readonly tags?: readonly string[];
  readonly host?: string;
  readonly progress?: ProgressReporter;
}

export interface ContainerBackupResult {
  readonly id: string;
  readonly snapshot: Snapshot;
  readonly errors: readonly ArchiveError[];
  readonly containers: readonly string[];
  readonly modes: Record<string, 'api' | 'direct'>;
}

const PREDEFINED_NETWORKS = new Set(['bridge', 'host', 'none', 'default']);
const DEFAULT_HOOK_TIMEOUT = '5m';
const STOP_TIMEOUT_S = 30;

type Inspect = Docker.ContainerInspectInfo;

/** Labels that make a container's backup behave differently (docs/containers.md). */
export const LABEL = {
  exclude: 'stowage.exclude',
  stop: 'stowage.stop',
  pre: 'stowage.pre',
  post: 'stowage.post',
} as const;

function labelMatches(labels: Record<string, string>, want: string): boolean {
  const i = want.indexOf('=');
  return i < 0 ? want in labels : labels[want.slice(0, i)] === want.slice(i + 1);
}

function selectContainers(engine: Engine, all: readonly Docker.ContainerInfo[], sel: Selection): Docker.ContainerInfo[] {
  const nameOf = (c: Docker.ContainerInfo): string => (c.Names[0] ?? '').replace(/^\//, '');
  if (sel.names?.length) {
    const missing = sel.names.filter((n) => !all.some((c) => nameOf(c) === n));
    if (missing.length > 0) throw new UsageError(`no container named ${missing.join(', ')} on the Docker host at ${engine.where}`);
  }
  return all
    .filter((c) => c.Labels?.[LABEL.exclude] !== 'true')
    .filter(
      (c) =>
        sel.all ||
        sel.names?.includes(nameOf(c)) ||
        (sel.labels?.length && sel.labels.every((l) => labelMatches(c.Labels ?? {}, l))) ||
        (sel.composeProject !== undefined && c.Labels?.['com.docker.compose.project'] === sel.composeProject),
    )
    .sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
}

/** Containers that depend on `target` (network/ipc/pid namespace, volumes-from, links, compose depends_on). */
function dependants(target: Inspect, all: readonly Inspect[]): Inspect[] {
  const name = target.Name.replace(/^\//, '');
  const refs = (s: string | undefined): boolean => !!s && (s === `container:${name}` || s === `container:${target.Id}`);
  const service = target.Config.Labels?.['com.docker.compose.service'];
  const project = target.Config.Labels?.['com.docker.compose.project'];
  return all.filter((c) => {
    if (c.Id === target.Id) return false;
    const h = c.HostConfig;
    if (refs(h.NetworkMode) || refs(h.IpcMode) || refs(h.PidMode)) return true;
    if (((h.VolumesFrom ?? []) as string[]).some((v) => v.split(':')[0] === name || v.split(':')[0] === target.Id)) return true;
    if (((h.Links ?? []) as string[]).some((l) => l.split(':')[0] === `/${name}`)) return true;
    const deps = c.Config.Labels?.['com.docker.compose.depends_on'];
    return !!service && c.Config.Labels?.['com.docker.compose.project'] === project && !!deps && deps.split(',').some((d) => d.split(':')[0] === service);
  });
}

export async function backupContainers(repo: Repository, engine: Engine, opts: ContainerBackupOptions): Promise<ContainerBackupResult> {
  const progress = opts.progress ?? silentProgress;
  const started = Date.now();
  const errors: ArchiveError[] = [];
  const lock = await RepositoryLock.acquire(repo, { exclusive: false, operation: 'backup containers' });
  const pool = new SealPool(repo.poolKeys(), repo);
  const toRestart: Inspect[] = [];
  // On SIGTERM too: what this backup stopped is started again before the process exits.
  const unregister = registerCleanup(() => restart(engine, toRestart, errors, progress));
  try {
    progress.phase('loading index');
    const [records] = await Promise.all([listSnapshots(repo), repo.loadIndex()]);
    await repo.adoptUnindexedPacks((m) => progress.warn(m));
    progress.phase('inspecting containers');
    const listed = await call(engine, 'listing containers', () => engine.docker.listContainers({ all: true }));
    const chosen = selectContainers(engine, listed, opts.selection);
    if (chosen.length === 0) throw new UsageError(`no container matches on the Docker host at ${engine.where}`);
    // Every container, not only the chosen: dependants and container:ID references are resolved among them.
    const everyone = await inspectAll(engine, listed.map((c) => c.Id));
    const byId = new Map(everyone.map((c) => [c.Id, c]));
    const nameOf = (ref: string): string => {
      const hit = byId.get(ref) ?? everyone.find((c) => c.Id.startsWith(ref) || c.Name === `/${ref}`);
      return hit ? hit.Name.replace(/^\//, '') : ref;
    };
    const inspected = chosen.map((c) => byId.get(c.Id)).filter((c): c is Inspect => !!c);
    const specs: ContainerSpec[] = [];
    const imageCache = new Map<string, Docker.ImageInspectInfo>();
    for (const c of inspected) specs.push(await specOf(engine, c, nameOf, imageCache));

    const networks = await networkSpecs(engine, specs);
    const volumeInfo = await volumeSpecs(engine, inspected);
    const parent = findContainerParent(records, opts.host ?? hostname(), specs.map((s) => s.name));
    const parentVolumes = new Map((parent?.snapshot.docker ? dockerStateSchema.safeParse(parent.snapshot.docker).data?.volumes ?? [] : []).map((v) => [v.name, v]));

    progress.phase('backup');
    const counters = newCounters();
    const volumeTrees = new Map<string, TreeNode>();
    const bindTrees = new Map<string, TreeNode>();
    const binds: DockerState['binds'] = [];
    const modes: Record<string, 'api' | 'direct'> = {};
    let files = 0;
    let dirs = 0;
    let bytes = 0;
    const account = (r: { files: number; dirs: number; bytes: number }): void => {
      files += r.files;
      dirs += r.dirs;
      bytes += r.bytes;
    };

    for (const c of inspected) {
      const name = c.Name.replace(/^\//, '');
      const labels = c.Config.Labels ?? {};
      const mounts = (c.Mounts as unknown as InspectMount[]).filter((m) => (m.Type === 'volume' && !volumeTrees.has(m.Name ?? '')) || (m.Type === 'bind' && !bindTrees.has(m.Source)));
      if (labels[LABEL.pre] && !(await runHook(engine, c, 'pre', errors))) continue;
      try {
        if (labels[LABEL.stop] === 'true' && c.State.Running) {
          const order = [...dependants(c, everyone).filter((d) => d.State.Running), c];
          for (const s of order) {
            progress.phase(`stopping ${s.Name.replace(/^\//, '')}`);
            await call(engine, `stopping ${s.Name}`, () => engine.docker.getContainer(s.Id).stop({ t: STOP_TIMEOUT_S })).catch((e: unknown) => {
              if (!isNotFound(e)) throw e;
            });
            // Restarted in reverse: c first, its dependants after it.
            toRestart.unshift(s);
          }
          progress.phase('backup');
        }
        for (const m of mounts) {
          const isVolume = m.Type === 'volume';
          const label = isVolume ? `/volumes/${m.Name}` : `/binds${m.Source}`;
          const local = isVolume ? volumeInfo.get(m.Name!)?.Mountpoint : m.Source;
          const mode: 'api' | 'direct' = chooseMode(opts.volumeMode ?? 'auto', local);
          modes[label] = mode;
          try {
            if (mode === 'direct') {
              const prev = isVolume ? parentVolumes.get(m.Name!) : undefined;
              const r = await readDirect(repo, pool, local!, prev?.directRoot, progress);
              errors.push(...r.errors.map((e) => ({ path: label + e.path.slice(local!.length), message: e.message })));
              account(r);
              if (isVolume) {
                volumeTrees.set(m.Name!, { ...r.node, ...nameFields(Buffer.from(m.Name!)) });
                volumeInfo.get(m.Name!)!.directRoot = r.root;
              } else bindTrees.set(m.Source, r.node);
            } else {
              const stream = (await call(engine, `reading ${m.Destination} of ${name}`, () =>
                engine.docker.getContainer(c.Id).getArchive({ path: m.Destination }),
              )) as unknown as Readable;
              const r = await treeFromTar({ repo, pool, snapRoot: label, stripFirst: true, progress, counters }, stream);
              errors.push(...r.errors);
              account(r);
              const node: TreeNode = { ...nameFields(Buffer.from(isVolume ? m.Name! : path.basename(m.Source))), type: 'dir', ...(r.rootMeta ?? { mode: 0o755, uid: 0, gid: 0, mtime: '0' }), subtree: r.tree };
              if (isVolume) volumeTrees.set(m.Name!, node);
              else bindTrees.set(m.Source, node);
            }
            if (!isVolume) binds.push({ source: m.Source, path: label, mode });
            else volumeInfo.get(m.Name!)!.mode = mode;
          } catch (e) {
            if (isNotFound(e)) errors.push({ path: label, message: `container ${name} was removed during the backup; its data is missing` });
            else if (e instanceof DockerError) errors.push({ path: label, message: e.message });
            else throw e;
          }
        }
      } finally {
        await restart(engine, toRestart, errors, progress);
        toRestart.length = 0;
      }
      if (labels[LABEL.post]) await runHook(engine, c, 'post', errors);
    }

    const images = await imageRefs(engine, specs, imageCache);
    const imageTrees = new Map<string, TreeNode>();
    for (const img of images) {
      if (!opts.images && img.repoDigests.length > 0) continue;
      progress.phase(`saving image ${img.tags[0] ?? img.id.slice(7, 19)}`);
      const saved = await saveImage(repo, pool, engine, img, progress, counters);
      if ('error' in saved) errors.push({ path: `/images/${imageDir(img.id)}`, message: saved.error });
      else {
        imageTrees.set(imageDir(img.id), saved.node);
        img.path = `/images/${imageDir(img.id)}`;
        account(saved);
      }
    }

    progress.phase('finishing');
    const volumes: VolumeSpec[] = [...volumeInfo.values()].map((v) => ({
      name: v.Name,
      driver: v.Driver,
      options: v.Options ?? {},
      labels: Object.fromEntries(Object.entries(v.Labels ?? {}).filter(([k]) => k !== 'com.docker.compose.config-hash')),
      mode: v.mode ?? 'api',
      ...(volumeTrees.has(v.Name) ? { path: `/volumes/${v.Name}` } : {}),
      ...(v.directRoot ? { directRoot: v.directRoot } : {}),
    }));
    const tree = await buildRoot(repo, volumeTrees, bindTrees, imageTrees);
    await pool.flush();
    await repo.flush();
    const state: DockerState = {
      version: 1,
      apiVersion: engine.apiVersion,
      containers: specs,
      networks,
      volumes,
      images,
      binds,
    };
    const sources: SnapshotSource[] = [
      ...specs.map((s) => ({ kind: 'container' as const, name: s.name })),
      ...volumes.map((v) => ({ kind: 'volume' as const, name: v.name })),
    ];
    const w = repo.writeStats;
    const snapshot: Snapshot = {
      version: 1,
      time: repo.clock().toISOString(),
      host: opts.host ?? hostname(),
      username: currentUser(),
      tags: [...(opts.tags ?? [])],
      paths: [],
      sources,
      tree,
      ...(parent ? { parent: parent.id } : {}),
      programVersion: `stowage ${PROGRAM_VERSION}`,
      stats: { files, dirs, bytes, filesNew: 0, filesChanged: 0, filesUnchanged: 0, blobsAdded: w.blobsAdded, bytesAdded: w.blobBytesAdded, bytesUploaded: w.bytesUploaded, durationMs: Date.now() - started },
      ...(errors.length > 0 ? { errors: [...errors] } : {}),
      docker: state,
    };
    const id = await saveSnapshot(repo, snapshot);
    return { id, snapshot, errors, containers: specs.map((s) => s.name), modes };
  } finally {
    await restart(engine, toRestart, errors, progress);
    unregister();
    await pool.close();
    await lock.release().catch(() => {});
  }
}

async function inspectAll(engine: Engine, ids: readonly string[]): Promise<Inspect[]> {
  const out: Inspect[] = [];
  for (const id of ids) {
    try {
      out.push(await call(engine, `inspecting container ${id.slice(0, 12)}`, () => engine.docker.getContainer(id).inspect()));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return out;
}

async function specOf(engine: Engine, c: Inspect, nameOf: (ref: string) => string, images: Map<string, Docker.ImageInspectInfo>): Promise<ContainerSpec> {
  let image = images.get(c.Image);
  if (!image) {
    image = await call(engine, `inspecting image ${c.Image}`, () => engine.docker.getImage(c.Image).inspect());
    images.set(c.Image, image);
  }
  const host = normaliseHostConfig(c.HostConfig as unknown as Record<string, unknown>, nameOf);
  // The daemon's defaults, not choices: left out so the new host's own defaults apply.
  for (const k of ['MaskedPaths', 'ReadonlyPaths', 'ConsoleSize', 'CgroupnsMode', 'Runtime']) delete host[k];
  if (host['IpcMode'] === 'private') delete host['IpcMode'];
  if (host['ShmSize'] === 64 * 1024 * 1024) delete host['ShmSize'];
  const log = host['LogConfig'] as { Type?: string; Config?: Record<string, string> } | undefined;
  if (log && log.Type === engine.defaultLogDriver && Object.keys(log.Config ?? {}).length === 0) delete host['LogConfig'];
  if (host['NetworkMode'] === 'default') delete host['NetworkMode'];
  const config = normaliseConfig(c.Config as unknown as Record<string, unknown>, (image.Config ?? {}) as unknown as Record<string, unknown>, c.Id);
  return {
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    imageId: c.Image,
    running: c.State.Running,
    config,
    hostConfig: host,
    networks: normaliseNetworks((c.NetworkSettings.Networks ?? {}) as never, c.Id, (c.Config as { MacAddress?: string }).MacAddress),
    mounts: normaliseMounts(c.Mounts as unknown as InspectMount[]),
  };
}

async function networkSpecs(engine: Engine, specs: readonly ContainerSpec[]): Promise<NetworkSpec[]> {
  const names = [...new Set(specs.flatMap((s) => s.networks.map((n) => n.name)))].filter((n) => !PREDEFINED_NETWORKS.has(n)).sort();
  const out: NetworkSpec[] = [];
  for (const name of names) {
    const n = (await call(engine, `inspecting network ${name}`, () => engine.docker.getNetwork(name).inspect())) as {
      Name: string;
      Driver: string;
      Scope?: string;
      Internal?: boolean;
      Attachable?: boolean;
      EnableIPv6?: boolean;
      IPAM?: { Driver?: string; Options?: Record<string, string> | null; Config?: Record<string, unknown>[] | null };
      Options?: Record<string, string> | null;
      Labels?: Record<string, string> | null;
    };
    out.push({
      name: n.Name,
      driver: n.Driver,
      ...(n.Scope ? { scope: n.Scope } : {}),
      internal: n.Internal ?? false,
      attachable: n.Attachable ?? false,
      enableIPv6: n.EnableIPv6 ?? false,
      ipam: { driver: n.IPAM?.Driver ?? 'default', options: n.IPAM?.Options ?? {}, config: n.IPAM?.Config ?? [] },
      options: n.Options ?? {},
      labels: n.Labels ?? {},
    });
  }
  return out;
}

type VolumeInspect = Docker.VolumeInspectInfo & { mode?: 'api' | 'direct'; directRoot?: string };

async function volumeSpecs(engine: Engine, containers: readonly Inspect[]): Promise<Map<string, VolumeInspect>> {
  const names = [...new Set(containers.flatMap((c) => (c.Mounts as unknown as InspectMount[]).filter((m) => m.Type === 'volume').map((m) => m.Name!)))].sort();
  const out = new Map<string, VolumeInspect>();
  for (const name of names) out.set(name, await call(engine, `inspecting volume ${name}`, () => engine.docker.getVolume(name).inspect()));
  return out;
}

async function imageRefs(engine: Engine, specs: readonly ContainerSpec[], cache: Map<string, Docker.ImageInspectInfo>): Promise<ImageRef[]> {
  const ids = [...new Set(specs.map((s) => s.imageId))].sort();
  const out: ImageRef[] = [];
  for (const id of ids) {
    const img = cache.get(id) ?? (await call(engine, `inspecting image ${id}`, () => engine.docker.getImage(id).inspect()));
    out.push({ id, tags: img.RepoTags ?? [], repoDigests: img.RepoDigests ?? [] });
  }
  return out;
}

/** Direct mode when the data's directory is readable here (same host, enough rights), unless told otherwise. */
function chooseMode(mode: VolumeMode, local: string | undefined): 'api' | 'direct' {
  if (mode === 'api') return 'api';
  let readable = false;
  try {
    readable = !!local && fss.statSync(local).isDirectory() && (fss.accessSync(local, fss.constants.R_OK | fss.constants.X_OK), true);
  } catch {
    readable = false;
  }
  if (mode === 'direct' && !readable) throw new DockerError(`--volume-mode direct: ${local ?? 'the mount point'} is not readable on this host`);
  return readable ? 'direct' : 'api';
}

async function readDirect(
  repo: Repository,
  pool: SealPool,
  dir: string,
  parentRoot: string | undefined,
  progress: ProgressReporter,
): Promise<{ node: TreeNode; root: string; errors: ArchiveError[]; files: number; dirs: number; bytes: number }> {
  const archiver = new Archiver({ repo, pool, progress, ...(parentRoot ? { parentTree: parentRoot } : {}) });
  const r = await archiver.run([dir]);
  const node = r.sources.get(path.resolve(dir));
  if (!node || node.type !== 'dir') throw new DockerError(`${dir} could not be read as a directory: ${r.errors[0]?.message ?? 'unknown'}`);
  return { node, root: r.tree, errors: [...r.errors], files: r.stats.files, dirs: r.stats.dirs, bytes: r.stats.bytes };
}

async function runHook(engine: Engine, c: Inspect, which: 'pre' | 'post', errors: ArchiveError[]): Promise<boolean> {
  const labels = c.Config.Labels ?? {};
  const name = c.Name.replace(/^\//, '');
  const cmd = labels[`stowage.${which}`]!;
  const timeoutMs = parseDuration(labels[`stowage.${which}.timeout`] ?? DEFAULT_HOOK_TIMEOUT);
  const onError = labels[`stowage.${which}.on-error`] ?? 'fail';
  const failure = await execIn(engine, c.Id, cmd, timeoutMs).then(
    (r) => (r.exitCode === 0 ? null : `exited with ${r.exitCode}: ${r.output.trim().slice(-500)}`),
    (e: unknown) => describe(e),
  );
  if (failure === null) return true;
  const message = `${which} command of ${name} failed (${failure})`;
  if (onError === 'continue') {
    errors.push({ path: `/containers/${name}`, message: `${message}; continuing as its label says` });
    return true;
  }
  errors.push({ path: `/containers/${name}`, message: `${message}; its data was not backed up (set ${`stowage.${which}.on-error=continue`} to back it up anyway)` });
  return false;
}

/** Runs `sh -c cmd` in a running container; resolves with its exit code and output. */
export async function execIn(engine: Engine, id: string, cmd: string, timeoutMs: number): Promise<{ exitCode: number; output: string }> {
  const container = engine.docker.getContainer(id);
  const exec = await container.exec({ Cmd: ['sh', '-c', cmd], AttachStdout: true, AttachStderr: true });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  let output = '';
  stream.on('data', (d: Buffer) => (output += d.toString('utf8').replace(/[\u0000-\u0008]/g, '')));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new DockerError(`timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    stream.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, output };
}

async function restart(engine: Engine, containers: readonly Inspect[], errors: ArchiveError[], progress: ProgressReporter): Promise<void> {
  for (const c of containers) {
    progress.phase(`starting ${c.Name.replace(/^\//, '')}`);
    try {
      await engine.docker.getContainer(c.Id).start();
    } catch (e) {
      // 304: already running.
      if ((e as { statusCode?: number }).statusCode === 304) continue;
      errors.push({ path: `/containers/${c.Name.replace(/^\//, '')}`, message: `could not be started again after its backup: ${describe(e)}` });
    }
  }
}

/** The newest snapshot of this host holding the same containers: direct-mode volumes skip unchanged files against it. */
function findContainerParent(records: readonly SnapshotRecord[], host: string, names: readonly string[]): SnapshotRecord | undefined {
  const key = [...names].sort().join('\0');
  for (let i = records.length - 1; i >= 0; i--) {
    const s = records[i]!.snapshot;
    const mine = s.sources.filter((x) => x.kind === 'container').map((x) => (x as { name: string }).name);
    if (s.host === host && [...mine].sort().join('\0') === key) return records[i];
  }
  return undefined;
}

const DIR_META = { mode: 0o755, uid: 0, gid: 0, mtime: '0' };

/** An image's directory in the snapshot: its ID without the "sha256:". */
export function imageDir(id: string): string {
  return id.replace(/^sha256:/, '');
}

/**
 * Stores an image as `docker save` writes it, each file of the archive a
 * file in the tree, so that an unchanged layer is the same chunks night
 * after night. Every layer is checked against the diff ID its config lists.
 */
async function saveImage(
  repo: Repository,
  pool: SealPool,
  engine: Engine,
  img: ImageRef,
  progress: ProgressReporter,
  counters: ReturnType<typeof newCounters>,
): Promise<{ node: TreeNode; files: number; dirs: number; bytes: number } | { error: string }> {
  let stream: Readable;
  try {
    stream = (await engine.docker.getImage(img.id).get()) as unknown as Readable;
  } catch (e) {
    return { error: `docker save failed: ${describe(e)}` };
  }
  const r = await treeFromTar(
    { repo, pool, snapRoot: `/images/${imageDir(img.id)}`, stripFirst: false, progress, counters, digests: true, capture: (p) => !p.includes('/') && p.endsWith('.json') },
    stream,
  );
  try {
    const manifest = (JSON.parse(r.captured.get('manifest.json')?.toString('utf8') ?? '[]') as { Config: string; Layers: string[] }[])[0];
    if (!manifest) return { error: 'the saved image has no manifest.json' };
    const configBytes = r.captured.get(manifest.Config) ?? null;
    const config = configBytes ? (JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }) : null;
    const diffIds = config?.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.Layers.length) return { error: 'the saved image lists a different number of layers than its config' };
    for (const [i, layer] of manifest.Layers.entries()) {
      const got = r.fileDigests.get(layer);
      if (`sha256:${got}` !== diffIds[i]) return { error: `layer ${layer} of the saved image hashes to sha256:${got}, its config says ${diffIds[i]}` };
    }
  } catch (e) {
    return { error: `the saved image cannot be read: ${(e as Error).message}` };
  }
  if (r.errors.length > 0) return { error: r.errors[0]!.message };
  return { node: { name: imageDir(img.id), type: 'dir', ...DIR_META, subtree: r.tree }, files: r.files, dirs: r.dirs, bytes: r.bytes };
}

/** The root tree: /volumes/NAME, /binds/HOST/PATH and /images/ID. */
async function buildRoot(repo: Repository, volumes: Map<string, TreeNode>, binds: Map<string, TreeNode>, images: Map<string, TreeNode>): Promise<string> {
  const top: TreeNode[] = [];
  if (images.size > 0) {
    const nodes = [...images.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, n]) => n);
    top.push({ name: 'images', type: 'dir', ...DIR_META, subtree: await saveTree(repo, nodes) });
  }
  if (volumes.size > 0) {
    const nodes = [...volumes.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, n]) => n);
    top.push({ name: 'volumes', type: 'dir', ...DIR_META, subtree: await saveTree(repo, nodes) });
  }
  if (binds.size > 0) {
    interface Dir {
      nodes: Map<string, Dir | TreeNode>;
    }
    const root: Dir = { nodes: new Map() };
    for (const [source, node] of binds) {
      const parts = source.split('/').filter(Boolean);
      let d = root;
      for (const p of parts.slice(0, -1)) {
        let next = d.nodes.get(p);
        if (!next || !('nodes' in next)) d.nodes.set(p, (next = { nodes: new Map() }));
        d = next as Dir;
      }
      d.nodes.set(parts.at(-1)!, { ...node, ...nameFields(Buffer.from(parts.at(-1)!)) });
    }
    const save = async (d: Dir): Promise<string> => {
      const out: TreeNode[] = [];
      for (const [name, n] of [...d.nodes.entries()].sort(([a], [b]) => a.localeCompare(b))) {
        out.push('nodes' in n ? { name, type: 'dir', ...DIR_META, subtree: await save(n as Dir) } : (n as TreeNode));
      }
      return await saveTree(repo, out);
    };
    top.push({ name: 'binds', type: 'dir', ...DIR_META, subtree: await save(root) });
  }
  return await saveTree(repo, top.sort((a, b) => a.name.localeCompare(b.name)));
}
