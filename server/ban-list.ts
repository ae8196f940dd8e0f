/**
 * Temporary bans for addresses that keep failing authentication: after
 * `maxFailures` within `windowMs`, every request from the address is refused
 * for `banMs`, a correct token or not. Bounded in memory: the oldest entries
 * go first when `maxEntries` is reached.
 */
export interface BanPolicy {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly banMs: number;
}

interface Entry {
  failures: number[];
  bannedUntil: number;
}

export class BanList {
  private readonly policy: BanPolicy;
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(policy: BanPolicy, maxEntries = 100_000, now: () => number = Date.now) {
    this.policy = policy;
    this.maxEntries = maxEntries;
    this.now = now;
  }

  /** Seconds left on the address's ban, or 0 when it is not banned. */
  bannedFor(addr: string): number {
    const e = this.entries.get(addr);
    if (!e) return 0;
    const left = e.bannedUntil - this.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /** Records a failed authentication; true when it starts a ban. */
  fail(addr: string): boolean {
    const now = this.now();
    let e = this.entries.get(addr);
    if (!e) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      e = { failures: [], bannedUntil: 0 };
      this.entries.set(addr, e);
    }
    e.failures = e.failures.filter((t) => now - t < this.policy.windowMs);
    e.failures.push(now);
    if (e.failures.length >= this.policy.maxFailures) {
      e.failures = [];
      e.bannedUntil = now + this.policy.banMs;
      return true;
    }
    return false;
  }
}
