import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import {
  CodedError,
  eventMask,
  parseEventList,
  type EventName,
  EVENT_BITS,
  EVENT_NAMES,
  KIND_NAMES,
  OTHER_KIND,
  lostEvent,
  parseLines,
  type LineBatch,
  type LostEvent,
  type ProcessRecord,
  type ProcEvent,
  type ProcEventMap,
} from './events';
import { checkFilterFields, CONTEXT_LOGIN, nativeOptions, type ProcConnectorOptions } from './connector-options';
import { compileFilter, lineFilter, pickLines, type EventFilter } from './filter';
import { loadBinding, type ConnectorStats, type NativeConnector, type NativeLineFilter, type NativeStartOptions } from './native';
import { intOption } from './options';

export type { ConnectorStats } from './native';
export type { ProcConnectorOptions } from './connector-options';

export type ProcConnectorErrorCode = 'EPERM' | 'ENOACK' | 'ENOTHOSTNS' | 'EPROTONOSUPPORT' | 'ESOCKET' | 'ESUBSCRIBE' | 'EPLATFORM' | 'ENOADDON' | 'EREAD' | 'ESRCH';

/** A failure to subscribe, with a code and a message that names the remedy. */
export class ProcConnectorError extends CodedError<ProcConnectorErrorCode> {}

/** Typed events of a ProcConnector. */
export interface ProcConnectorEvents extends ProcEventMap {
  /** Every event, in kernel order. */
  event: [ProcEvent];
  /** Events that arrived together, in kernel order (one array per wake-up). */
  batch: [ProcEvent[]];
  /**
   * The same batch as NDJSON bytes, `toLine(ev)` of each event, made by the reader without
   * building any JS object: for forwarding events as they are (the broadcast server and
   * `--direct` use it). Objects are only made while 'batch', 'event' or a kind has listeners.
   */
  lines: [LineBatch];
  /**
   * The reader thread could not go on (the socket failed under it): a ProcConnectorError
   * with code EREAD, after every event read before. The connector has stopped by then
   * ('close' came first); start() may be called again. Unhandled, it throws like any
   * EventEmitter 'error'.
   */
  error: [Error];
  /** After stop(), once the last event was emitted. */
  close: [];
}

export interface EventsOptions {
  signal?: AbortSignal;
  /**
   * Only the events this filter keeps (the connector's own filter model: `match`, `exclude`,
   * a `subtree` of pids or exec ids followed from now), run on the lines by the addon before
   * any object is made. A TypeError at once if it is not valid (or names a field this
   * connector's options turn off); an Error if an exec id in `subtree` runs no more.
   */
  filter?: EventFilter;
  /** Events buffered for a slow consumer at most; beyond, a `lost` event (source "client"). Default 65536. */
  maxBuffered?: number;
}

const KIND_OF_BIT = new Map<number, number>([
  ...Object.entries(EVENT_BITS).map(([name, bit]) => [bit | 0, KIND_NAMES.indexOf(name as EventName)] as [number, number]),
  [-1, KIND_NAMES.indexOf('lost')],
]);

/**
 * The LineBatch of the native reader's lines: `meta` holds, per line, its end offset, the
 * kernel's kind bit (-1: lost) and its uid (-1: none).
 */
function linesOfNative(buf: Buffer, meta: Int32Array): LineBatch {
  const n = meta.length / 3;
  const ends = new Uint32Array(n);
  const kinds = new Uint8Array(n);
  const uids = new Int32Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    ends[i] = meta[j] as number;
    kinds[i] = KIND_OF_BIT.get(meta[j + 1] as number) ?? OTHER_KIND;
    uids[i] = meta[j + 2] as number;
  }
  return { buf, ends, kinds, uids };
}

const KNOWN_CODES = new Set<string>(['EPERM', 'ENOACK', 'ENOTHOSTNS', 'EPROTONOSUPPORT', 'ESOCKET', 'ESUBSCRIBE']);

/**
 * Linux process events from the kernel's proc connector, read on a thread of their own and
 * emitted in kernel order.
 */
export class ProcConnector extends EventEmitter<ProcConnectorEvents> {
  /** It emits `'lines'`: a `LineSource` (the broadcast server and NATS take its bytes as they are). */
  readonly emitsLines = true as const;
  /** The event kinds this connector reports. */
  readonly subscribed: readonly EventName[];
  readonly threads: boolean;
  private readonly opts: Omit<NativeStartOptions, 'events'>;
  private native: NativeConnector | null = null;
  /** A batch is being emitted; a flush() asked for meanwhile waits for its end (`flushAfter`). */
  private delivering = false;
  private flushAfter = false;
  private lastStats: ConnectorStats | null = null;
  private referenced = true;

  constructor(options: ProcConnectorOptions = {}) {
    super();
    this.subscribed = parseEventList(options.events ?? ['fork', 'exec', 'exit']);
    this.opts = nativeOptions(options);
    this.threads = this.opts.threads;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.native !== null;
  }

  /**
   * Subscribes to the kernel's process events and starts the reader thread. Returns once the
   * kernel has acknowledged the subscription: every process started after this is seen.
   * Throws a ProcConnectorError when the kernel refuses or never answers.
   */
  start(): this {
    if (this.native) return this;
    if (process.platform !== 'linux') {
      throw new ProcConnectorError('EPLATFORM', `process events need Linux (this is ${process.platform})`);
    }
    const binding = loadBinding();
    if (binding instanceof Error) {
      throw new ProcConnectorError('ENOADDON', `the procmonitor native addon could not be loaded: ${binding.message}`, {
        cause: binding,
      });
    }
    const absent = this.opts.subtree.findIndex((pid) => !isProcess(pid));
    if (absent >= 0) throw new ProcConnectorError('ESRCH', `subtree: no process ${this.opts.subtree[absent]} is running`);
    const native = new binding.Connector((buf, meta, fatal) => {
      try {
        this.deliver(buf, meta);
        if (fatal !== undefined && this.native === native) this.fail(fatal);
      } catch (err) {
        // Node-API would swallow an exception thrown into a thread-safe call (a warning
        // only): a listener's exception, or an unhandled 'error', is made uncaught instead,
        // as from any EventEmitter.
        process.nextTick(() => {
          throw err;
        });
      }
    });
    if (!this.referenced) native.unref();
    try {
      native.start({ events: eventMask(this.subscribed), ...this.opts });
    } catch (err) {
      const e = err as Error & { code?: string };
      const code = (e.code && KNOWN_CODES.has(e.code) ? e.code : 'ESUBSCRIBE') as ProcConnectorErrorCode;
      throw new ProcConnectorError(code, startFailure(code, e.message), { cause: err });
    }
    this.native = native;
    return this;
  }

  /** Unsubscribes and joins the reader thread; events still queued are emitted first. Idempotent. */
  stop(): this {
    const native = this.native;
    if (!native) return this;
    this.native = null;
    const [buf, meta] = native.stop();
    this.lastStats = native.stats();
    if (buf?.length) this.deliver(buf, meta);
    this.emit('close');
    return this;
  }

  /** Keep the process alive while running (default). */
  ref(): this {
    this.referenced = true;
    this.native?.ref();
    return this;
  }

  /** Do not keep the process alive just for this connector. */
  unref(): this {
    this.referenced = false;
    this.native?.unref();
    return this;
  }

  /**
   * Every process of the live table (seeded from /proc at start, kept by fork, exec and
   * exit), in no particular order. Empty when not running.
   */
  snapshot(): ProcessRecord[] {
    return this.native ? (JSON.parse(this.native.snapshot()) as ProcessRecord[]) : [];
  }

  /**
   * A process and its ancestors, nearest first, up to init (pid 1) or the first parent the
   * table does not know; null when the table does not know pid (or not running).
   */
  ancestry(pid: number): ProcessRecord[] | null {
    if (!Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) throw new RangeError(`ancestry(pid) needs a pid, got ${String(pid)}`);
    const text = this.native ? this.native.ancestry(pid) : null;
    return text === null ? null : (JSON.parse(text) as ProcessRecord[]);
  }

  /**
   * Delivers now, before flush() returns, the events the reader has queued for JS, rather than
   * at its next wake-up (at most every `batchInterval`): for a caller that knows an event has
   * happened (e.g. a child it reaped) and wants it without the wait. A no-op when stopped.
   * Called from a listener while a batch is being emitted, it takes effect once that batch
   * has gone out, so that events keep their order.
   */
  flush(): this {
    if (this.delivering) this.flushAfter = true;
    else this.native?.flush();
    return this;
  }

  /** Counters of the running (or last) subscription; null before the first start(). */
  stats(): ConnectorStats | null {
    return this.native ? this.native.stats() : this.lastStats;
  }

  private fail(why: string): void {
    this.stop();
    this.emit('error', new ProcConnectorError('EREAD', `the reader thread stopped: ${why}`));
  }

  /** @internal Test hook: the reader thread stops as if reading had failed (an 'error' follows). */
  injectFault(why = 'injected fault'): void {
    this.native?.injectFault(why);
  }

  // The reader's lines go out as they are to 'lines' listeners; objects are made (parsed)
  // only when somebody listens for them.
  private deliver(buf: Buffer, meta: Int32Array): void {
    this.delivering = true;
    try {
      this.emitBatch(buf, meta);
    } finally {
      this.delivering = false;
    }
    if (this.flushAfter) {
      this.flushAfter = false;
      this.native?.flush();
    }
  }

  private emitBatch(buf: Buffer, meta: Int32Array): void {
    if (this.listenerCount('lines') > 0) this.emit('lines', linesOfNative(buf, meta));
    if (this.wantsObjects()) {
      this.dispatch(parseLines(buf));
    } else if (this.listenerCount('lost') > 0) {
      // Only 'lost' is listened for (a log of losses): only those lines are parsed.
      for (let j = 0, start = 0; j < meta.length; j += 3) {
        const end = meta[j] as number;
        if (meta[j + 1] === -1) this.emit('lost', JSON.parse(buf.toString('utf8', start, end)) as LostEvent);
        start = end;
      }
    }
  }

  private wantsObjects(): boolean {
    if (this.listenerCount('batch') > 0 || this.listenerCount('event') > 0) return true;
    for (const name of EVENT_NAMES) if (this.listenerCount(name) > 0) return true;
    return false;
  }

  private dispatch(batch: ProcEvent[]): void {
    this.emit('batch', batch);
    for (const ev of batch) {
      this.emit('event', ev);
      // Each kind has its own typed listener list; the cast narrows the tuple for emit().
      (this.emit as (name: string, ev: ProcEvent) => boolean)(ev.event, ev);
    }
  }

  /**
   * The events as an async iterable. Ends when the connector stops or `signal` aborts.
   * A consumer that falls more than `maxBuffered` events behind gets a `lost` event
   * (source "client") in place of what it missed.
   */
  events(options: EventsOptions = {}): AsyncIterableIterator<ProcEvent> {
    let lines: NativeLineFilter | null = null;
    if (options.filter !== undefined) {
      const f = compileFilter(options.filter);
      checkFilterFields(f.keys, { login: (this.opts.context & CONTEXT_LOGIN) !== 0, cwd: this.opts.cwd, cgroups: this.opts.cgroups });
      lines = lineFilter(f, () => this.snapshot());
    }
    return iterate(this, options, lines);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ProcEvent> {
    return iterate(this, {});
  }
}

/**
 * Whether this process is in the host's (initial) user namespace: only there is its uid map
 * the identity over every uid. null when /proc/self/uid_map cannot be read.
 */
export function inHostUserNamespace(): boolean | null {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/uid_map', 'utf8');
  } catch {
    return null;
  }
  return text.trim().split(/\s+/).join(' ') === '0 0 4294967295';
}

/**
 * The message of a failed start. In a user namespace other than the host's the kernel refuses
 * (EPERM) or ignores (ENOACK) a subscriber whatever its capabilities there, so that is said
 * instead of remedies that cannot help.
 */
function startFailure(code: ProcConnectorErrorCode, message: string): string {
  if ((code !== 'EPERM' && code !== 'ENOACK') || inHostUserNamespace() !== false) return message;
  const answer = code === 'EPERM' ? 'refused the subscription (EPERM)' : 'never acknowledged the subscription (ENOACK)';
  return (
    `the kernel ${answer}: this process is in a user namespace other than the host's (a container, \`unshare -U\`), ` +
    "where capabilities do not count for the proc connector; run it in the host's user namespace, as root or with CAP_NET_ADMIN"
  );
}

function iterate(conn: ProcConnector, options: EventsOptions, lines: NativeLineFilter | null = null): AsyncIterableIterator<ProcEvent> {
  const max = intOption(options.maxBuffered, 'maxBuffered', 65536, 1);
  const buf: ProcEvent[] = [];
  let head = 0;
  let dropped = 0;
  let done = false;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onLines = (lb: LineBatch) => {
    const keep = (lines as NativeLineFilter).keep(lb.buf, lb.ends);
    onBatch(parseLines(pickLines(lb.buf, lb.ends, 0, (i) => keep[i] === 1).buf));
  };
  const onBatch = (batch: ProcEvent[]) => {
    for (const ev of batch) {
      if (buf.length - head >= max) dropped++;
      else {
        if (dropped) {
          buf.push(lostEvent(dropped, 'client', ev.time));
          dropped = 0;
        }
        buf.push(ev);
      }
    }
    notify();
  };
  const finish = () => {
    if (done) return;
    done = true;
    conn.off('batch', onBatch);
    conn.off('lines', onLines);
    conn.off('close', finish);
    options.signal?.removeEventListener('abort', finish);
    notify();
  };
  if (lines) conn.on('lines', onLines);
  else conn.on('batch', onBatch);
  conn.on('close', finish);
  if (options.signal?.aborted) finish();
  else options.signal?.addEventListener('abort', finish, { once: true });

  const it: AsyncIterableIterator<ProcEvent> = {
    async next(): Promise<IteratorResult<ProcEvent>> {
      for (;;) {
        if (head < buf.length) {
          const ev = buf[head++] as ProcEvent;
          if (head > 1024 && head * 2 > buf.length) {
            buf.splice(0, head);
            head = 0;
          }
          return { value: ev, done: false };
        }
        if (dropped) {
          const lost = lostEvent(dropped, 'client');
          dropped = 0;
          return { value: lost, done: false };
        }
        if (done) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    return(): Promise<IteratorResult<ProcEvent>> {
      finish();
      buf.length = 0;
      head = 0;
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

/** A process (a thread group's leader, not another thread) runs under this pid now (not a zombie). */
function isProcess(pid: number): boolean {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    return new RegExp(`^Tgid:\\s*${pid}$`, 'm').test(status) && !/^State:\s*Z/m.test(status);
  } catch {
    return false;
  }
}
