/**
 * A container's complete configuration, as an operator set it: the
 * container's `Config` and `HostConfig` from `inspect`, with what the image
 * already says removed (so a restore on a host with a newer image follows
 * the image), with what the daemon assigned at run time removed (IDs,
 * addresses, generated hostnames), and with references to other containers
 * by ID turned into names. docs/containers.md lists every field and what
 * happens to it. The restore passes these objects back to the Engine's
 * create endpoint, so they keep the Engine API's own field names.
 */
import { z } from 'zod';

/** The Engine API fields, loosely: we keep what we do not know rather than drop it. */
type Json = Record<string, unknown>;

export const containerSpecSchema = z.object({
  /** Without the leading slash. */
  name: z.string(),
  /** What it was created from (Config.Image): a reference, or an image ID. */
  image: z.string(),
  imageId: z.string(),
  running: z.boolean(),
  /** Config minus image defaults and runtime state. */
  config: z.record(z.string(), z.unknown()),
  /** HostConfig minus empty values, container IDs replaced by names. */
  hostConfig: z.record(z.string(), z.unknown()),
  /** One entry per network the container is attached to. */
  networks: z.array(
    z.object({
      name: z.string(),
      aliases: z.array(z.string()),
      ipv4Address: z.string().optional(),
      ipv6Address: z.string().optional(),
      links: z.array(z.string()),
      driverOpts: z.record(z.string(), z.string()).optional(),
      macAddress: z.string().optional(),
    }),
  ),
  /** Resolved mounts (inspect's top-level Mounts): where each volume and bind is. */
  mounts: z.array(
    z.object({
      type: z.string(),
      /** Volume name for volumes, host path for binds. */
      source: z.string(),
      target: z.string(),
      readOnly: z.boolean(),
      driver: z.string().optional(),
    }),
  ),
});
export type ContainerSpec = z.infer<typeof containerSpecSchema>;

/** Values createContainer treats as absent: dropping them keeps specs readable and loses nothing. */
function isEmpty(v: unknown): boolean {
  if (v === null || v === undefined || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v).length === 0;
  return false;
}

function compact(o: Json): Json {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => !isEmpty(v)));
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** A hostname the daemon made up: the first 12 hex digits of the container's ID. */
function isGeneratedHostname(hostname: unknown, id: string): boolean {
  return typeof hostname === 'string' && hostname.length === 12 && id.startsWith(hostname);
}

/** Config fields that only describe a run, never what an operator set. */
const CONFIG_RUNTIME = new Set(['Image', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'StdinOnce', 'ArgsEscaped', 'OnBuild']);

export function normaliseConfig(config: Json, image: Json, id: string): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(config)) {
    if (CONFIG_RUNTIME.has(k)) continue;
    switch (k) {
      case 'Hostname':
        if (!isGeneratedHostname(v, id)) out[k] = v;
        break;
      case 'Env': {
        const inImage = new Set((image['Env'] as string[] | null) ?? []);
        const own = ((v as string[] | null) ?? []).filter((e) => !inImage.has(e));
        if (own.length > 0) out[k] = own;
        break;
      }
      case 'Labels': {
        const inImage = (image['Labels'] as Record<string, string> | null) ?? {};
        const own = Object.fromEntries(Object.entries((v as Record<string, string> | null) ?? {}).filter(([lk, lv]) => inImage[lk] !== lv));
        if (Object.keys(own).length > 0) out[k] = own;
        break;
      }
      case 'ExposedPorts':
      case 'Volumes': {
        const inImage = (image[k] as Json | null) ?? {};
        const own = Object.fromEntries(Object.entries((v as Json | null) ?? {}).filter(([p]) => !(p in inImage)));
        if (Object.keys(own).length > 0) out[k] = own;
        break;
      }
      case 'Cmd':
      case 'Entrypoint':
      case 'WorkingDir':
      case 'User':
      case 'StopSignal':
      case 'Healthcheck':
      case 'Shell':
        // Equal to the image's: the image's own, so leave it to the image.
        if (!sameJson(v, image[k]) && !isEmpty(v)) out[k] = v;
        break;
      default:
        if (!isEmpty(v)) out[k] = v;
    }
  }
  return out;
}

/**
 * HostConfig: empty values dropped; `container:ID` modes, VolumesFrom and
 * Links rewritten with names, so they mean the same on another host.
 */
export function normaliseHostConfig(host: Json, nameOf: (idOrName: string) => string): Json {
  const out = compact(host);
  for (const k of ['NetworkMode', 'IpcMode', 'PidMode', 'UTSMode']) {
    const v = out[k];
    if (typeof v === 'string' && v.startsWith('container:')) out[k] = `container:${nameOf(v.slice('container:'.length))}`;
  }
  if (Array.isArray(out['VolumesFrom'])) {
    out['VolumesFrom'] = (out['VolumesFrom'] as string[]).map((v) => {
      const [ref, mode] = v.split(':');
      return mode ? `${nameOf(ref!)}:${mode}` : nameOf(ref!);
    });
  }
  // Links come back as "/db:/web/db"; the create form is "db:db".
  if (Array.isArray(out['Links'])) {
    out['Links'] = (out['Links'] as string[]).map((l) => {
      const [target, alias] = l.split(':');
      return `${target!.replace(/^\//, '')}:${alias!.split('/').pop()}`;
    });
  }
  // Resource fields the daemon reports as 0 when unset are noise; keep the set ones.
  for (const [k, v] of Object.entries(out)) if (v === 0 && !KEEP_ZERO.has(k)) delete out[k];
  return out;
}

/** Zero means something here (no swap use, no OOM adjustment change). */
const KEEP_ZERO = new Set(['MemorySwappiness']);

interface InspectNetwork {
  Aliases?: string[] | null;
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null;
  Links?: string[] | null;
  DriverOpts?: Record<string, string> | null;
  MacAddress?: string;
  DNSNames?: string[] | null;
}

/** Networks with their aliases minus the ones the daemon adds (the container's short ID). */
export function normaliseNetworks(networks: Record<string, InspectNetwork>, id: string, hostConfigMac?: string): ContainerSpec['networks'] {
  return Object.entries(networks)
    .map(([name, n]) => {
      const aliases = (n.Aliases ?? []).filter((a) => !(a.length >= 12 && id.startsWith(a)));
      const ipam = n.IPAMConfig ?? {};
      return {
        name,
        aliases: [...new Set(aliases)].sort(),
        ...(ipam.IPv4Address ? { ipv4Address: ipam.IPv4Address } : {}),
        ...(ipam.IPv6Address ? { ipv6Address: ipam.IPv6Address } : {}),
        links: n.Links ?? [],
        ...(n.DriverOpts && Object.keys(n.DriverOpts).length > 0 ? { driverOpts: n.DriverOpts } : {}),
        // A MAC address is the daemon's unless the operator set one (then it is also in the config).
        ...(hostConfigMac && n.MacAddress === hostConfigMac ? { macAddress: n.MacAddress } : {}),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export interface InspectMount {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  RW: boolean;
  Driver?: string;
}

export function normaliseMounts(mounts: readonly InspectMount[]): ContainerSpec['mounts'] {
  return mounts
    .map((m) => ({
      type: m.Type,
      source: m.Type === 'volume' ? (m.Name ?? m.Source) : m.Source,
      target: m.Destination,
      readOnly: !m.RW,
      ...(m.Driver ? { driver: m.Driver } : {}),
    }))
    .sort((a, b) => a.target.localeCompare(b.target));
}

/** Labels compose writes that change on every `up` (a hash of the config), not worth restoring as-is. */
export const COMPOSE_VOLATILE_LABELS = new Set(['com.docker.compose.config-hash']);
