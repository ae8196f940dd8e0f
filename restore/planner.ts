/**
 * What a blank-host restore will do, decided before anything is changed:
 * the images to load or pull, the networks and volumes to create, the
 * containers to create in dependency order, and what already exists on the
 * target (a conflict, unless a previous run of this same restore made it:
 * then it is resumed). `--dry-run` prints this plan and stops.
 */
import type { ContainerSpec } from '../core/docker/spec.ts';
import type { DockerState, ImageRef, NetworkSpec, VolumeSpec } from '../core/docker/state.ts';
import { UsageError } from '../core/errors.ts';

export type ConflictPolicy = 'fail' | 'skip' | 'replace';

/** create: make it; resume: a previous run of this restore made it; skip/replace: it existed (per --on-conflict). */
export type Action = 'create' | 'resume' | 'skip' | 'replace' | 'conflict';

export interface PlannedImage {
  readonly ref: ImageRef;
  readonly action: 'present' | 'load' | 'pull' | 'missing';
}

export interface PlannedContainer {
  readonly spec: ContainerSpec;
  readonly action: Action;
  /** Containers it waits for (started and healthy first). */
  readonly after: readonly string[];
  readonly start: boolean;
}

export interface RestorePlan {
  readonly images: PlannedImage[];
  readonly networks: { spec: NetworkSpec; action: 'create' | 'exists' }[];
  readonly volumes: { spec: VolumeSpec; action: Action }[];
  readonly containers: PlannedContainer[];
  /** Reasons the restore cannot go ahead; nothing is changed while there are any. */
  readonly problems: string[];
}

/** What exists on the target, and what a previous run of this restore created there. */
export interface TargetState {
  readonly images: ReadonlySet<string>;
  readonly networks: ReadonlySet<string>;
  readonly volumes: ReadonlySet<string>;
  readonly containers: ReadonlySet<string>;
  readonly ours: { readonly volumes: ReadonlySet<string>; readonly containers: ReadonlySet<string> };
  /** Whether a registry answers (a pull by digest may work). */
  readonly registry: boolean;
}

/** The names of the containers `spec` depends on, among `names`. */
export function dependencies(spec: ContainerSpec, all: readonly ContainerSpec[]): string[] {
  const deps = new Set<string>();
  const h = spec.hostConfig;
  for (const k of ['NetworkMode', 'IpcMode', 'PidMode', 'UTSMode']) {
    const v = h[k];
    if (typeof v === 'string' && v.startsWith('container:')) deps.add(v.slice('container:'.length));
  }
  for (const v of (h['VolumesFrom'] as string[] | undefined) ?? []) deps.add(v.split(':')[0]!);
  for (const l of (h['Links'] as string[] | undefined) ?? []) deps.add(l.split(':')[0]!);
  const labels = (spec.config['Labels'] as Record<string, string> | undefined) ?? {};
  const project = labels['com.docker.compose.project'];
  for (const d of (labels['com.docker.compose.depends_on'] ?? '').split(',').filter(Boolean)) {
    const service = d.split(':')[0];
    const hit = all.find((c) => {
      const l = (c.config['Labels'] as Record<string, string> | undefined) ?? {};
      return l['com.docker.compose.project'] === project && l['com.docker.compose.service'] === service;
    });
    if (hit) deps.add(hit.name);
  }
  deps.delete(spec.name);
  return [...deps].filter((d) => all.some((c) => c.name === d)).sort();
}

/** Containers in an order where each comes after what it depends on. */
export function dependencyOrder(specs: readonly ContainerSpec[]): { spec: ContainerSpec; after: string[] }[] {
  const out: { spec: ContainerSpec; after: string[] }[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const byName = new Map(specs.map((s) => [s.name, s]));
  const visit = (s: ContainerSpec, chain: string[]): void => {
    if (placed.has(s.name)) return;
    if (visiting.has(s.name)) throw new UsageError(`containers depend on each other in a cycle: ${[...chain, s.name].join(' → ')}`);
    visiting.add(s.name);
    const after = dependencies(s, specs);
    for (const d of after) visit(byName.get(d)!, [...chain, s.name]);
    visiting.delete(s.name);
    placed.add(s.name);
    out.push({ spec: s, after });
  };
  for (const s of [...specs].sort((a, b) => a.name.localeCompare(b.name))) visit(s, []);
  return out;
}

function decide(exists: boolean, ours: boolean, policy: ConflictPolicy): Action {
  if (!exists) return 'create';
  if (ours) return 'resume';
  return policy === 'fail' ? 'conflict' : policy;
}

export function planRestore(state: DockerState, target: TargetState, opts: { only?: readonly string[]; onConflict: ConflictPolicy }): RestorePlan {
  const problems: string[] = [];
  let specs = state.containers;
  if (opts.only?.length) {
    const unknown = opts.only.filter((n) => !specs.some((s) => s.name === n));
    if (unknown.length > 0) problems.push(`the snapshot has no container ${unknown.join(', ')} (it has ${specs.map((s) => s.name).join(', ')})`);
    specs = specs.filter((s) => opts.only!.includes(s.name));
    for (const s of specs) {
      for (const d of dependencies(s, state.containers)) {
        if (!opts.only.includes(d)) problems.push(`${s.name} depends on ${d}, which --only leaves out; add it, or restore ${d} first`);
      }
    }
  }
  const ordered = dependencyOrder(specs);

  const imageIds = new Set(specs.map((s) => s.imageId));
  const images: PlannedImage[] = state.images
    .filter((i) => imageIds.has(i.id))
    .map((ref) => ({
      ref,
      action: target.images.has(ref.id) ? 'present' : ref.repoDigests.length > 0 && target.registry ? 'pull' : ref.path ? 'load' : 'missing',
    }));
  for (const i of images) {
    if (i.action === 'missing') problems.push(`image ${i.ref.tags[0] ?? i.ref.id} is not on the target, no registry answers for it, and the snapshot does not hold it (back up with --images)`);
  }

  const networkNames = new Set(specs.flatMap((s) => s.networks.map((n) => n.name)));
  const networks = state.networks.filter((n) => networkNames.has(n.name)).map((spec) => ({ spec, action: target.networks.has(spec.name) ? ('exists' as const) : ('create' as const) }));

  const volumeNames = new Set(specs.flatMap((s) => s.mounts.filter((m) => m.type === 'volume').map((m) => m.source)));
  const volumes = state.volumes
    .filter((v) => volumeNames.has(v.name))
    .map((spec) => ({ spec, action: decide(target.volumes.has(spec.name), target.ours.volumes.has(spec.name), opts.onConflict) }));
  const containers = ordered.map(({ spec, after }) => ({
    spec,
    after,
    start: spec.running,
    action: decide(target.containers.has(spec.name), target.ours.containers.has(spec.name), opts.onConflict),
  }));
  for (const v of volumes) if (v.action === 'conflict') problems.push(`a volume named ${v.spec.name} already exists on the target (--on-conflict skip or replace)`);
  for (const c of containers) if (c.action === 'conflict') problems.push(`a container named ${c.spec.name} already exists on the target (--on-conflict skip or replace)`);
  return { images, networks, volumes, containers, problems };
}
