/**
 * What a container snapshot records about the Docker host besides file
 * data (snapshot field `docker`): container specs, networks, volumes,
 * images, and where each volume's and bind's data is in the snapshot tree.
 */
import { z } from 'zod';
import { containerSpecSchema } from './spec.ts';

export const networkSpecSchema = z.object({
  name: z.string(),
  driver: z.string(),
  scope: z.string().optional(),
  internal: z.boolean(),
  attachable: z.boolean(),
  enableIPv6: z.boolean(),
  ipam: z.object({
    driver: z.string(),
    options: z.record(z.string(), z.string()),
    config: z.array(z.record(z.string(), z.unknown())),
  }),
  options: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
});
export type NetworkSpec = z.infer<typeof networkSpecSchema>;

export const volumeSpecSchema = z.object({
  name: z.string(),
  driver: z.string(),
  options: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
  /** How its data was read: through the Engine API (tar) or from its mount point on this host. */
  mode: z.enum(['api', 'direct']),
  /** Path of its data in the snapshot tree ("/volumes/NAME"); absent if it could not be read. */
  path: z.string().optional(),
  /** Direct mode: the archiver's root tree, the parent for the next night's unchanged-file skip. */
  directRoot: z.string().optional(),
});
export type VolumeSpec = z.infer<typeof volumeSpecSchema>;

export const imageRefSchema = z.object({
  id: z.string(),
  tags: z.array(z.string()),
  repoDigests: z.array(z.string()),
  /** Where `docker save`'s archive is in the snapshot tree, when the image was stored. */
  path: z.string().optional(),
});
export type ImageRef = { -readonly [K in keyof z.infer<typeof imageRefSchema>]: z.infer<typeof imageRefSchema>[K] };

export const bindDataSchema = z.object({
  /** Host path of the bind mount's source. */
  source: z.string(),
  path: z.string(),
  mode: z.enum(['api', 'direct']),
});

export const dockerStateSchema = z.object({
  version: z.literal(1),
  apiVersion: z.string(),
  containers: z.array(containerSpecSchema),
  networks: z.array(networkSpecSchema),
  volumes: z.array(volumeSpecSchema),
  images: z.array(imageRefSchema),
  binds: z.array(bindDataSchema),
});
export type DockerState = z.infer<typeof dockerStateSchema>;
