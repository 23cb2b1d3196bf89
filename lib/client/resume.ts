/**
 * What a client keeps from one connection to the next: the request it sends, the stream and
 * the last seq received (where a resume picks up), and the reconnection's backoff.
 */
import type { ProcEvent } from '../events';
import type { ClientRequest } from '../protocol';
import type { ConnectOptions } from './types';

/** A reconnection about to wait: the `reconnecting` event's payload. */
export interface Reconnect {
  attempt: number;
  delayMs: number;
  /** Why the connection dropped, when it failed (null when it just closed). */
  error: Error | null;
}

export class Resumer {
  /** The delays of `resume`, or null without it (no reconnecting). */
  private readonly delays: { delayMs: number; maxDelayMs: number } | null;
  private readonly request: ClientRequest | null;
  /** The stream and the last seq received. */
  private stream: string | null = null;
  private lastSeq: number | null = null;
  /** Reconnections since the last successful connection. */
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Why the current connection failed, for the next `reconnecting` event. */
  private lastError: Error | null = null;

  /** Checks `resume` and `request`; throws RangeError or TypeError. */
  constructor(options: ConnectOptions) {
    const r = options.resume;
    if (r) {
      const o = r === true ? {} : r;
      const delayMs = o.delayMs ?? 100;
      const maxDelayMs = o.maxDelayMs ?? 5000;
      if (!Number.isInteger(delayMs) || delayMs < 0 || !Number.isInteger(maxDelayMs) || maxDelayMs < delayMs) {
        throw new RangeError('resume: delayMs and maxDelayMs must be whole milliseconds, delayMs <= maxDelayMs');
      }
      this.delays = { delayMs, maxDelayMs };
    } else {
      this.delays = null;
    }
    if (options.request !== undefined && (typeof options.request !== 'object' || options.request === null)) throw new TypeError('request must be an object');
    // Over TCP a request line is always sent (`{}` at least): a client that sends none is
    // taken for one written for the seed and gets one line per write, paced.
    this.request = options.request ?? (this.delays || 'port' in options ? {} : null);
  }

  /** Whether it reconnects after the connection drops. */
  get enabled(): boolean {
    return this.delays !== null;
  }

  /** The last seq received (null before the first event with one). */
  get seq(): number | null {
    return this.lastSeq;
  }

  /** The request line for this connection ('' when none): a resume goes on after the last seq. */
  requestLine(): string {
    if (!this.request) return '';
    const req: ClientRequest = { ...this.request };
    if (this.delays && this.lastSeq !== null) {
      req.resume_from = this.lastSeq;
      if (this.stream !== null) req.stream = this.stream;
      delete req.snapshot; // the stream goes on where it was: no table again
    }
    return `${JSON.stringify(req)}\n`;
  }

  /** The server's `hello` named the stream. */
  hello(stream: string): void {
    this.stream = stream;
  }

  /** An event arrived: its seq (in ECS, its event.sequence) is where a resume picks up. */
  seen(ev: ProcEvent): void {
    const seq = typeof ev.seq === 'number' ? ev.seq : (ev as unknown as { event?: { sequence?: unknown } }).event?.sequence;
    if (typeof seq === 'number') this.lastSeq = seq;
  }

  /** Connected (and authenticated): the backoff starts over. */
  connected(): void {
    this.attempt = 0;
  }

  /**
   * Whether a connection that failed with `err` is followed by another (with `resume`, unless
   * the password or the request was refused); if so, `err` is said with the reconnection.
   */
  retries(err: Error): boolean {
    const code = (err as { code?: string }).code;
    if (!this.delays || code === 'EAUTH' || code === 'EREQUEST') return false;
    this.lastError = err;
    return true;
  }

  /** The connection dropped: the next attempt, its delay (doubling) and why. */
  next(): Reconnect {
    const delays = this.delays as { delayMs: number; maxDelayMs: number };
    this.attempt++;
    const delayMs = Math.min(delays.delayMs * 2 ** Math.min(this.attempt - 1, 20), delays.maxDelayMs);
    const error = this.lastError;
    this.lastError = null;
    return { attempt: this.attempt, delayMs, error };
  }

  /** Calls `reopen` after `delayMs`, unless cancelled. */
  wait(delayMs: number, reopen: () => void): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      reopen();
    }, delayMs);
  }

  /** Cancels a pending reconnection: true if there was one. */
  cancel(): boolean {
    if (!this.timer) return false;
    clearTimeout(this.timer);
    this.timer = null;
    return true;
  }
}
