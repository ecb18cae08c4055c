/**
 * Token buckets: one per connection for send frames, one per remote address for
 * connection attempts. Time comes from a passed clock so the buckets can be tested
 * without waiting.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Take one token; false when the bucket is empty. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** True when the bucket has refilled completely (safe to forget). */
  full(): boolean {
    return this.tokens + ((this.now() - this.last) / 1000) * this.perSecond >= this.burst;
  }
}

/** Buckets keyed by remote address, with the full ones pruned so the map stays small. */
export class AddressLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(address: string): boolean {
    let b = this.buckets.get(address);
    if (!b) this.buckets.set(address, (b = new TokenBucket(this.perSecond, this.burst, this.now)));
    return b.take();
  }

  prune(): void {
    for (const [k, b] of this.buckets) if (b.full()) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}
