/**
 * Events to a file, as NDJSON: the source's lines as they are, appended (O_APPEND, so that a
 * logrotate `copytruncate` leaves no hole), rotated by size if asked (each rotated file
 * gzipped, the oldest deleted), reopened on demand (SIGHUP: logrotate's `create`). Writing
 * never holds anything up: one write at a time on libuv's threads, the rest waiting in a
 * bounded queue; what a full disk, a slow filesystem or a failing one cannot take is dropped,
 * counted, and said in the file with one `{"event":"lost","source":"file","count":N}` once
 * writing works again.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CodedError, lostEvent, type LineBatch, type ProcEvent } from '../events';
import { isEventSource, lineWriter, subscribeLines, type EventSource } from '../source';
import { gzipRotated, pruneRotated, rotatedName } from './file-rotation';

export interface FileOutputOptions {
  source: EventSource;
  /** The file (created if absent, mode `mode`; appended to). */
  path: string;
  /** Rotate before the file would pass this many bytes (0: never; an outside logrotate may). Default 0. */
  maxBytes?: number;
  /** Rotated files kept (`PATH.<time>.gz`), the oldest deleted beyond. Default 5. */
  keep?: number;
  /** Bytes waiting to be written at most; beyond, events are dropped and counted. Default 16 MiB. */
  bufferBytes?: number;
  /** Mode of a file it creates. Default 0o640. */
  mode?: number;
  /** Says what goes wrong (and when it stops going wrong): one line each time. */
  log?: (line: string) => void;
}

export type FileOutputErrorCode = 'EINVAL' | 'EOPEN';

export class FileOutputError extends CodedError<FileOutputErrorCode> {}

export interface FileOutputStats {
  /** Events written. */
  events: number;
  bytes: number;
  /** Events dropped (the disk full or failing, or the queue full), all said in the file since or to be. */
  lost: number;
  rotations: number;
  /** Why writing fails now (an errno code), or null. */
  failing: string | null;
}

const RETRY_MS = 1000;

interface Queued {
  buf: Buffer;
  events: number;
}

/**
 * Takes from the front of `queue` what fits in `room` bytes: whole batches, then, of one that
 * does not fit, its whole lines that do (the first line at least when nothing else goes: a
 * line larger than the room passes it); the rest stays queued.
 */
function takeFitting(queue: Queued[], room: number): { parts: Buffer[]; bytes: number; events: number } {
  const parts: Buffer[] = [];
  let bytes = 0;
  let events = 0;
  while (queue.length > 0) {
    const q = queue[0] as Queued;
    if (bytes + q.buf.length <= room) {
      parts.push(q.buf);
      bytes += q.buf.length;
      events += q.events;
      queue.shift();
      continue;
    }
    const left = room - bytes;
    let cut = left > 0 ? q.buf.lastIndexOf(0x0a, left - 1) + 1 : 0;
    if (cut === 0 && events === 0) cut = q.buf.indexOf(0x0a) + 1 || q.buf.length;
    if (cut === 0) break;
    const head = q.buf.subarray(0, cut);
    const n = linesIn(head);
    parts.push(head);
    bytes += cut;
    events += n;
    q.buf = q.buf.subarray(cut);
    q.events -= n;
    if (q.buf.length === 0) queue.shift();
    break;
  }
  return { parts, bytes, events };
}

/** Bytes of the first line waiting (0 when none). */
function firstLineBytes(queue: Queued[]): number {
  const q = queue[0];
  if (!q) return 0;
  const nl = q.buf.indexOf(0x0a);
  return nl < 0 ? q.buf.length : nl + 1;
}

/** How many lines (newlines) `buf` holds. */
function linesIn(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}

/** Writes a source's events to a file (see the module's comment). */
export class FileOutput extends EventEmitter {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly bufferBytes: number;
  private readonly mode: number;
  private readonly log: (line: string) => void;
  private readonly source: EventSource;
  private readonly lineOf: (ev: ProcEvent) => string; // (its lines' way: the lost line goes the same)
  private fd: number | null = null;
  private size = 0;
  private queue: Queued[] = [];
  private queued = 0;
  private writing = false;
  private dropped = 0; // lost, not yet said in the file
  private retry: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private closing = false;
  private reopenWanted = false; // (done between two writes: see pump)
  private newlineFirst = false; // a cut-short line could not be cut off: the next write ends it
  private rotateAt = 0; // a rotation that failed is tried again past this size
  private waiters: (() => void)[] = []; // told when a write ends or there is nothing to write
  private zipping: Promise<void> = Promise.resolve();
  private readonly counts: FileOutputStats = { events: 0, bytes: 0, lost: 0, rotations: 0, failing: null };

  constructor(o: FileOutputOptions) {
    super();
    if (!isEventSource(o.source)) throw new FileOutputError('EINVAL', 'source must emit events (a ProcConnector)');
    if (typeof o.path !== 'string' || o.path === '') throw new FileOutputError('EINVAL', 'path must be a file name');
    const whole = (v: number | undefined, name: string, dflt: number, min: number, max: number): number => {
      if (v === undefined) return dflt;
      if (!Number.isSafeInteger(v) || v < min || v > max) throw new FileOutputError('EINVAL', `${name} must be a whole number from ${min} to ${max}, got ${String(v)}`);
      return v;
    };
    this.source = o.source;
    this.lineOf = lineWriter(o.source);
    this.path = path.resolve(o.path);
    this.maxBytes = whole(o.maxBytes, 'maxBytes', 0, 0, Number.MAX_SAFE_INTEGER);
    if (this.maxBytes > 0 && this.maxBytes < 4096) throw new FileOutputError('EINVAL', `maxBytes must be 0 (no rotation) or at least 4096, got ${this.maxBytes}`);
    this.keep = whole(o.keep, 'keep', 5, 0, 1000);
    this.bufferBytes = whole(o.bufferBytes, 'bufferBytes', 16 << 20, 64 << 10, 1 << 30);
    this.mode = whole(o.mode, 'mode', 0o640, 0, 0o777);
    this.log = o.log ?? (() => {});
  }

  /** Opens the file (a FileOutputError EOPEN if it cannot) and follows the source. */
  start(): this {
    if (this.unsubscribe) return this;
    this.fd = this.openFile();
    this.unsubscribe = subscribeLines(this.source, (lines) => this.take(lines));
    return this;
  }

  stats(): FileOutputStats {
    return { ...this.counts };
  }

  /**
   * Opens the file again by its name (after logrotate moved it), between two writes: what
   * waits goes to the new one. If it cannot be opened, writing goes on to the old one.
   */
  reopen(): void {
    if (this.closing) return;
    this.reopenWanted = true;
    this.pump();
  }

  /** Writes what waits (within `timeoutMs`), stops following the source, closes the file. */
  async close(timeoutMs = 1000): Promise<void> {
    if (this.closing) return;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.closing = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.pump();
    await Promise.race([this.drained(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    const unsaid = this.dropped + this.queue.reduce((n, q) => n + q.events, 0);
    if (unsaid > 0) this.log(`file: ${unsaid} events not in ${this.path} at the stop (not written, or lost and not yet said there)`);
    this.counts.lost += this.queue.reduce((n, q) => n + q.events, 0);
    this.queue = [];
    // A write still under way closes the file when it ends (never a number reused meanwhile).
    if (!this.writing) this.closeFd();
    await Promise.race([this.zipping, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /** The file, opened by its name (not through a symbolic link). */
  private openFile(): number {
    const c = fs.constants;
    try {
      const fd = fs.openSync(this.path, c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NOFOLLOW, this.mode);
      this.size = fs.fstatSync(fd).size;
      this.rotateAt = 0;
      return fd;
    } catch (err) {
      throw new FileOutputError('EOPEN', `cannot open ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // (closed is closed)
    }
    this.fd = null;
  }

  private next(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private notify(): void {
    for (const r of this.waiters.splice(0)) r();
  }

  /** Resolves once everything waiting is written, or writing fails. */
  private async drained(): Promise<void> {
    while (this.writing || ((this.queue.length > 0 || this.dropped > 0) && this.counts.failing === null && this.fd !== null)) await this.next();
  }

  private take(lines: LineBatch): void {
    const n = lines.ends.length;
    if (n === 0) return;
    if (this.queued + lines.buf.length > this.bufferBytes || this.counts.failing !== null) {
      this.drop(n); // (a failing file is tried again on a timer, not per batch)
      return;
    }
    this.queue.push({ buf: lines.buf, events: n });
    this.queued += lines.buf.length;
    this.pump();
  }

  private drop(events: number): void {
    this.dropped += events;
    this.counts.lost += events;
  }

  /** Opens the file again by its name; keeps the old one if it cannot. */
  private doReopen(): void {
    this.reopenWanted = false;
    let fd: number;
    try {
      fd = this.openFile();
    } catch (err) {
      this.log(`file: ${(err as Error).message}; writing on to the file it had`);
      return;
    }
    this.closeFd();
    this.fd = fd;
    this.log(`file: reopened ${this.path}`);
  }

  /** Writes what waits, one write at a time. */
  private pump(): void {
    if (this.writing || this.retry) return;
    if (this.closing && this.counts.failing !== null) return this.notify();
    if (this.fd === null) {
      // (the file could not be opened again: tried each RETRY_MS)
      try {
        this.fd = this.openFile();
      } catch (err) {
        return this.fail((err as Error).message, 0);
      }
    }
    if (this.reopenWanted) this.doReopen();
    if (this.queue.length === 0 && this.dropped === 0) return this.notify();
    // The loss first, once the file takes writes again (said where it happened); then what
    // waits, as much as fits before a rotation (one line at least).
    const said = this.dropped;
    const parts: Buffer[] = said > 0 ? [Buffer.from(this.lineOf(lostEvent(said, 'file')))] : [];
    if (this.newlineFirst) parts.unshift(Buffer.from('\n'));
    let bytes = parts.reduce((s, b) => s + b.length, 0);
    // Rotated when not even the next line fits (a rotation that failed is tried again at rotateAt).
    const limit = Math.max(this.maxBytes, this.rotateAt);
    const next = (): number => bytes + firstLineBytes(this.queue);
    if (this.maxBytes > 0 && this.size > 0 && this.size + next() > limit) {
      this.size = this.sizeNow(); // (a copytruncate may have cut it)
      if (this.size + next() > limit) this.rotate();
    }
    const room = this.maxBytes > 0 ? Math.max(limit - this.size, 1) : Infinity;
    const took = takeFitting(this.queue, room - bytes);
    parts.push(...took.parts);
    bytes += took.bytes;
    const events = took.events;
    this.queued -= took.bytes;
    this.writing = true;
    const fd = this.fd;
    fs.writev(fd, parts, (err, written) => {
      this.writing = false;
      if (err || written < bytes) {
        // A short write (the disk filled) leaves no part of a line: the file is cut back to
        // the last whole one, and what did not go in is counted.
        const lines = err ? 0 : this.cutBack(fd, parts, written);
        const saidIt = said > 0 && lines > 0; // (the loss line goes first)
        if (saidIt) this.dropped -= said;
        const kept = Math.max(0, lines - (saidIt ? 1 : 0));
        this.counts.events += kept;
        this.fail(err?.code ?? 'short write', events - kept);
      } else {
        this.newlineFirst = false;
        this.size += written;
        this.counts.bytes += written;
        this.counts.events += events;
        if (said > 0) this.dropped -= said;
        if (this.counts.failing !== null) {
          this.log(`file: writing to ${this.path} again (${this.counts.lost} events lost in all)`);
          this.counts.failing = null;
        }
      }
      if (this.closing && this.fd === fd && (this.counts.failing !== null || this.queue.length === 0)) this.closeFd();
      this.notify();
      this.pump();
    });
  }

  private sizeNow(): number {
    try {
      return this.fd === null ? this.size : fs.fstatSync(this.fd).size;
    } catch {
      return this.size;
    }
  }

  /** Cuts the file back to the last whole line of a short write; returns the lines it kept. */
  private cutBack(fd: number, parts: Buffer[], written: number): number {
    const all = Buffer.concat(parts).subarray(0, written);
    const whole = all.lastIndexOf(0x0a) + 1;
    try {
      // (Where the write began, from the file as it is: a copytruncate may have cut it.)
      const start = fs.fstatSync(fd).size - written;
      if (start < 0) throw new Error('cut meanwhile');
      fs.ftruncateSync(fd, start + whole);
      this.newlineFirst = false;
    } catch {
      this.newlineFirst = whole < written; // (the part of a line stays: the next write ends it)
    }
    this.size += whole;
    this.counts.bytes += whole;
    let lines = 0;
    for (let i = all.indexOf(0x0a); i >= 0 && i < whole; i = all.indexOf(0x0a, i + 1)) lines++;
    return lines;
  }

  /** Writing failed: the events of that write are lost; tried again after RETRY_MS. */
  private fail(code: string, events: number): void {
    this.drop(events);
    if (this.counts.failing === null) this.log(`file: cannot write to ${this.path}: ${code}; events are dropped and counted until it can`);
    this.counts.failing = code;
    if (this.closing) return this.notify();
    this.retry = setTimeout(() => {
      this.retry = null;
      this.pump();
    }, RETRY_MS);
    this.retry.unref();
    this.notify();
  }

  /**
   * The file becomes PATH.<time> (gzipped in the background: PATH.<time>.gz) and a new one is
   * opened. Renamed while open: if it cannot be, nothing changes (tried again a maxBytes later).
   */
  private rotate(): void {
    const to = rotatedName(this.path);
    try {
      fs.renameSync(this.path, to);
    } catch (err) {
      this.log(`file: cannot rotate ${this.path}: ${(err as Error).message}`);
      this.rotateAt = this.size + this.maxBytes;
      return;
    }
    let fd: number;
    try {
      fd = this.openFile();
    } catch (err) {
      this.log(`${(err as Error).message}; writing on to ${to}`);
      this.rotateAt = this.size + this.maxBytes;
      return;
    }
    this.closeFd();
    this.fd = fd;
    this.counts.rotations++;
    this.zipping = this.zipping
      .then(() => gzipRotated(to, this.log))
      .then(() => pruneRotated(this.path, this.keep, this.log))
      .catch((err: Error) => this.log(`file: ${err.message}`));
  }
}

/** A FileOutput for `options`, not started. */
export function createFileOutput(options: FileOutputOptions): FileOutput {
  return new FileOutput(options);
}
