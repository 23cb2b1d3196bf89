import * as net from 'node:net';
import { TokenBuckets } from './buckets';

/**
 * Who may have a password checked, and when: the bound on password guessing.
 *
 * - Failures are counted per network prefix (IPv4 /24, IPv6 /64), not per address: a guesser
 *   gains nothing by rotating the addresses it holds.
 * - Every failure delays the prefix's next check, the first included (`baseDelayMs`, doubling
 *   with each failure within `memoryMs`, at most `maxDelayMs`), and its answer by as much.
 * - A global budget spans all prefixes: `ratePerSec` failures a second, in bursts of at most
 *   `burst`. With none left, every check waits for the next, whatever the address: password
 *   checks are never evaluated faster than that, however many prefixes a guesser holds.
 * - Waiting checks are taken in this order: prefixes that have logged in before (a known
 *   client never queues behind a guesser), then those with the fewest failures, then the oldest.
 *   A prefix that logged in before and has not failed since is not held by the global budget.
 *
 * A check is the synchronous comparison the caller runs in `go`; it must report `failed()` or
 * `succeeded()` before returning.
 */
export interface AuthGateOptions {
  /** Delay after a prefix's first failure; 0 turns delays and the global budget off (tests). */
  baseDelayMs: number;
  /** Failures a second, over all prefixes; 0: no global budget. */
  ratePerSec: number;
  /** Failures the global budget allows at once. Default 4 seconds' worth. */
  burst?: number;
  maxDelayMs?: number;
  memoryMs?: number;
  /** Prefixes whose failures are remembered at most (least recently failed leave first). */
  maxPrefixes?: number;
  now?: () => number;
}

interface PrefixState {
  count: number;
  last: number;
  nextAt: number;
}

interface Waiter {
  prefix: string;
  go: () => void;
  seq: number;
}

const TRUSTED_MAX = 1024;
const TRUSTED_MS = 7 * 24 * 3600 * 1000;

/** The accounting unit of an address: its IPv4 /24 or IPv6 /64 (an IPv4-mapped address counts as IPv4). */
export function prefixOf(addr: string): string {
  let a = addr;
  if (a.startsWith('::ffff:') && net.isIPv4(a.slice(7))) a = a.slice(7);
  if (net.isIPv4(a)) {
    const p = a.split('.');
    return `${p[0]}.${p[1]}.${p[2]}.0/24`;
  }
  if (net.isIPv6(a)) {
    const zone = a.indexOf('%');
    if (zone >= 0) a = a.slice(0, zone);
    // A dotted IPv4 tail (::ffff:... handled above; 64:ff9b::1.2.3.4 and the like) is two groups.
    const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
    if (v4) {
      const [b1, b2, b3, b4] = v4.slice(1).map(Number) as [number, number, number, number];
      a = `${a.slice(0, v4.index)}${((b1 << 8) | b2).toString(16)}:${((b3 << 8) | b4).toString(16)}`;
    }
    // Expand "::" to get the first four groups.
    const [head, tail] = a.includes('::') ? a.split('::') : [a, null];
    const h = head ? head.split(':') : [];
    const t = tail === null ? [] : tail ? tail.split(':') : [];
    const groups = tail === null ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return `${groups
      .slice(0, 4)
      .map((g) => parseInt(g, 16).toString(16))
      .join(':')}::/64`;
  }
  return a; // not an IP address (a Unix peer, a test): its own unit
}

export class AuthGate {
  private readonly base: number;
  private readonly maxDelay: number;
  private readonly memory: number;
  private readonly maxPrefixes: number;
  private readonly now: () => number;
  private readonly prefixes = new Map<string, PrefixState>();
  private readonly trusted = new Map<string, number>();
  private readonly waiters: Waiter[] = [];
  /** The global failure budget: one bucket. */
  private readonly budget: TokenBuckets | null;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private draining = false;

  constructor(o: AuthGateOptions) {
    this.base = o.baseDelayMs;
    const rate = o.baseDelayMs > 0 ? o.ratePerSec : 0;
    this.maxDelay = o.maxDelayMs ?? 30000;
    this.memory = o.memoryMs ?? 10 * 60 * 1000;
    this.maxPrefixes = o.maxPrefixes ?? 4096;
    this.now = o.now ?? Date.now;
    this.budget = rate > 0 ? new TokenBuckets(rate, Math.max(1, o.burst ?? Math.ceil(rate * 4)), 1, this.now) : null;
  }

  /** Runs `go` once `addr` may have a password checked (at once when it may now). Returns a cancel. */
  wait(addr: string, go: () => void): () => void {
    const w: Waiter = { prefix: prefixOf(addr), go, seq: this.seq++ };
    this.waiters.push(w);
    this.drain();
    return () => {
      const i = this.waiters.indexOf(w);
      if (i >= 0) this.waiters.splice(i, 1);
    };
  }

  /** A check from `addr` failed: its failure number and how long its answer waits. */
  failed(addr: string): { count: number; delay: number; prefix: string } {
    const now = this.now();
    const prefix = prefixOf(addr);
    let s = this.prefixes.get(prefix);
    if (s && now - s.last > this.memory) s = undefined;
    const count = (s ? s.count : 0) + 1;
    const delay = this.base === 0 ? 0 : Math.min(this.base * 2 ** Math.min(count - 1, 20), this.maxDelay);
    this.prefixes.delete(prefix); // re-inserted last: the map stays in least-recently-failed order
    this.prefixes.set(prefix, { count, last: now, nextAt: now + delay });
    while (this.prefixes.size > this.maxPrefixes) this.prefixes.delete(this.prefixes.keys().next().value as string);
    this.budget?.take('', 1); // (never into debt: a failure that was not waited for, a line too long, cannot stop the rest)
    this.later();
    return { count, delay, prefix };
  }

  /** A check from `addr` succeeded: its prefix starts afresh and goes first from now on. */
  succeeded(addr: string): void {
    const prefix = prefixOf(addr);
    this.prefixes.delete(prefix);
    this.trusted.delete(prefix);
    this.trusted.set(prefix, this.now());
    while (this.trusted.size > TRUSTED_MAX) this.trusted.delete(this.trusted.keys().next().value as string);
    this.later();
  }

  /** Whether `addr`'s network logged in within the last 7 days. */
  known(addr: string): boolean {
    return this.isTrusted(prefixOf(addr), this.now());
  }

  /** Failures a prefix has to its name now (0 once forgotten). */
  failures(addr: string): number {
    const s = this.prefixes.get(prefixOf(addr));
    return s && this.now() - s.last <= this.memory ? s.count : 0;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.waiters.length = 0;
  }

  /** When `prefix` may next be checked, as far as its own failures go. */
  private readyAt(prefix: string, now: number): number {
    const s = this.prefixes.get(prefix);
    return s && now - s.last <= this.memory ? s.nextAt : 0;
  }

  private isTrusted(prefix: string, now: number): boolean {
    const at = this.trusted.get(prefix);
    return at !== undefined && now - at <= TRUSTED_MS;
  }

  /** Grants what may go now, on a later turn (a check's outcome changes the order). */
  private later(): void {
    if (this.waiters.length > 0 && !this.draining) setImmediate(() => this.drain());
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    const granting = new Set<string>();
    try {
      for (;;) {
        const now = this.now();
        const budgetOk = !this.budget || this.budget.tokens('') >= 1;
        let best: Waiter | null = null;
        let bestKey: [number, number, number] | null = null;
        granting.clear();
        for (const w of this.waiters) {
          if (granting.has(w.prefix) || this.readyAt(w.prefix, now) > now) continue;
          granting.add(w.prefix); // one per prefix per turn: its outcome decides the next
          const key: [number, number, number] = [this.isTrusted(w.prefix, now) ? 0 : 1, this.failures(w.prefix), w.seq];
          if (!bestKey || key[0] < bestKey[0] || (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))) {
            best = w;
            bestKey = key;
          }
        }
        // A network that logged in before and has not failed since is not held by the global
        // budget (its own delays still hold it): a known client never waits on a guesser.
        if (!best || !bestKey || (!budgetOk && (bestKey[0] !== 0 || bestKey[1] !== 0))) break;
        this.waiters.splice(this.waiters.indexOf(best), 1);
        best.go();
      }
    } finally {
      this.draining = false;
    }
    this.schedule();
  }

  /** A timer for the first moment a waiter could go. */
  private schedule(): void {
    if (this.waiters.length === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      return;
    }
    const now = this.now();
    let at = Infinity;
    for (const w of this.waiters) at = Math.min(at, this.readyAt(w.prefix, now));
    const tokens = this.budget ? this.budget.tokens('') : 1;
    if (this.budget && tokens < 1) at = Math.max(at, now + ((1 - tokens) * 1000) / this.budget.rate);
    at = Math.max(at, now + 1);
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.drain();
    }, at - now);
    this.timer.unref();
  }
}
