/**
 * The client of a procMonitor broadcast server. `ProcMonitorClient` holds what lasts as long as
 * the client: whether it is ready, closing, closed or failed, and who waits for that. Each other
 * piece of state has a module of its own: one connection attempt (connection.ts, with its
 * socket: socket.ts, its password handshake: handshake.ts, and its stream's lines: stream.ts),
 * what carries over from one attempt to the next (resume.ts), and the async iterators with
 * their backpressure (subscribers.ts).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { ProcEvent } from '../events';
import { Connection, type ConnectionOwner } from './connection';
import { Resumer } from './resume';
import { Subscribers } from './subscribers';
import { ProcMonitorClientError, type ConnectOptions, type ProcMonitorClientEvents } from './types';

export * from './types';

/**
 * A connection to a procMonitor broadcast server: an EventEmitter of parsed events and an
 * async iterable of them (iterating applies backpressure; breaking out closes the client).
 */
export class ProcMonitorClient extends EventEmitter<ProcMonitorClientEvents> implements AsyncIterable<ProcEvent> {
  private conn!: Connection;
  private readonly options: ConnectOptions;
  private readonly timeoutMs: number;
  private readonly resumer: Resumer;
  private readonly subscribers: Subscribers;
  /** What the connections report, to this client. */
  private readonly owner: ConnectionOwner;
  /** The user called close(): no reconnect. */
  private closing = false;
  private failure: Error | null = null;
  private closed = false;
  private isReady = false;
  private readyWaiters = 0;

  /** @internal use connect() */
  constructor(options: ConnectOptions) {
    super();
    this.options = options;
    this.timeoutMs = options.handshakeTimeoutMs ?? 10000;
    this.subscribers = new Subscribers(options.maxBuffered ?? 10000);
    this.resumer = new Resumer(options);
    this.owner = {
      requestLine: () => this.resumer.requestLine(),
      ready: () => this.onReady(),
      hello: (info) => {
        this.resumer.hello(info.stream);
        this.emit('hello', info);
      },
      snapshot: (procs) => this.emit('snapshot', procs),
      event: (ev) => this.deliver(ev),
      fail: (err) => this.fail(err),
      nonFatal: (err) => this.nonFatal(err),
      closed: (conn) => this.onClose(conn),
    };
    this.open();
  }

  /** The current connection's socket. */
  private get sock(): Socket {
    return this.conn.sock;
  }

  /** Opens a connection (again, when resuming). */
  private open(): void {
    this.conn = new Connection(this.options, this.timeoutMs, this.owner);
    this.subscribers.attach(this.sock);
  }

  /** Resolves once connected (and authenticated); rejects with the failure otherwise. */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new ProcMonitorClientError('ECONNRESET', 'the connection closed before it was ready'));
    this.readyWaiters++;
    return new Promise((resolve, reject) => {
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onClose = () => {
        cleanup();
        reject(this.failure ?? new ProcMonitorClientError('ECONNRESET', 'the connection closed before it was ready'));
      };
      const cleanup = () => {
        this.readyWaiters--;
        this.off('ready', onReady);
        this.off('close', onClose);
      };
      this.on('ready', onReady);
      this.on('close', onClose);
    });
  }

  /** Closes the connection. Resolves once it is closed. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      this.once('close', () => resolve());
      // Between two connections: nothing to wait for.
      if (this.resumer.cancel()) this.finish();
      else this.sock.destroy();
    });
  }

  /** The last seq received (null before the first event with one): where a resume picks up. */
  get seq(): number | null {
    return this.resumer.seq;
  }

  private onReady(): void {
    this.resumer.connected();
    if (this.isReady) return;
    this.isReady = true;
    this.emit('ready');
  }

  private deliver(ev: ProcEvent): void {
    this.resumer.seen(ev);
    this.subscribers.push(ev);
    this.emit('event', ev);
    // (Per kind: an ECS document, request.schema 'ecs', has its kind in event.action and comes as 'event' only.)
    if (typeof ev.event === 'string') (this.emit as (name: string, ev: ProcEvent) => boolean)(ev.event, ev);
  }

  private nonFatal(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private fail(err: Error): void {
    if (this.failure || this.closed) return;
    if (!this.closing && this.resumer.retries(err)) {
      // Resuming: this connection is over, the next attempt follows (see onClose).
      this.sock.destroy();
      return;
    }
    this.failure = err;
    this.conn.end();
    // Iterators and ready() callers get the error themselves; otherwise the usual EventEmitter
    // rule holds (an 'error' nobody listens to is thrown).
    if (this.listenerCount('error') > 0 || (this.subscribers.size === 0 && this.readyWaiters === 0)) this.emit('error', err);
    this.subscribers.wakeAll();
    this.sock.destroy();
  }

  private onClose(conn: Connection): void {
    if (this.closed || conn !== this.conn) return;
    if (this.resumer.enabled && !this.closing && !this.failure) {
      const next = this.resumer.next();
      conn.stopTimer();
      // The wait is set before listeners hear of it: one that calls close() cancels it.
      this.resumer.wait(next.delayMs, () => {
        if (!this.closing) this.open();
      });
      this.emit('reconnecting', next);
      return;
    }
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.end();
    this.conn.stopTimer();
    this.subscribers.wakeAll();
    this.emit('close');
  }

  /**
   * The events as an async iterator. Ends when the connection closes; throws the failure
   * (e.g. code `'EAUTH'`) if it failed. Breaking out of the loop closes the client.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<ProcEvent> {
    return this.subscribers.iterator({ failure: () => this.failure, closed: () => this.closed, close: () => this.close() });
  }
}

/**
 * Connects to a procMonitor broadcast server: `{ path }` for its Unix socket, or
 * `{ host, port, password }` for TCP (the seed's handshake; with `tls` inside TLS). Listen for
 * `'event'` (and `'error'`), or iterate with `for await`.
 */
export function connect(options: ConnectOptions): ProcMonitorClient {
  return new ProcMonitorClient(options);
}
