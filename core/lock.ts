/**
 * Repository locks (format §10). Backups, restores and checks take a shared
 * lock, so any number run at once from any number of hosts; prune takes an
 * exclusive one and runs alone. A lock is a sealed object that its holder
 * rewrites every REFRESH_MS; one that has not been refreshed for STALE_MS, or
 * whose process is gone from this very host, is stale and ignored. So a
 * crashed run never leaves the repository unusable for long.
 *
 * Taking a lock is write-then-check: write ours, list again, and back off if
 * a conflicting lock appeared meanwhile, so two racing processes cannot both
 * believe they hold conflicting locks.
 */
import { hostname } from 'node:os';
import { currentUser } from './idnames.ts';
import { z } from 'zod';
import { LockedError, isStowageError } from './errors.ts';
import type { Repository } from './repository.ts';

export const REFRESH_MS = 5 * 60 * 1000;
export const STALE_MS = 30 * 60 * 1000;

const lockSchema = z.object({
  version: z.literal(1),
  time: z.string(),
  exclusive: z.boolean(),
  host: z.string(),
  username: z.string(),
  pid: z.number().int(),
  operation: z.string(),
});
export type LockInfo = z.infer<typeof lockSchema>;

export interface LockRecord {
  readonly name: string;
  readonly lock: LockInfo;
}

export interface LockOptions {
  readonly exclusive: boolean;
  readonly operation: string;
  /** Keep trying for this long before giving up (0: fail at once). */
  readonly waitMs?: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isStale(lock: LockInfo, now: Date): boolean {
  if (now.getTime() - Date.parse(lock.time) > STALE_MS) return true;
  return lock.host === hostname() && !pidAlive(lock.pid);
}

export async function listLocks(repo: Repository): Promise<LockRecord[]> {
  const out: LockRecord[] = [];
  for (const info of await repo.listObjects('locks')) {
    try {
      const plain = await repo.loadObject('locks', 'lock', info.name);
      const r = lockSchema.safeParse(JSON.parse(plain.toString('utf8')));
      if (r.success) out.push({ name: info.name, lock: r.data });
    } catch (e) {
      // A lock removed while we list it is simply gone.
      if (!isStowageError(e)) throw e;
    }
  }
  return out;
}

function describeLock(l: LockInfo): string {
  return `${l.exclusive ? 'exclusive' : 'shared'} lock for "${l.operation}" held by ${l.username}@${l.host} (pid ${l.pid}) since ${l.time}`;
}

export class RepositoryLock {
  /** Locks this process holds, so a signal handler can remove them before exit. */
  private static readonly held = new Set<RepositoryLock>();
  /** Lock objects being written: a signal during acquire must remove those too. */
  private static readonly writing = new Set<Promise<string>>();
  private static stopping = false;
  private readonly repo: Repository;
  private readonly info: Omit<LockInfo, 'time'>;
  private name: string;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> = Promise.resolve();

  private constructor(repo: Repository, info: Omit<LockInfo, 'time'>, name: string) {
    this.repo = repo;
    this.info = info;
    this.name = name;
  }

  static async acquire(repo: Repository, opts: LockOptions): Promise<RepositoryLock> {
    const info = {
      version: 1 as const,
      exclusive: opts.exclusive,
      host: hostname(),
      username: currentUser(),
      pid: process.pid,
      operation: opts.operation,
    };
    const deadline = Date.now() + (opts.waitMs ?? 0);
    for (let attempt = 0; ; attempt++) {
      const blocking = await conflicts(repo, opts.exclusive, null);
      if (!blocking) {
        const name = await RepositoryLock.write(repo, info);
        // Held from the moment it exists, so a signal during the check removes it.
        const lock = new RepositoryLock(repo, info, name);
        RepositoryLock.held.add(lock);
        const late = await conflicts(repo, opts.exclusive, name);
        if (!late) {
          lock.startRefresh();
          return lock;
        }
        await lock.release();
        if (Date.now() >= deadline) throw new LockedError(`repository is locked: ${describeLock(late)}`);
      } else if (Date.now() >= deadline) {
        throw new LockedError(
          `repository is locked: ${describeLock(blocking)}; wait for it to finish, or if that process is gone, run "stowage unlock" (stale locks expire after ${STALE_MS / 60000} minutes)`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** Math.min(attempt, 5))));
    }
  }

  private startRefresh(): void {
    this.timer = setInterval(() => {
      this.refreshing = this.refresh().catch(() => {});
    }, REFRESH_MS);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    const old = this.name;
    this.name = await RepositoryLock.write(this.repo, this.info);
    await this.repo.backend.remove({ type: 'locks', name: old });
  }

  /** Writes a lock object; once releaseAll has begun, removes it again and refuses. */
  private static async write(repo: Repository, info: Omit<LockInfo, 'time'>): Promise<string> {
    if (RepositoryLock.stopping) throw new LockedError('stopping: no new lock is taken');
    // Tracked as a whole, removal included, so releaseAll waits until it is gone.
    const op = (async () => {
      const name = await writeLock(repo, info);
      if (RepositoryLock.stopping) {
        await repo.backend.remove({ type: 'locks', name });
        throw new LockedError('stopping: no new lock is taken');
      }
      return name;
    })();
    RepositoryLock.writing.add(op);
    try {
      return await op;
    } finally {
      RepositoryLock.writing.delete(op);
    }
  }

  /** Removes every lock this process holds or is writing; no lock is taken after it. */
  static async releaseAll(): Promise<void> {
    RepositoryLock.stopping = true;
    // A write in flight removes its own object when it sees `stopping`.
    await Promise.allSettled([...RepositoryLock.writing]);
    await Promise.all([...RepositoryLock.held].map((l) => l.release().catch(() => {})));
  }

  async release(): Promise<void> {
    RepositoryLock.held.delete(this);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.refreshing;
    await this.repo.backend.remove({ type: 'locks', name: this.name });
  }
}

async function writeLock(repo: Repository, info: Omit<LockInfo, 'time'>): Promise<string> {
  const lock: LockInfo = { ...info, time: repo.clock().toISOString() };
  return await repo.saveObject('locks', 'lock', Buffer.from(JSON.stringify(lock)));
}

async function conflicts(repo: Repository, exclusive: boolean, own: string | null): Promise<LockInfo | null> {
  const now = repo.clock();
  for (const { name, lock } of await listLocks(repo)) {
    if (name === own || isStale(lock, now)) continue;
    if (exclusive || lock.exclusive) return lock;
  }
  return null;
}

/** Removes stale locks (or all, with `all`); returns how many. */
export async function removeLocks(repo: Repository, all: boolean): Promise<number> {
  const now = repo.clock();
  let n = 0;
  for (const { name, lock } of await listLocks(repo)) {
    if (all || isStale(lock, now)) {
      await repo.backend.remove({ type: 'locks', name });
      n++;
    }
  }
  return n;
}

