/**
 * Token buckets by key (a peer: a uid, a network): `rate` tokens a second, at most `burst`
 * held. A key whose bucket is full again is forgotten, and at most `maxKeys` are kept (the
 * least recently used leave first, as full buckets), so memory is bounded whatever the peers.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly maxKeys = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  /** Tokens `key` holds now (up to `burst`). */
  tokens(key: string): number {
    const b = this.buckets.get(key);
    if (!b) return this.burst;
    const t = Math.min(this.burst, b.tokens + ((this.now() - b.at) * this.rate) / 1000);
    if (t >= this.burst) this.buckets.delete(key);
    return t;
  }

  /**
   * Takes `n` tokens if `key` holds at least `min` (default: n), going into debt for the
   * rest; returns 0. Else takes nothing and returns the ms until it will hold `min`.
   */
  take(key: string, n: number, min = n): number {
    const have = this.tokens(key);
    const need = Math.min(min, this.burst);
    if (have < need) return Math.ceil(((need - have) * 1000) / this.rate);
    this.buckets.delete(key); // re-inserted last: least recently used first
    this.buckets.set(key, { tokens: have - n, at: this.now() });
    while (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    return 0;
  }
}
