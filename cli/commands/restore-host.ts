/**
 * `stowage restore SNAPSHOT --to-host`: rebuilds the snapshot's containers
 * on the Docker Engine at DOCKER_HOST (restore/planner.ts and
 * restore/host-restorer.ts); `--into-volume NAME` puts a volume's data into
 * an existing volume there.
 */
import * as path from 'node:path';
import { defaultCacheRoot } from '../../core/cache-root.ts';
import { connectEngine } from '../../core/docker/engine.ts';
import { dockerStateSchema } from '../../core/docker/state.ts';
import { UsageError } from '../../core/errors.ts';
import type { Repository } from '../../core/repository.ts';
import type { SealPool } from '../../core/seal-pool.ts';
import type { SnapshotRecord } from '../../core/snapshot.ts';
import { findNode } from '../../core/tree.ts';
import { parseDuration } from '../../core/units.ts';
import { putIntoVolume, restoreHost } from '../../restore/host-restorer.ts';
import { RestoreJournal } from '../../restore/journal.ts';
import { type ConflictPolicy, type RestorePlan, planRestore } from '../../restore/planner.ts';
import { splitSnapshotPath } from '../../restore/safe-name.ts';
import { type Context, cacheRootOf } from '../context.ts';
import { EXIT } from '../exit-codes.ts';
import type { Output } from '../output.ts';

export interface HostRestoreCommandOptions {
  readonly only?: string[];
  readonly dryRun?: boolean;
  readonly onConflict?: string;
  readonly mapPort?: string[];
  readonly mapBind?: string[];
  readonly binds?: boolean;
  readonly healthTimeout?: string;
  readonly intoVolume?: string;
  readonly volume?: string;
}

function pairs(list: readonly string[] | undefined, what: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const item of list ?? []) {
    const i = item.indexOf('=');
    if (i <= 0 || i === item.length - 1) throw new UsageError(`${what} wants OLD=NEW, not ${JSON.stringify(item)}`);
    m.set(item.slice(0, i), item.slice(i + 1));
  }
  return m;
}

function stateOf(rec: SnapshotRecord) {
  const parsed = dockerStateSchema.safeParse(rec.snapshot.docker);
  if (!rec.snapshot.docker || !parsed.success) throw new UsageError(`snapshot ${rec.id.slice(0, 8)} is not a container snapshot (back up with --containers)`);
  return parsed.data;
}

function describePlan(plan: RestorePlan): string {
  const lines = ['plan:'];
  for (const i of plan.images) lines.push(`  image      ${i.action.padEnd(8)} ${i.ref.tags[0] ?? i.ref.id}`);
  for (const n of plan.networks) lines.push(`  network    ${n.action.padEnd(8)} ${n.spec.name}`);
  for (const v of plan.volumes) lines.push(`  volume     ${v.action.padEnd(8)} ${v.spec.name}${v.spec.path ? ' (with data)' : ''}`);
  for (const c of plan.containers) {
    lines.push(`  container  ${c.action.padEnd(8)} ${c.spec.name}${c.start ? ', start' : ''}${c.after.length ? ` after ${c.after.join(', ')}` : ''}`);
  }
  for (const p of plan.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}

export async function runHostRestore(ctx: Context, repo: Repository, pool: SealPool, rec: SnapshotRecord, opts: HostRestoreCommandOptions, out: Output): Promise<number> {
  const state = stateOf(rec);
  const policy = (opts.onConflict ?? 'fail') as ConflictPolicy;
  if (!['fail', 'skip', 'replace'].includes(policy)) throw new UsageError(`--on-conflict takes fail, skip or replace, not ${JSON.stringify(opts.onConflict)}`);
  const engine = await connectEngine(ctx.env);
  const journal = new RestoreJournal(path.join(cacheRootOf(ctx) ?? defaultCacheRoot(ctx.env), 'restore'), rec.id, engine.where);
  const docker = engine.docker;
  const [images, networks, volumes, containers] = await Promise.all([
    docker.listImages({ all: true }),
    docker.listNetworks(),
    docker.listVolumes(),
    docker.listContainers({ all: true }),
  ]);
  const plan = planRestore(
    state,
    {
      images: new Set(images.map((i) => i.Id)),
      networks: new Set(networks.map((n) => n.Name)),
      volumes: new Set((volumes.Volumes ?? []).map((v) => v.Name)),
      containers: new Set(containers.flatMap((c) => c.Names.map((n) => n.replace(/^\//, '')))),
      ours: { volumes: journal.volumes, containers: journal.containers },
      registry: true,
    },
    { ...(opts.only?.length ? { only: opts.only } : {}), onConflict: policy },
  );
  if (opts.dryRun || plan.problems.length > 0) {
    out.result({ dryRun: true, plan: summarisePlan(plan), problems: plan.problems }, () => describePlan(plan) + (opts.dryRun ? '\n(dry run: nothing was changed)' : '\nnothing was changed'));
    return plan.problems.length > 0 ? EXIT.USAGE : EXIT.OK;
  }
  const progress = out.progress('restore');
  try {
    const report = await restoreHost({
      repo,
      pool,
      engine,
      state,
      rootTree: rec.snapshot.tree,
      plan,
      journal,
      portMap: pairs(opts.mapPort, '--map-port'),
      bindMap: pairs(opts.mapBind, '--map-bind'),
      binds: opts.binds ?? false,
      healthTimeoutMs: parseDuration(opts.healthTimeout ?? '120s'),
      progress,
    });
    progress.stop();
    out.result({ snapshot: rec.id, plan: summarisePlan(plan), ...report }, () =>
      [
        ...report.created.map((c) => `created ${c}`),
        ...report.skipped.map((s) => `skipped ${s}`),
        ...report.failed.map((f) => `failed  ${f.object}: ${f.message}`),
        `steps: ${report.steps.map((s) => `${s.step} ${(s.ms / 1000).toFixed(1)} s`).join(', ')}`,
      ].join('\n'),
    );
    return report.failed.length > 0 ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    progress.stop();
  }
}

function summarisePlan(plan: RestorePlan): unknown {
  return {
    images: plan.images.map((i) => ({ id: i.ref.id, tags: i.ref.tags, action: i.action })),
    networks: plan.networks.map((n) => ({ name: n.spec.name, action: n.action })),
    volumes: plan.volumes.map((v) => ({ name: v.spec.name, action: v.action })),
    containers: plan.containers.map((c) => ({ name: c.spec.name, action: c.action, start: c.start, after: c.after })),
  };
}

/** `--volume NAME --into-volume TARGET`: a volume's data into an existing volume of the Engine at DOCKER_HOST. */
export async function runIntoVolume(ctx: Context, repo: Repository, pool: SealPool, rec: SnapshotRecord, opts: HostRestoreCommandOptions, out: Output): Promise<number> {
  const state = stateOf(rec);
  const source = opts.volume ?? opts.intoVolume!;
  const spec = state.volumes.find((v) => v.name === source);
  if (!spec?.path) throw new UsageError(`the snapshot holds no data of volume ${source} (it has ${state.volumes.map((v) => v.name).join(', ') || 'none'})`);
  const node = await findNode(repo, rec.snapshot.tree, splitSnapshotPath(spec.path));
  if (!node?.subtree) throw new UsageError(`${spec.path} is not in the snapshot`);
  const engine = await connectEngine(ctx.env);
  await engine.docker.getVolume(opts.intoVolume!).inspect().catch(() => {
    throw new UsageError(`there is no volume ${opts.intoVolume} on the Docker host at ${engine.where}; create it first, or restore with --to-host`);
  });
  const image = state.containers.find((c) => c.mounts.some((m) => m.source === source))?.imageId;
  const present = image ? await engine.docker.getImage(image).inspect().then(() => true).catch(() => false) : false;
  if (!image || !present) throw new UsageError('the image of the container that used this volume is not on the target host (a helper container is made from it); restore with --to-host, or pull it');
  await putIntoVolume(engine, repo, pool, opts.intoVolume!, node.subtree, image);
  out.result({ snapshot: rec.id, volume: source, into: opts.intoVolume }, () => `put the data of volume ${source} into volume ${opts.intoVolume}`);
  return EXIT.OK;
}
