/**
 * The journald output (`--journald`): events and the daemon's own log lines as structured
 * journal entries (journald-entry.ts), sent in journald's native protocol to its socket
 * (`/run/systemd/journal/socket`) by the addon, as Node.js has no Unix datagram sockets.
 *
 * Never holds anything up: each send is non-blocking. What journald cannot take yet (its
 * queue full, or journald absent: restarting, not running) waits in a bounded queue (8 MiB)
 * and is tried again (10 ms later while journald is merely busy, each second while it is
 * absent); beyond the bound, events are dropped, counted, and said in the journal with one
 * `lost` entry (`PROCMON_SOURCE=journald`, `PROCMON_COUNT=N`) where they are missing. Problems
 * with journald itself go to `report` (stderr), once per episode, never to journald.
 */
import * as os from 'node:os';
import { CodedError, lostEvent, type LineBatch, type ProcEvent } from '../events';
import { loadBinding, type NativeJournalSocket } from '../native';
import { isEventSource, subscribeLines, type EventSource } from '../source';
import { encodeEntry, eventFields, logFields } from './journald-entry';
import type { Severity } from './syslog';

export const DEFAULT_JOURNAL_SOCKET = '/run/systemd/journal/socket';

export interface JournaldOptions {
  /** Whose events to send (a ProcConnector); none: only what `log()` is given. */
  source?: EventSource;
  /** journald's native socket. Default /run/systemd/journal/socket. */
  socketPath?: string;
  /** SYSLOG_IDENTIFIER of every entry (`journalctl -t`). Default procMonitor. */
  identifier?: string;
  /** Bytes waiting for journald at most; beyond, events are dropped and counted. Default 8 MiB. */
  bufferBytes?: number;
  /** Says what goes wrong with journald (and when it works again): one line each time. */
  report?: (line: string) => void;
}

export interface JournaldStats {
  /** Entries journald took (events, log lines and lost entries). */
  entries: number;
  /** Events journald took. */
  events: number;
  /** Events dropped (the queue full, or an entry journald refused). */
  lost: number;
  /** Why sending fails now (an errno code), or null. */
  failing: string | null;
  /** Bytes waiting to be sent. */
  queuedBytes: number;
}

export type JournaldErrorCode = 'EINVAL' | 'ENOADDON' | 'ESOCKET';

export class JournaldError extends CodedError<JournaldErrorCode> {}

const BUSY_MS = 10;
const ABSENT_MS = 1000;
const EMPTY = Buffer.alloc(0);
const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

interface Entry {
  buf: Buffer;
  /** 1 for an event (counted in events and lost), 0 for a log line. */
  events: number;
  /** A place where events were dropped: a lost entry saying how many is sent here. */
  lost?: number;
}

/** Sends events and log lines to journald (see the module's comment). */
export class JournaldOutput {
  readonly socketPath: string;
  private readonly identifier: string;
  private readonly bufferBytes: number;
  private readonly report: (line: string) => void;
  private readonly source: EventSource | null;
  private sock: NativeJournalSocket | null;
  private queue: Entry[] = [];
  private head = 0; // queue[head] is next
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly counts: JournaldStats = { entries: 0, events: 0, lost: 0, failing: null, queuedBytes: 0 };

  constructor(o: JournaldOptions = {}) {
    if (o.source !== undefined && !isEventSource(o.source)) throw new JournaldError('EINVAL', 'source must emit events (a ProcConnector)');
    const socketPath = o.socketPath ?? DEFAULT_JOURNAL_SOCKET;
    if (typeof socketPath !== 'string' || !socketPath.startsWith('/') || Buffer.byteLength(socketPath) > 107 || socketPath.includes('\0')) {
      throw new JournaldError('EINVAL', `socketPath must be an absolute path of at most 107 bytes, got ${JSON.stringify(socketPath)}`);
    }
    const identifier = o.identifier ?? 'procMonitor';
    if (typeof identifier !== 'string' || identifier === '' || identifier.length > 64 || /[\n\0]/.test(identifier)) {
      throw new JournaldError('EINVAL', 'identifier must be 1 to 64 characters, no newline');
    }
    const bufferBytes = o.bufferBytes ?? 8 << 20;
    if (!Number.isSafeInteger(bufferBytes) || bufferBytes < 64 << 10 || bufferBytes > 1 << 30) {
      throw new JournaldError('EINVAL', `bufferBytes must be a whole number from 65536 to 1073741824, got ${String(bufferBytes)}`);
    }
    const binding = loadBinding();
    if (binding instanceof Error) throw new JournaldError('ENOADDON', `journald needs the native addon, which did not load: ${binding.message}`);
    try {
      this.sock = new binding.JournalSocket();
    } catch (err) {
      throw new JournaldError('ESOCKET', `journald: ${(err as Error).message}`);
    }
    this.socketPath = socketPath;
    this.identifier = identifier;
    this.bufferBytes = bufferBytes;
    this.report = o.report ?? (() => {});
    this.source = o.source ?? null;
  }

  /** Follows the source (if any): each of its events is sent. */
  start(): this {
    if (this.source && !this.unsubscribe && this.sock) this.unsubscribe = subscribeLines(this.source, this.lines);
    return this;
  }

  stats(): JournaldStats {
    return { ...this.counts, queuedBytes: this.queued };
  }

  /** Sends one of the daemon's own log lines. */
  log(line: string, level: Severity = 'info'): void {
    this.push(encodeEntry(logFields(line, level, this.identifier)), 0);
  }

  /** Sends every event of a batch: a `'lines'` listener (see `subscribeLines`). */
  readonly lines = (batch: LineBatch): void => {
    let start = 0;
    for (let i = 0; i < batch.ends.length; i++) {
      const end = batch.ends[i] as number;
      // (ends are byte offsets: each line is decoded on its own.)
      const line = batch.buf.toString('utf8', start, end);
      start = end;
      let ev: ProcEvent;
      try {
        ev = JSON.parse(line) as ProcEvent;
      } catch {
        // Not an event (a source that hands over something else): counted, never sent.
        this.counts.lost++;
        continue;
      }
      this.push(encodeEntry(eventFields(ev, this.identifier)), 1);
    }
  };

  /**
   * Sends what waits (trying for `timeoutMs` while journald is busy or absent), stops
   * following the source, closes the socket; what could not be sent is counted as lost.
   */
  async close(timeoutMs = 1000): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    const until = Date.now() + timeoutMs;
    while (this.sock && this.head < this.queue.length && Date.now() < until) {
      this.clearTimer();
      if (this.pump()) break;
      await new Promise((resolve) => setTimeout(resolve, BUSY_MS));
    }
    this.clearTimer();
    let left = 0;
    for (let i = this.head; i < this.queue.length; i++) left += (this.queue[i] as Entry).events;
    if (left > 0) {
      this.counts.lost += left;
      this.report(`journald: ${left} events not sent at shutdown`);
    }
    this.queue = [];
    this.head = 0;
    this.queued = 0;
    this.sock?.close();
    this.sock = null;
  }

  private push(buf: Buffer, events: number): void {
    if (!this.sock) return;
    if (this.queued + buf.length > this.bufferBytes && this.head < this.queue.length) {
      if (events > 0) this.drop(events);
      return;
    }
    this.queue.push({ buf, events });
    this.queued += buf.length;
    if (!this.timer) this.pump();
  }

  /** Counts `events` dropped, to be said by a lost entry at the end of the queue. */
  private drop(events: number): void {
    this.counts.lost += events;
    const last = this.queue[this.queue.length - 1];
    if (last?.lost !== undefined && this.head < this.queue.length) last.lost += events;
    else this.queue.push({ buf: EMPTY, events: 0, lost: events });
  }

  /** Sends what waits until journald stops taking it; true if the queue is empty. */
  private pump(): boolean {
    const sock = this.sock;
    if (!sock) return true;
    while (this.head < this.queue.length) {
      const e = this.queue[this.head] as Entry;
      const buf = e.lost !== undefined ? encodeEntry(eventFields(lostEvent(e.lost, 'journald'), this.identifier)) : e.buf;
      const err = sock.send(this.socketPath, buf);
      if (!this.sent(err, e.events)) {
        if ((err !== os.constants.errno.EMSGSIZE && err !== os.constants.errno.ENOSYS) || e.lost !== undefined) return false;
        // Too large even for a memfd: this one is dropped, and said in its place.
        this.counts.lost += e.events;
        this.queued -= e.buf.length;
        this.queue[this.head] = { buf: EMPTY, events: 0, lost: e.events };
        continue;
      }
      this.queue[this.head++] = { buf: EMPTY, events: 0 };
      this.queued -= e.buf.length;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
    }
    this.queue = [];
    this.head = 0;
    return true;
  }

  /** Whether a send worked (counted); if not, says so once and sets the retry. */
  private sent(err: number, events: number): boolean {
    if (err === 0) {
      if (this.counts.failing) this.report(`journald: sending again to ${this.socketPath}`);
      this.counts.failing = null;
      this.counts.entries++;
      this.counts.events += events;
      return true;
    }
    const code = ERRNO_NAMES.get(err) ?? `errno ${err}`;
    if (err === os.constants.errno.EMSGSIZE || err === os.constants.errno.ENOSYS) {
      this.report(`journald: an entry too large to send was dropped (${code})`);
      return false;
    }
    if (err !== os.constants.errno.EAGAIN && this.counts.failing === null) {
      const why = code === 'ENOENT' || code === 'ECONNREFUSED' ? ' (is systemd-journald running?)' : '';
      this.report(`journald: cannot send to ${this.socketPath}: ${code}${why}; trying again each second, events wait (${this.bufferBytes >> 10} KiB at most)`);
      this.counts.failing = code;
    }
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.pump();
      },
      err === os.constants.errno.EAGAIN ? BUSY_MS : ABSENT_MS,
    );
    this.timer.unref();
    return false;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
