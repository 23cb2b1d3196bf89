/**
 * The daemon's syslog output (`--syslog`): its own log lines and, optionally, every event,
 * as RFC 5424 messages (`<PRI>1 TIMESTAMP HOSTNAME procMonitor PID - - MSG`).
 *
 * Targets (the transports: syslog-transport.ts):
 * - `unix:PATH` (default `unix:/dev/log`): the local syslog socket. It is a datagram socket
 *   under rsyslog, syslog-ng and journald, which Node.js cannot open without a native module;
 *   so a long-lived `logger` (util-linux; `--rfc5424 --prio-prefix`) is fed one line per
 *   message on its stdin. It speaks to datagram and stream sockets alike, and blocks there
 *   when syslog stalls, never the daemon.
 * - `udp://HOST:PORT`: one datagram per message (Node's dgram).
 * - `tcp://HOST:PORT`: RFC 6587 octet-counted frames (`LEN SP MSG`) over one connection.
 *
 * Whatever the target, messages go through one bounded queue (1 MiB): while syslog is absent,
 * reconnecting (1 s, doubling up to 30 s) or too slow, messages wait there, and beyond it they
 * are dropped and counted (`stats().dropped`); the daemon never waits for syslog. Problems
 * with syslog itself are reported through `report` (stderr), once per episode, never to syslog.
 */
import * as os from 'node:os';
import { CodedError, LOST_KIND, type LineBatch, type ProcEvent } from '../events';
import { loggerProblem, openTransport, targetText, type SyslogTarget, type Transport } from './syslog-transport';

export { targetText, type SyslogTarget } from './syslog-transport';

/** Syslog facilities by name (RFC 5424 table 1). */
export const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

/** Severities (RFC 5424 table 2). */
export const SEVERITIES = { emerg: 0, alert: 1, crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;
export type Severity = keyof typeof SEVERITIES;

export const DEFAULT_SYSLOG_SOCKET = '/dev/log';
export const DEFAULT_EVENT_FACILITY = 'local0';
/** Facility of the daemon's own log lines. */
export const LOG_FACILITY = FACILITIES.daemon as number;
export const APP_NAME = 'procMonitor';
/** Longest message sent, bytes, header included (rsyslog's default limit is 8 KiB). */
export const MAX_MESSAGE_BYTES = 8192;
/** Bytes kept for syslog at most while it is absent or slow; beyond, messages are dropped. */
export const QUEUE_BYTES = 1 << 20;

const MAX_MSG_BYTES = MAX_MESSAGE_BYTES - 512; // room for the header logger or we put in front
const HIGH_WATER = 64 * 1024; // bytes handed to the pipe/socket beyond which we keep them queued
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
/** Trouble with syslog is reported on stderr once per this at most. */
const REPORT_EVERY_MS = 60000;
/** A connection up this long is taken as working (retry delay reset, trouble over). */
const STABLE_MS = 2000;

/** A syslog setup problem (`ENOLOGGER`: no usable logger(1) for a unix target). */
export class SyslogError extends CodedError {}

export interface SyslogOptions {
  target: SyslogTarget;
  /** Facility of events (`send(event(...))`); log lines use `daemon`. Default local0. */
  eventFacility?: number;
  /** Receives one line per syslog problem (unreachable, dropping, back); never sent to syslog. */
  report?: (line: string) => void;
}

export interface SyslogStats {
  target: string;
  /** Messages handed to the transport (logger's stdin, the socket). */
  sent: number;
  /** Messages dropped: the queue was full, or a write failed. */
  dropped: number;
  /** Bytes waiting in this process. */
  queuedBytes: number;
  /** Whether the target is reachable now, as far as is known. */
  connected: boolean;
}

/** One line of text as a syslog message body: no control characters, at most MAX_MSG_BYTES. */
function cleanText(line: string): string {
  // eslint-disable-next-line no-control-regex
  let s = line.replace(/[\x00-\x1f\x7f]+/g, ' ');
  if (Buffer.byteLength(s) > MAX_MSG_BYTES)
    s =
      Buffer.from(s)
        .subarray(0, MAX_MSG_BYTES - 3)
        .toString('utf8')
        .replace(/\uFFFD$/, '') + '...';
  return s;
}

/**
 * An event as one JSON line (no newline). One too long for a syslog message keeps its valid
 * JSON: `argv` is emptied, `cmdline` cut, and `"truncated": true` added.
 */
export function eventMessage(ev: ProcEvent): string {
  const line = JSON.stringify(ev);
  if (Buffer.byteLength(line) <= MAX_MSG_BYTES) return line;
  const short: Record<string, unknown> = { ...ev, truncated: true };
  if (Array.isArray(short.argv)) short.argv = [];
  const fixed = JSON.stringify({ ...short, cmdline: '' });
  if (typeof short.cmdline === 'string') {
    const room = MAX_MSG_BYTES - Buffer.byteLength(fixed) - 16;
    let cut = short.cmdline.slice(0, Math.max(0, room));
    while (cut && Buffer.byteLength(JSON.stringify(cut)) > room) cut = cut.slice(0, Math.floor(cut.length * 0.9));
    short.cmdline = cut;
  }
  const out = JSON.stringify(short);
  return Buffer.byteLength(out) <= MAX_MSG_BYTES ? out : JSON.stringify({ event: ev.event, time: ev.time, truncated: true });
}

/** RFC 5424 HOSTNAME: printable US-ASCII without spaces, at most 255, else "-". */
function rfcHostname(): string {
  const h = os
    .hostname()
    .replace(/[^\x21-\x7e]/g, '')
    .slice(0, 255);
  return h || '-';
}

/**
 * A message as the transport takes it. logger(1) writes the header itself from a `<PRI>`
 * prefix (one line each); for sockets the RFC 5424 header is ours, octet-counted over TCP
 * (RFC 6587: `LEN SP MSG`).
 */
function frame(kind: SyslogTarget['kind'], pri: number, msg: string, hostname: string): Buffer {
  if (kind === 'unix') return Buffer.from(`<${pri}>${msg}\n`, 'utf8');
  const buf = Buffer.from(`<${pri}>1 ${new Date().toISOString()} ${hostname} ${APP_NAME} ${process.pid} - - ${msg}`, 'utf8');
  return kind === 'tcp' ? Buffer.concat([Buffer.from(`${buf.length} `), buf]) : buf;
}

/** Sends the daemon's log lines and events to syslog without ever waiting for it. */
export class SyslogSender {
  readonly target: SyslogTarget;
  private readonly eventFacility: number;
  private readonly report: (line: string) => void;
  private readonly hostname = rfcHostname();
  private readonly name: string;
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private sent = 0;
  private dropped = 0;
  /** Dropped since the problem episode began (reported when it ends). */
  private episodeDropped = 0;
  /** What is wrong now: syslog unreachable ('down') or not keeping up ('slow'); reported once each time. */
  private problem: 'down' | 'slow' | null = null;
  private lastTrouble = -Infinity;
  private quietEpisode = false;
  private transport: Transport | null = null;
  private retryMs = RETRY_MIN_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private stableTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: SyslogOptions) {
    this.target = options.target;
    this.eventFacility = options.eventFacility ?? (FACILITIES[DEFAULT_EVENT_FACILITY] as number);
    this.report = options.report ?? (() => undefined);
    this.name = `syslog ${targetText(this.target)}`;
    const noLogger = this.target.kind === 'unix' ? loggerProblem() : null;
    if (noLogger) throw new SyslogError('ENOLOGGER', noLogger);
    this.connect();
  }

  /** Sends one of the daemon's log lines (facility daemon). */
  log(line: string, severity: Severity = 'info'): void {
    this.enqueue(LOG_FACILITY * 8 + SEVERITIES[severity], cleanText(line));
  }

  /** Sends one event as a JSON line (the event facility; `lost` as warning, the rest as info). */
  event(ev: ProcEvent): void {
    this.enqueue(this.eventFacility * 8 + (ev.event === 'lost' ? SEVERITIES.warning : SEVERITIES.info), eventMessage(ev));
  }

  /** Sends every event of a batch: a `'batch'` listener. */
  readonly batch = (batch: ProcEvent[]): void => {
    for (const ev of batch) this.event(ev);
  };

  /**
   * Sends every line of a batch: a `'lines'` listener (see `subscribeLines`). A line goes as it
   * is, without its newline; only one too long for a syslog message is parsed, to be cut.
   */
  readonly lines = (lines: LineBatch): void => {
    let start = 0;
    for (let i = 0; i < lines.ends.length; i++) {
      const end = lines.ends[i] as number;
      const pri = this.eventFacility * 8 + (lines.kinds[i] === LOST_KIND ? SEVERITIES.warning : SEVERITIES.info);
      const msg = end - 1 - start <= MAX_MSG_BYTES ? lines.buf.toString('utf8', start, end - 1) : eventMessage(JSON.parse(lines.buf.toString('utf8', start, end)) as ProcEvent);
      this.enqueue(pri, msg);
      start = end;
    }
  };

  stats(): SyslogStats {
    return {
      target: targetText(this.target),
      sent: this.sent,
      dropped: this.dropped,
      queuedBytes: this.queuedBytes,
      connected: this.transport?.ready() ?? false,
    };
  }

  /**
   * Hands over what is queued (if syslog takes it within `graceMs`), then closes. Never takes
   * longer than `graceMs` (plus the moment a killed logger takes to exit). Idempotent.
   */
  async close(graceMs = 250): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.retryTimer = null;
    this.stableTimer = null;
    const deadline = Date.now() + graceMs;
    // Wait for a transport still connecting, and for what is queued to be taken; the end of
    // the grace is left for the transport to finish (the logger to exit, the socket to close).
    const handOverBy = deadline - Math.min(50, graceMs / 4);
    for (let t = this.transport; t && (!t.ready() || this.queuedBytes > 0 || t.backlog() > 0) && Date.now() < handOverBy; t = this.transport) {
      this.pump();
      await new Promise((r) => setTimeout(r, 10));
    }
    const t = this.transport;
    this.transport = null;
    this.drop(this.queue.length - this.queueHead);
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    await t?.close(Math.max(10, deadline - Date.now()));
    if (this.dropped > 0) this.report(`${this.name}: ${this.dropped} messages dropped in all (${this.sent} sent)`);
  }

  // ------------------------------------------------------------------ queue

  private enqueue(pri: number, msg: string): void {
    if (this.closed) return;
    const buf = frame(this.target.kind, pri, msg, this.hostname);
    if (this.queuedBytes + buf.length > QUEUE_BYTES) {
      if (!this.problem) this.setProblem('slow', `not keeping up (${QUEUE_BYTES >> 10} KiB waiting); dropping messages until it does`);
      this.drop(1);
      return;
    }
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    this.pump();
  }

  private drop(n: number): void {
    this.dropped += n;
    this.episodeDropped += n;
  }

  /** Moves queued messages to the transport while it takes them. */
  private pump(): void {
    const t = this.transport;
    if (!t || !t.ready()) return;
    while (this.queueHead < this.queue.length && t.backlog() < HIGH_WATER) {
      const buf = this.queue[this.queueHead++] as Buffer;
      this.queuedBytes -= buf.length;
      t.write(buf, (ok) => {
        if (ok) this.sent++;
        else this.drop(1);
      });
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    if (this.problem === 'slow' && this.queuedBytes < QUEUE_BYTES / 2) this.clearProblem();
  }

  private setProblem(kind: 'down' | 'slow', what: string): void {
    if (this.problem === null) {
      this.episodeDropped = 0;
      // A syslog that keeps coming and going (a UDP target nobody listens on, say) is
      // reported once a minute at most: trouble soon after the last is not reported.
      this.quietEpisode = Date.now() - this.lastTrouble < REPORT_EVERY_MS;
    }
    this.problem = kind;
    this.lastTrouble = Date.now();
    if (!this.quietEpisode) this.report(`${this.name}: ${what}`);
  }

  private clearProblem(): void {
    if (!this.problem) return;
    this.problem = null;
    this.lastTrouble = Date.now();
    const n = this.episodeDropped;
    this.episodeDropped = 0;
    if (!this.quietEpisode) this.report(`${this.name}: sending again${n ? ` (${n} messages dropped meanwhile)` : ''}`);
  }

  // ------------------------------------------------------------------ connection

  private connect(): void {
    if (this.closed) return;
    const onReady = (): void => {
      this.pump();
      // Up for a while (not just accepted, then refused at once): back to the short retry, and
      // the trouble is over.
      this.stableTimer = setTimeout(() => {
        this.stableTimer = null;
        if (this.transport !== t || !t.ready()) return;
        this.retryMs = RETRY_MIN_MS;
        if (this.problem !== 'down') return;
        if (this.queuedBytes < QUEUE_BYTES / 2) this.clearProblem();
        else this.problem = 'slow'; // reachable again: "sending again" once the backlog is worked off
      }, STABLE_MS);
      this.stableTimer.unref();
    };
    const onDown = (why: string): void => {
      if (this.transport !== t) return;
      this.transport = null;
      if (this.stableTimer) clearTimeout(this.stableTimer);
      this.stableTimer = null;
      if (this.closed) return;
      if (this.problem !== 'down') this.setProblem('down', `${why}; retrying (messages wait, up to ${QUEUE_BYTES >> 10} KiB, then are dropped and counted)`);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, this.retryMs);
      this.retryTimer.unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    };
    const t = openTransport(this.target, { tag: APP_NAME, maxBytes: MAX_MESSAGE_BYTES }, { onReady, onDown, onDrain: () => this.pump() });
    this.transport = t;
  }
}
