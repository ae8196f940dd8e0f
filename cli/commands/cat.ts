/** `stowage cat config|snapshot ID|index ID|key ID|lock ID|pack ID|blob ID`: prints one object, decrypted. */
import { decodeIndex } from '../../core/blob-index.ts';
import { UsageError } from '../../core/errors.ts';
import { parseKeyFile, readKeyMeta } from '../../core/keyfile.ts';
import { findSnapshot, listSnapshots } from '../../core/snapshot.ts';
import { type Context, openRepository } from '../context.ts';
import type { Repository } from '../../core/repository.ts';
import type { ObjectType } from '../../core/backend.ts';

const KINDS = ['config', 'snapshot', 'index', 'key', 'lock', 'pack', 'blob', 'tree'] as const;

async function resolveName(repo: Repository, type: ObjectType, prefix: string): Promise<string> {
  const names = (await repo.listObjects(type)).map((o) => o.name).filter((n) => n.startsWith(prefix));
  if (names.length !== 1) throw new UsageError(names.length === 0 ? `no ${type} object ${prefix}` : `${prefix} is ambiguous among ${type} objects`);
  return names[0]!;
}

export async function run(ctx: Context, kind: string, id: string | undefined): Promise<number> {
  if (!(KINDS as readonly string[]).includes(kind)) throw new UsageError(`cat takes one of: ${KINDS.join(', ')}`);
  if (kind !== 'config' && !id) throw new UsageError(`cat ${kind} needs an ID`);
  const repo = await openRepository(ctx);
  const print = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');
  try {
    switch (kind) {
      case 'config':
        print(repo.config);
        break;
      case 'snapshot': {
        const rec = findSnapshot(await listSnapshots(repo), id!);
        print({ id: rec.id, ...rec.snapshot });
        break;
      }
      case 'index': {
        const name = await resolveName(repo, 'index', id!);
        const c = decodeIndex(await repo.loadObject('index', 'index', name), `index/${name}`);
        print({
          supersedes: c.supersedes,
          packs: c.packs.map((p) => ({ id: p.id, size: p.size, keySlot: p.keySlot.kind, blobs: p.blobs.map((b) => ({ id: b.id.toString('hex'), type: b.type, offset: b.offset, length: b.length })) })),
        });
        break;
      }
      case 'key': {
        const name = await resolveName(repo, 'keys', id!);
        const file = parseKeyFile(await repo.backend.load({ type: 'keys', name }), name);
        print({ id: name, kdf: { ...file.kdf, salt: undefined }, meta: readKeyMeta(file, repo.keys) });
        break;
      }
      case 'lock': {
        const name = await resolveName(repo, 'locks', id!);
        print(JSON.parse((await repo.loadObject('locks', 'lock', name)).toString('utf8')));
        break;
      }
      case 'pack': {
        const name = await resolveName(repo, 'data', id!);
        const size = (await repo.backend.stat({ type: 'data', name })).size;
        const info = await repo.readPackInfo(name, size);
        print({ id: name, size, keySlot: info.keySlot.kind, blobs: info.blobs.map((b) => ({ id: b.id.toString('hex'), type: b.type, offset: b.offset, length: b.length })) });
        break;
      }
      case 'tree':
      case 'blob': {
        await repo.loadIndex();
        const type = kind === 'tree' ? 'tree' : (repo.index.get(id!)?.type ?? 'data');
        if (type === 'data') repo.requireContentAccess('cat of a data blob');
        const plain = await repo.loadBlob(type, id!);
        if (type === 'tree') print(JSON.parse(plain.toString('utf8')));
        else process.stdout.write(plain);
        break;
      }
    }
    return 0;
  } finally {
    await repo.close();
  }
}
