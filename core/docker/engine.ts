/**
 * The Docker Engine we talk to: DOCKER_HOST (unix:///path or tcp://host:port)
 * or the default socket, through dockerode. Every failure becomes a
 * DockerError that says which engine and what to do.
 */
import Docker from 'dockerode';
import { DockerError } from '../errors.ts';

export interface Engine {
  readonly docker: Docker;
  /** Where, for messages. */
  readonly where: string;
  /** The daemon's default log driver: a container's LogConfig equal to it was not set by anyone. */
  readonly defaultLogDriver: string;
  readonly apiVersion: string;
}

export function engineOptions(env: NodeJS.ProcessEnv): { opts: Docker.DockerOptions; where: string } {
  const host = env['DOCKER_HOST'];
  if (!host || host.startsWith('unix://')) {
    const socketPath = host ? host.slice('unix://'.length) : '/var/run/docker.sock';
    return { opts: { socketPath }, where: `unix://${socketPath}` };
  }
  const m = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(host);
  if (!m) throw new DockerError(`DOCKER_HOST=${host} is not supported: use unix:///path/to/docker.sock or tcp://host:port`);
  return { opts: { host: m[1]!, port: Number(m[2]), protocol: env['DOCKER_TLS_VERIFY'] ? 'https' : 'http' }, where: host };
}

export async function connectEngine(env: NodeJS.ProcessEnv): Promise<Engine> {
  const { opts, where } = engineOptions(env);
  const docker = new Docker(opts);
  let info: { LoggingDriver?: string };
  let version: { ApiVersion?: string };
  try {
    [info, version] = await Promise.all([docker.info() as Promise<{ LoggingDriver?: string }>, docker.version() as Promise<{ ApiVersion?: string }>]);
  } catch (e) {
    throw new DockerError(`cannot reach the Docker Engine at ${where}: ${describe(e)}; is dockerd running, and is DOCKER_HOST right?`, { cause: e });
  }
  return { docker, where, defaultLogDriver: info.LoggingDriver ?? 'json-file', apiVersion: version.ApiVersion ?? '?' };
}

export function describe(e: unknown): string {
  if (e && typeof e === 'object') {
    const o = e as { json?: { message?: string }; reason?: string; statusCode?: number; message?: string; code?: string };
    if (o.json?.message) return o.json.message;
    if (o.code) return `${o.code}${o.message ? ` (${o.message})` : ''}`;
    if (o.message) return o.message;
  }
  return String(e);
}

/** HTTP 404 from the Engine: the object is gone (a container removed during the backup). */
export function isNotFound(e: unknown): boolean {
  return !!e && typeof e === 'object' && (e as { statusCode?: number }).statusCode === 404;
}

/** Wraps an Engine call: a failure names the engine and the operation. */
export async function call<T>(engine: Engine, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isNotFound(e)) throw e;
    throw new DockerError(`Docker Engine at ${engine.where}: ${what}: ${describe(e)}`, { cause: e });
  }
}
