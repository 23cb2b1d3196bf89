/**
 * The client's async iterators: each one's queue of events not yet taken, and the
 * backpressure on the socket (paused while an iterator holds too many unread).
 */
import type { Socket } from 'node:net';
import type { ProcEvent } from '../events';

interface Waiter {
  queue: ProcEvent[];
  head: number;
  wake: (() => void) | null;
}

/** What an iterator asks of the client. */
export interface IteratedClient {
  /** The failure that ended the client, if one did. */
  failure(): Error | null;
  /** Whether the connection is gone for good. */
  closed(): boolean;
  close(): Promise<void>;
}

export class Subscribers {
  private readonly waiters = new Set<Waiter>();
  /** The current connection's socket, and whether it is paused for an iterator. */
  private sock: Socket | null = null;
  private paused = false;

  constructor(private readonly maxBuffered: number) {}

  /** How many iterators there are. */
  get size(): number {
    return this.waiters.size;
  }

  /** A new connection (not paused): the one to pause from now on. */
  attach(sock: Socket): void {
    this.sock = sock;
    this.paused = false;
  }

  /** Queues `ev` for every iterator, pausing the socket when one holds `maxBuffered`. */
  push(ev: ProcEvent): void {
    for (const w of this.waiters) {
      w.queue.push(ev);
      if (w.queue.length - w.head >= this.maxBuffered && !this.paused) {
        this.paused = true;
        this.sock?.pause();
      }
      const wake = w.wake;
      w.wake = null;
      wake?.();
    }
  }

  /** Wakes every iterator waiting for an event (to see the end, or the failure). */
  wakeAll(): void {
    for (const w of this.waiters) {
      const wake = w.wake;
      w.wake = null;
      wake?.();
    }
  }

  private maybeResume(): void {
    if (!this.paused) return;
    for (const w of this.waiters) if (w.queue.length - w.head > this.maxBuffered / 2) return;
    this.paused = false;
    this.sock?.resume();
  }

  /**
   * A new iterator over `client`'s events. Ends when the connection closes; throws the
   * failure if it failed. Breaking out of the loop closes the client.
   */
  iterator(client: IteratedClient): AsyncIterableIterator<ProcEvent> {
    const w: Waiter = { queue: [], head: 0, wake: null };
    this.waiters.add(w);
    const finish = () => {
      this.waiters.delete(w);
      w.queue = [];
      w.head = 0;
      this.maybeResume();
    };
    const it: AsyncIterableIterator<ProcEvent> = {
      next: async (): Promise<IteratorResult<ProcEvent>> => {
        for (;;) {
          if (w.head < w.queue.length) {
            const ev = w.queue[w.head++] as ProcEvent;
            if (w.head > 1024 && w.head * 2 > w.queue.length) {
              w.queue.splice(0, w.head);
              w.head = 0;
            }
            this.maybeResume();
            return { value: ev, done: false };
          }
          const failure = client.failure();
          if (failure) {
            finish();
            throw failure;
          }
          if (client.closed() || !this.waiters.has(w)) {
            finish();
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (w.wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<ProcEvent>> => {
        finish();
        await client.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
}
