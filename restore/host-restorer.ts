/**
 * Blank-host restore: brings a snapshot's containers back on the Docker
 * Engine at DOCKER_HOST, data first (see restore/planner.ts for the plan).
 *
 *  1. images: present, pulled by digest, or loaded from the snapshot;
 *  2. networks, then volumes, with their drivers, options and labels;
 *  3. data into each volume through a helper container that is created and
 *     never started, mounting the volume with NoCopy (so the image's files
 *     at that path are never copied in and mixed with the data), with
 *     putArchive of a tar made from the snapshot tree;
 *  4. containers created with their captured specs, in dependency order,
 *     and started if they were running, each waiting for the health of
 *     what it depends on;
 *  5. a report of what was created, skipped and failed, with step times.
 * A journal makes a rerun after a failure finish the job.
 */
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { type Engine, call, describe, isNotFound } from '../core/docker/engine.ts';
import type { ContainerSpec } from '../core/docker/spec.ts';
import type { DockerState, ImageRef, NetworkSpec, VolumeSpec } from '../core/docker/state.ts';
import { DockerError } from '../core/errors.ts';
import type { ProgressReporter } from '../core/progress.ts';
import type { Repository } from '../core/repository.ts';
import type { SealPool } from '../core/seal-pool.ts';
import { findNode } from '../core/tree.ts';
import { restoreFiles } from './file-restorer.ts';
import type { RestoreJournal } from './journal.ts';
import type { RestorePlan } from './planner.ts';
import { splitSnapshotPath } from './safe-name.ts';
import { tarFromTree } from './tree-tar.ts';

export interface HostRestoreOptions {
  readonly repo: Repository;
  readonly pool: SealPool;
  readonly engine: Engine;
  readonly state: DockerState;
  readonly rootTree: string;
  readonly plan: RestorePlan;
  readonly journal: RestoreJournal;
  /** Host port OLD → NEW. */
  readonly portMap: ReadonlyMap<string, string>;
  /** Host path prefix OLD → NEW for bind mounts. */
  readonly bindMap: ReadonlyMap<string, string>;
  /** Also restore bind mounts' data to their (mapped) host paths. */
  readonly binds: boolean;
  readonly healthTimeoutMs: number;
  readonly progress: ProgressReporter;
}

export interface StepReport {
  readonly step: string;
  readonly ms: number;
}

export interface HostRestoreReport {
  readonly created: string[];
  readonly skipped: string[];
  readonly failed: { object: string; message: string }[];
  readonly steps: StepReport[];
}

export async function restoreHost(o: HostRestoreOptions): Promise<HostRestoreReport> {
  const report: HostRestoreReport = { created: [], skipped: [], failed: [], steps: [] };
  const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
    o.progress.phase(name);
    const t0 = Date.now();
    await fn();
    report.steps.push({ step: name, ms: Date.now() - t0 });
  };
  const { docker } = o.engine;

  await step('images', async () => {
    for (const img of o.plan.images) {
      if (img.action === 'present') {
        // An earlier run may have been stopped between loading and tagging.
        await ensureTags(docker, img.ref);
        continue;
      }
      if (img.action === 'pull' && (await tryPull(docker, img.ref))) {
        report.created.push(`image ${img.ref.tags[0] ?? img.ref.id}`);
        continue;
      }
      await loadImage(o, img.ref);
      report.created.push(`image ${img.ref.tags[0] ?? img.ref.id} (from the snapshot)`);
    }
  });

  await step('networks', async () => {
    for (const n of o.plan.networks) {
      if (n.action === 'exists') {
        report.skipped.push(`network ${n.spec.name} (exists)`);
        continue;
      }
      await call(o.engine, `creating network ${n.spec.name}`, () => docker.createNetwork(networkCreate(n.spec)));
      report.created.push(`network ${n.spec.name}`);
    }
  });

  // Containers being replaced go first: a volume in use cannot be replaced.
  for (const c of o.plan.containers) {
    if (c.action === 'replace') await removeContainer(o.engine, c.spec.name);
  }

  await step('volumes', async () => {
    for (const v of o.plan.volumes) {
      if (v.action === 'skip') {
        report.skipped.push(`volume ${v.spec.name} (exists; --on-conflict skip)`);
        continue;
      }
      if (v.action === 'replace') await call(o.engine, `removing volume ${v.spec.name}`, () => docker.getVolume(v.spec.name).remove());
      if (v.action !== 'resume') {
        // A new, empty volume: whatever an earlier run put into one of this name is gone.
        o.journal.unfill(v.spec.name);
        await call(o.engine, `creating volume ${v.spec.name}`, () =>
          docker.createVolume({ Name: v.spec.name, Driver: v.spec.driver, DriverOpts: v.spec.options, Labels: v.spec.labels }),
        );
        o.journal.record('volumes', v.spec.name);
        report.created.push(`volume ${v.spec.name}`);
      }
    }
  });

  await step('data', async () => {
    for (const v of o.plan.volumes) {
      if (v.action === 'skip' || !v.spec.path || o.journal.isFilled(v.spec.name)) continue;
      await fillVolume(o, v.spec);
      o.journal.record('filled', v.spec.name);
    }
    if (o.binds) {
      for (const b of o.state.binds) {
        const target = mapPath(b.source, o.bindMap);
        const r = await restoreFiles({ repo: o.repo, pool: o.pool, target, path: b.path }, o.rootTree);
        for (const p of r.problems) report.failed.push({ object: `bind ${target}${p.path}`, message: p.message });
        report.created.push(`bind data ${target}`);
      }
    }
  });

  await step('containers', async () => {
    const healthy = new Map<string, boolean>();
    for (const c of o.plan.containers) {
      if (c.action === 'skip') {
        report.skipped.push(`container ${c.spec.name} (exists; --on-conflict skip)`);
        const s = (await docker.getContainer(c.spec.name).inspect()).State;
        healthy.set(c.spec.name, s.Running && (!s.Health || s.Health.Status === 'healthy'));
        continue;
      }
      try {
        const existing = await docker.getContainer(c.spec.name).inspect().catch((e: unknown) => (isNotFound(e) ? null : Promise.reject(e)));
        if (!existing) {
          await createContainer(o, c.spec);
          o.journal.record('containers', c.spec.name);
          report.created.push(`container ${c.spec.name}`);
        }
        if (!c.start) continue;
        for (const d of c.after) {
          if (!healthy.get(d)) report.failed.push({ object: `container ${c.spec.name}`, message: `started although ${d}, which it depends on, is not healthy` });
        }
        const running = existing?.State.Running ?? false;
        if (!running) await call(o.engine, `starting ${c.spec.name}`, () => docker.getContainer(c.spec.name).start());
        const status = await waitHealthy(o.engine, c.spec.name, o.healthTimeoutMs);
        healthy.set(c.spec.name, status === 'healthy' || status === 'none');
        if (status === 'unhealthy' || status === 'timeout') {
          report.failed.push({ object: `container ${c.spec.name}`, message: status === 'timeout' ? `not healthy after ${o.healthTimeoutMs / 1000} s` : 'reports unhealthy' });
        }
      } catch (e) {
        report.failed.push({ object: `container ${c.spec.name}`, message: describe(e) });
      }
    }
  });
  return report;
}

function mapPath(p: string, map: ReadonlyMap<string, string>): string {
  for (const [from, to] of map) if (p === from || p.startsWith(`${from}/`)) return to + p.slice(from.length);
  return p;
}

async function tryPull(docker: Docker, ref: ImageRef): Promise<boolean> {
  for (const digest of ref.repoDigests) {
    try {
      const stream = (await docker.pull(digest)) as Readable;
      await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
      await ensureTags(docker, ref);
      return true;
    } catch {
      // Try the next digest, then the snapshot's copy.
    }
  }
  return false;
}

/** Tags the image as it was tagged at backup time, where the tag is free; a tag used by another image is left alone. */
async function ensureTags(docker: Docker, ref: ImageRef): Promise<void> {
  for (const tag of ref.tags) {
    const holder = await docker.getImage(tag).inspect().then((i) => i.Id).catch(() => null);
    if (holder === null) await tagImage(docker, ref.id, tag);
  }
}

async function tagImage(docker: Docker, id: string, tag: string): Promise<void> {
  const i = tag.lastIndexOf(':');
  const slash = tag.lastIndexOf('/');
  const [repo, t] = i > slash ? [tag.slice(0, i), tag.slice(i + 1)] : [tag, 'latest'];
  await docker.getImage(id).tag({ repo, tag: t });
}

async function loadImage(o: HostRestoreOptions, ref: ImageRef): Promise<void> {
  const node = await findNode(o.repo, o.rootTree, splitSnapshotPath(ref.path!));
  if (!node?.subtree) throw new DockerError(`image ${ref.id}: ${ref.path} is not in the snapshot`);
  const tar = tarFromTree(o.repo, o.pool, node.subtree);
  const res = (await call(o.engine, `loading image ${ref.tags[0] ?? ref.id}`, () => o.engine.docker.loadImage(tar.stream))) as Readable;
  let out = '';
  for await (const chunk of res) out += (chunk as Buffer).toString();
  await tar.done;
  if (/"error"/.test(out)) throw new DockerError(`loading image ${ref.tags[0] ?? ref.id}: ${out.slice(0, 500)}`);
  const loaded = await o.engine.docker.getImage(ref.id).inspect().catch(() => null);
  if (!loaded) throw new DockerError(`image ${ref.id} was loaded but the Engine does not have it: ${out.slice(0, 300)}`);
  await ensureTags(o.engine.docker, ref);
}

function networkCreate(n: NetworkSpec): Docker.NetworkCreateOptions {
  return {
    Name: n.name,
    Driver: n.driver,
    Internal: n.internal,
    Attachable: n.attachable,
    EnableIPv6: n.enableIPv6,
    IPAM: { Driver: n.ipam.driver, Options: n.ipam.options, Config: n.ipam.config as never },
    Options: n.options,
    Labels: n.labels,
    CheckDuplicate: true,
  } as Docker.NetworkCreateOptions;
}

/**
 * Puts a volume's data in through a helper container: created from an image
 * the snapshot's containers use, never started, with the volume mounted
 * NoCopy at a path of its own, so nothing of the image lands in the volume.
 */
async function fillVolume(o: HostRestoreOptions, v: VolumeSpec): Promise<void> {
  const node = await findNode(o.repo, o.rootTree, splitSnapshotPath(v.path!));
  if (!node || node.type !== 'dir' || !node.subtree) throw new DockerError(`volume ${v.name}: ${v.path} is not a directory in the snapshot`);
  const user = o.state.containers.find((c) => c.mounts.some((m) => m.type === 'volume' && m.source === v.name));
  const image = user?.imageId ?? o.state.images[0]?.id;
  if (!image) throw new DockerError(`volume ${v.name}: no image to make a helper container from`);
  await putIntoVolume(o.engine, o.repo, o.pool, v.name, node.subtree, image);
}

export async function putIntoVolume(engine: Engine, repo: Repository, pool: SealPool, volume: string, subtree: string, image: string): Promise<void> {
  const helperName = `stowage-restore-${volume}`.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, 120);
  await removeContainer(engine, helperName);
  const helper = await call(engine, `creating a helper container for volume ${volume}`, () =>
    engine.docker.createContainer({
      name: helperName,
      Image: image,
      Entrypoint: ['true'],
      Cmd: [],
      Labels: { 'stowage.helper': 'restore' },
      HostConfig: { Mounts: [{ Type: 'volume', Source: volume, Target: '/stowage-restore', VolumeOptions: { NoCopy: true } }] as never },
    }),
  );
  try {
    const tar = tarFromTree(repo, pool, subtree);
    const put = call(engine, `writing data into volume ${volume}`, () => helper.putArchive(tar.stream as never, { path: '/stowage-restore' }));
    // Both must succeed: an archive cut short by a damaged blob must not pass for the volume's data.
    await Promise.all([put, tar.done]);
  } finally {
    await helper.remove({ force: true }).catch(() => {});
  }
}

async function removeContainer(engine: Engine, name: string): Promise<void> {
  try {
    await engine.docker.getContainer(name).remove({ force: true });
  } catch (e) {
    if (!isNotFound(e)) throw new DockerError(`removing container ${name}: ${describe(e)}`, { cause: e });
  }
}

function mapHostConfig(h: Record<string, unknown>, o: HostRestoreOptions): Record<string, unknown> {
  const out = structuredClone(h);
  const ports = out['PortBindings'] as Record<string, { HostIp?: string; HostPort?: string }[]> | undefined;
  if (ports) {
    for (const list of Object.values(ports)) for (const b of list) if (b.HostPort && o.portMap.has(b.HostPort)) b.HostPort = o.portMap.get(b.HostPort)!;
  }
  if (Array.isArray(out['Binds'])) {
    out['Binds'] = (out['Binds'] as string[]).map((b) => {
      const [src, ...rest] = b.split(':');
      return src!.startsWith('/') ? [mapPath(src!, o.bindMap), ...rest].join(':') : b;
    });
  }
  if (Array.isArray(out['Mounts'])) {
    for (const m of out['Mounts'] as { Type?: string; Source?: string }[]) if (m.Type === 'bind' && m.Source) m.Source = mapPath(m.Source, o.bindMap);
  }
  return out;
}

async function createContainer(o: HostRestoreOptions, spec: ContainerSpec): Promise<void> {
  const docker = o.engine.docker;
  const [first, ...rest] = spec.networks;
  const endpoint = (n: ContainerSpec['networks'][number]): Record<string, unknown> => ({
    ...(n.aliases.length ? { Aliases: n.aliases } : {}),
    ...(n.ipv4Address || n.ipv6Address ? { IPAMConfig: { ...(n.ipv4Address ? { IPv4Address: n.ipv4Address } : {}), ...(n.ipv6Address ? { IPv6Address: n.ipv6Address } : {}) } } : {}),
    ...(n.links.length ? { Links: n.links } : {}),
    ...(n.driverOpts ? { DriverOpts: n.driverOpts } : {}),
    ...(n.macAddress ? { MacAddress: n.macAddress } : {}),
  });
  const hostConfig = mapHostConfig(spec.hostConfig, o);
  const tagged = await docker.getImage(spec.image).inspect().then((i) => i.Id === spec.imageId).catch(() => false);
  const options = {
    name: spec.name,
    ...spec.config,
    Image: tagged ? spec.image : spec.imageId,
    HostConfig: hostConfig,
    ...(first && !String(hostConfig['NetworkMode'] ?? '').startsWith('container:') ? { NetworkingConfig: { EndpointsConfig: { [first.name]: endpoint(first) } } } : {}),
  };
  await call(o.engine, `creating container ${spec.name}`, () => docker.createContainer(options as Docker.ContainerCreateOptions));
  for (const n of rest) {
    await call(o.engine, `connecting ${spec.name} to ${n.name}`, () => docker.getNetwork(n.name).connect({ Container: spec.name, EndpointConfig: endpoint(n) }));
  }
}

async function waitHealthy(engine: Engine, name: string, timeoutMs: number): Promise<'healthy' | 'unhealthy' | 'none' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await engine.docker.getContainer(name).inspect();
    const health = info.State.Health?.Status;
    if (!health) return 'none';
    if (health === 'healthy') return 'healthy';
    if (health === 'unhealthy') return 'unhealthy';
    if (Date.now() > deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, 250));
  }
}
