/**
 * Publishes process events to NATS: subject `PREFIX.HOST.EVENT`, each message the event's
 * NDJSON line (from a `ProcConnector`, the reader's own bytes: never parsed). Core NATS, or JetStream with asynchronous acks. The `nats` client is
 * loaded only when a publisher starts, so `require('procmonitor')` stays light.
 *
 * Never slows the source: publishing is a memory copy; what the server has not yet confirmed
 * (or what waits for a connection) is bounded by `maxPendingBytes`, beyond which events are
 * dropped, counted, and reported in one `{"event":"lost","source":"nats"}` message once the
 * server has caught up.
 */
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import { CodedError, KIND_NAMES, toLine, type LineBatch, type LostEvent } from '../events';
import { isEventSource, subscribeLines, type EventSource } from '../source';
import { intOption } from '../options';

// ---------------------------------------------------------------------------------------------
// The part of the `nats` client (v2) used here. Its own typings need the DOM library, which
// this package does not compile against, and public types here never mention it.
// ---------------------------------------------------------------------------------------------

interface NcStatus {
  type: string;
  data: unknown;
}
interface NcMsg {
  subject: string;
  data: Uint8Array;
  headers?: { code: number; description: string };
}
interface NcStreamInfo {
  config: { name: string; subjects?: string[] };
}
interface NcJetStreamManager {
  streams: {
    info(name: string): Promise<NcStreamInfo>;
    add(cfg: { name: string; subjects: string[] }): Promise<NcStreamInfo>;
    update(name: string, cfg: { subjects: string[] }): Promise<NcStreamInfo>;
  };
}
interface NcConnection {
  publish(subject: string, data: Uint8Array, opts?: { reply: string }): void;
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: NcMsg) => void }): unknown;
  flush(): Promise<void>;
  close(): Promise<void>;
  closed(): Promise<void | Error>;
  isClosed(): boolean;
  getServer(): string;
  status(): AsyncIterable<NcStatus>;
  jetstreamManager(opts: { timeout: number }): Promise<NcJetStreamManager>;
}
interface NcConnectOptions {
  servers: string[];
  name: string;
  user?: string;
  pass?: string;
  token?: string;
  tls?: Record<string, never>;
  reconnect: boolean;
  maxReconnectAttempts: number;
  waitOnFirstConnect: boolean;
  reconnectDelayHandler: () => number;
  pingInterval: number;
  maxPingOut: number;
  timeout: number;
  noEcho: boolean;
}
interface NatsModule {
  connect(opts: NcConnectOptions): Promise<NcConnection>;
  createInbox(): string;
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

export interface NatsJetStreamOptions {
  /** Stream name (letters, digits, `-`, `_`). Created capturing `PREFIX.>` if missing; if it exists without those subjects, `PREFIX.>` is added. */
  stream: string;
  /** Milliseconds to wait for each publish's acknowledgement. Default 5000. */
  ackTimeoutMs?: number;
}

export interface NatsPublisherOptions {
  /**
   * Where events come from: a `LineSource` (a `ProcConnector`: each message is its line as the
   * reader wrote it, never parsed), or any emitter of `'batch'` (`ProcEvent[]`).
   */
  source: EventSource;
  /**
   * NATS servers: `nats://host[:port]`, `tls://host[:port]` (TLS required) or `host[:port]`
   * (port 4222 by default); an array and/or comma-separated lists. Credentials may be given in
   * the URL (`nats://user:pass@host`, `nats://token@host`), the same for every server.
   */
  servers: string | readonly string[];
  /** First subject token(s): subjects are `PREFIX.HOST.EVENT`. Default `'procmon'`. */
  subjectPrefix?: string;
  /** The host's name in subjects, escaped by `natsToken()`. Default `os.hostname()`. */
  hostname?: string;
  /** Publish with JetStream (a stream name, or options) instead of core NATS. */
  jetstream?: string | NatsJetStreamOptions;
  /**
   * Bytes of events held at most: waiting for a connection, or published but not yet confirmed
   * by the server. Beyond, events are dropped and counted. Default 8 MiB.
   */
  maxPendingBytes?: number;
  /** First reconnection delay; it doubles per failed attempt up to `reconnectMaxMs` (±20% jitter). Default 250. */
  reconnectMinMs?: number;
  /** Longest delay between reconnection attempts. Default 10000. */
  reconnectMaxMs?: number;
  /** On `close()`, how long to wait for the server to confirm what is pending. Default 2000. */
  closeTimeoutMs?: number;
  /** Credentials (instead of putting them in the URL). */
  user?: string;
  pass?: string;
  token?: string;
  /** Connection name shown by the server (`nats server report connections`). Default `procmonitor@HOSTNAME`. */
  name?: string;
  /** Receives one line per state change (connected, disconnected, reconnecting, losses). Default: silent. */
  log?: (line: string) => void;
}

/** `idle` (before start()), `connecting` (no connection yet), `connected` (publishing), `disconnected` (reconnecting), `closed`. */
export type NatsPublisherState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface NatsPublisherStats {
  state: NatsPublisherState;
  /** The server connected to (`host:port`), or null. */
  server: string | null;
  /** Messages handed to the connection (events and loss reports). */
  published: number;
  /** Of those, confirmed by the server (core: a PING/PONG after them; JetStream: acknowledged). */
  confirmed: number;
  /** Events never published: the pending buffer was full, or the event exceeded the server's max_payload. */
  dropped: number;
  /**
   * JetStream: events published whose acknowledgement failed or timed out, or never came
   * because the connection broke; some may have been stored. (Core NATS publishes what the
   * server had not confirmed when the connection broke again after reconnecting: never
   * counted here.)
   */
  unconfirmed: number;
  /** `lost` messages published. */
  lostReports: number;
  /** Events dropped or unconfirmed and not yet reported in a `lost` message. */
  unreported: number;
  /** Messages waiting for a connection. */
  queued: number;
  /** Bytes queued plus bytes published and not yet confirmed. */
  pendingBytes: number;
  /** Successful reconnections. */
  reconnects: number;
}

export interface NatsPublisherEvents {
  /** Connected (first time or again) and ready to publish; the server's `host:port`. */
  connect: [server: string];
  /** The connection broke; events are buffered (up to `maxPendingBytes`) meanwhile. */
  disconnect: [server: string];
  /** About to try a server again (attempt 1, 2, ... since the connection was lost). */
  reconnecting: [server: string, attempt: number];
  /** A `lost` message (`source: "nats"`) was published. */
  lost: [LostEvent];
  /** A failure worth knowing (connection refused, JetStream errors). Only emitted when listened to; always logged. */
  error: [Error];
  /** After `close()`. */
  close: [];
}

export type NatsPublisherErrorCode = 'EINVAL' | 'ENOCLIENT';

/** Bad options (`EINVAL`) or the `nats` client missing (`ENOCLIENT`). */
export class NatsPublisherError extends CodedError<NatsPublisherErrorCode> {}

/** A parsed server address. */
export interface NatsServerAddress {
  /** `nats://host:port` or `tls://host:port`, without credentials. */
  url: string;
  /** `host:port` (IPv6 in brackets). */
  hostport: string;
  tls: boolean;
  user?: string;
  pass?: string;
  token?: string;
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

export const DEFAULT_NATS_PREFIX = 'procmon';
const TOKEN = /^[A-Za-z0-9_-]+$/;
const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * A string as one NATS subject token: every character other than ASCII letters, digits, `-`
 * and `_` becomes `_` (`web-1.example.com` -> `web-1_example_com`); empty becomes `unknown`.
 */
export function natsToken(s: string): string {
  const t = String(s).replace(/[^A-Za-z0-9_-]/g, '_');
  return t === '' ? 'unknown' : t;
}

/** Parses NATS server addresses (arrays and comma lists). Throws a NatsPublisherError (EINVAL). */
export function parseNatsServers(list: string | readonly string[]): NatsServerAddress[] {
  const items = (typeof list === 'string' ? [list] : Array.isArray(list) ? list : [])
    .flatMap((s: unknown) => (typeof s === 'string' ? s.split(',') : [s]))
    .map((s: unknown) => (typeof s === 'string' ? s.trim() : s));
  if (items.length === 0 || items.every((s) => s === '')) throw new NatsPublisherError('EINVAL', 'no NATS server given (nats://host[:port])');
  return items.map((s) => {
    if (typeof s !== 'string' || s === '') throw new NatsPublisherError('EINVAL', 'empty NATS server in the list');
    return parseServer(s);
  });
}

function parseServer(text: string): NatsServerAddress {
  const bad = (why: string) => new NatsPublisherError('EINVAL', `bad NATS server "${text}": ${why} (expected nats://host[:port] or tls://host[:port])`);
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? text : `nats://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw bad('not a URL');
  }
  if (u.protocol !== 'nats:' && u.protocol !== 'tls:') throw bad(`unsupported scheme ${u.protocol.slice(0, -1)}`);
  if (u.hostname === '') throw bad('no host');
  if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) throw bad('unexpected path or query');
  if (/[\s]/.test(u.hostname)) throw bad('bad host');
  const port = u.port === '' ? 4222 : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('port must be 1-65535');
  const tls = u.protocol === 'tls:';
  const hostport = `${u.hostname}:${port}`;
  const addr: NatsServerAddress = { url: `${tls ? 'tls' : 'nats'}://${hostport}`, hostport, tls };
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  if (user && u.password !== '') {
    addr.user = user;
    addr.pass = pass;
  } else if (user) {
    addr.token = user;
  }
  return addr;
}

// ---------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------

interface Msg {
  subject: string;
  data: Buffer;
  /** Events this message stands for if lost: 1 for an event, `count` for a loss report. */
  units: number;
  /** 1 for an event, 0 for a loss report. */
  events: number;
}

interface Mark {
  units: number;
  events: number;
  bytes: number;
  msgs: number;
}

function intOpt(v: number | undefined, name: string, def: number, min: number, max = 0x7fffffff): number {
  return intOption(v, name, def, min, max, (m) => new NatsPublisherError('EINVAL', m));
}

/** The event name of a line whose kind the reader did not know (a newer kernel's event): the one line that is parsed. */
function eventNameOf(line: Buffer): string {
  try {
    const ev = JSON.parse(line.toString('utf8')) as { event?: unknown };
    return typeof ev.event === 'string' && ev.event !== '' ? ev.event : 'other';
  } catch {
    return 'other';
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const msg = err.message || (typeof code === 'string' || typeof code === 'number' ? String(code) : err.name);
    return typeof code === 'string' && code !== '' && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  return String(err);
}

/** Whether subject pattern `p` matches every subject that `s` (possibly with wildcards) matches. */
function covers(p: string, s: string): boolean {
  const a = p.split('.');
  const b = s.split('.');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '>') return b.length > i;
    if (i >= b.length || b[i] === '>') return false;
    if (a[i] === '*') continue;
    if (a[i] !== b[i] || b[i] === '*') return false;
  }
  return a.length === b.length;
}

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

let natsModule: NatsModule | null = null;
function loadNats(): NatsModule {
  if (natsModule) return natsModule;
  try {
    natsModule = require('nats') as NatsModule;
  } catch (err) {
    throw new NatsPublisherError('ENOCLIENT', `the nats client could not be loaded (npm install nats): ${errText(err)}`, { cause: err });
  }
  return natsModule;
}

/**
 * Publishes the events of a source to NATS. `start()` begins connecting (in the background,
 * forever, with backoff); `close()` stops. Never throws on the event path.
 */
export class NatsPublisher extends EventEmitter<NatsPublisherEvents> {
  /** The servers, without credentials. */
  readonly servers: readonly string[];
  readonly subjectPrefix: string;
  /** The host token in subjects (`natsToken(hostname)`). */
  readonly host: string;
  /** The JetStream stream, or null for core NATS. */
  readonly stream: string | null;

  private readonly source: EventSource;
  /** Stops taking the source's lines (set by start()). */
  private unsubscribe: (() => void) | null = null;
  private readonly addrs: NatsServerAddress[];
  private readonly creds: { user?: string; pass?: string; token?: string; tls: boolean };
  private readonly maxPending: number;
  private readonly ackTimeoutMs: number;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private readonly closeTimeoutMs: number;
  private readonly clientName: string;
  private readonly logFn: (line: string) => void;
  private readonly subjects = new Map<string, string>();

  private state: NatsPublisherState = 'idle';
  private nc: NcConnection | null = null;
  /** JetStream: the subject prefix acks come back on (`INBOX.seq`), subscribed per connection. */
  private ackInbox = '';
  /** Connected and (JetStream) the stream is in place: messages go out. */
  private ready = false;
  /** Bumped on every (re)connection and disconnection: stale async work checks it. */
  private gen = 0;
  private server: string | null = null;
  private closing: Promise<void> | null = null;
  private sleeper: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  private reconnectAttempt = 0;
  private jitter = { attempt: -1, factor: 1 };

  private readonly queue: Msg[] = [];
  private qHead = 0;
  private qBytes = 0;
  /** Dropping until the server catches up (pending at most half the bound). */
  private dropping = false;
  /** Events to report in the next `lost` message. */
  private missed = 0;

  // Core NATS: published and confirmed watermarks; flush marks; the messages published on
  // this connection and not yet confirmed (from sentHead on), to publish again if it breaks.
  private pub: Mark = { units: 0, events: 0, bytes: 0, msgs: 0 };
  private settled: Mark = { units: 0, events: 0, bytes: 0, msgs: 0 };
  private flushesOut = 0;
  private lastMarkBytes = 0;
  private readonly sent: Msg[] = [];
  private sentHead = 0;
  // JetStream: published, waiting for the ack (by sequence, so in order of deadline).
  private ackSeq = 0;
  private readonly acks = new Map<number, { m: Msg; deadline: number }>();
  private ackTimer: NodeJS.Timeout | null = null;
  private inflight = 0;
  private inflightBytes = 0;
  private idleWaiters: Array<() => void> = [];

  private readonly counters = { published: 0, confirmed: 0, dropped: 0, unconfirmed: 0, lostReports: 0, reconnects: 0 };

  constructor(options: NatsPublisherOptions) {
    super();
    if (!options || typeof options !== 'object') throw new NatsPublisherError('EINVAL', 'createNatsPublisher needs an options object');
    if (!isEventSource(options.source)) {
      throw new NatsPublisherError('EINVAL', 'options.source must be an EventEmitter of "batch" events (e.g. a ProcConnector)');
    }
    this.source = options.source;
    this.addrs = parseNatsServers(options.servers);
    this.servers = this.addrs.map((a) => a.url);
    const tlsKinds = new Set(this.addrs.map((a) => a.tls));
    if (tlsKinds.size > 1) throw new NatsPublisherError('EINVAL', 'mix of tls:// and nats:// servers: use one scheme for all');
    const credKeys = new Set(this.addrs.map((a) => JSON.stringify([a.user, a.pass, a.token])));
    if (credKeys.size > 1) throw new NatsPublisherError('EINVAL', 'the NATS servers carry different credentials: give the same (or none) in every URL');
    const first = this.addrs[0] as NatsServerAddress;
    for (const k of ['user', 'pass', 'token'] as const) {
      const v = options[k];
      if (v !== undefined && typeof v !== 'string') throw new NatsPublisherError('EINVAL', `${k} must be a string`);
    }
    this.creds = {
      tls: first.tls,
      ...((options.user ?? first.user) ? { user: options.user ?? first.user } : {}),
      ...((options.pass ?? first.pass) ? { pass: options.pass ?? first.pass } : {}),
      ...((options.token ?? first.token) ? { token: options.token ?? first.token } : {}),
    };
    const prefix = options.subjectPrefix ?? DEFAULT_NATS_PREFIX;
    if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
      throw new NatsPublisherError('EINVAL', `bad subject prefix "${String(prefix)}": tokens of letters, digits, - and _, separated by dots (e.g. procmon or org.procmon)`);
    }
    this.subjectPrefix = prefix;
    const hostname = options.hostname ?? os.hostname();
    if (typeof hostname !== 'string') throw new NatsPublisherError('EINVAL', 'hostname must be a string');
    this.host = natsToken(hostname);
    let js: NatsJetStreamOptions | null = null;
    if (typeof options.jetstream === 'string') js = { stream: options.jetstream };
    else if (options.jetstream !== undefined) {
      if (!options.jetstream || typeof options.jetstream !== 'object') throw new NatsPublisherError('EINVAL', 'jetstream must be a stream name or { stream }');
      js = options.jetstream;
    }
    if (js && (typeof js.stream !== 'string' || !TOKEN.test(js.stream))) {
      throw new NatsPublisherError('EINVAL', `bad JetStream stream name "${String(js.stream)}": letters, digits, - and _ only`);
    }
    this.stream = js ? js.stream : null;
    this.ackTimeoutMs = intOpt(js?.ackTimeoutMs, 'jetstream.ackTimeoutMs', 5000, 1);
    this.maxPending = intOpt(options.maxPendingBytes, 'maxPendingBytes', 8 << 20, 1);
    this.minDelay = intOpt(options.reconnectMinMs, 'reconnectMinMs', 250, 1);
    this.maxDelay = intOpt(options.reconnectMaxMs, 'reconnectMaxMs', 10000, this.minDelay);
    this.closeTimeoutMs = intOpt(options.closeTimeoutMs, 'closeTimeoutMs', 2000, 0);
    const name = options.name ?? `procmonitor@${hostname}`;
    if (typeof name !== 'string') throw new NatsPublisherError('EINVAL', 'name must be a string');
    this.clientName = name;
    const log = options.log;
    this.logFn = typeof log === 'function' ? log : () => {};
  }

  /** The subject of an event kind: `PREFIX.HOST.EVENT`. */
  subject(event: string): string {
    let s = this.subjects.get(event);
    if (s === undefined) {
      s = `${this.subjectPrefix}.${this.host}.${natsToken(event)}`;
      this.subjects.set(event, s);
    }
    return s;
  }

  /**
   * Starts taking events from the source and connecting (in the background: a server that is
   * down is retried forever, events meanwhile held up to `maxPendingBytes`). Throws a
   * NatsPublisherError (`ENOCLIENT`) only if the `nats` client cannot be loaded.
   */
  start(): this {
    if (this.state !== 'idle') return this;
    const nats = loadNats();
    this.state = 'connecting';
    this.unsubscribe = subscribeLines(this.source, (lines) => this.take(lines));
    this.log(`connecting to ${this.servers.join(', ')} (subjects ${this.subjectPrefix}.${this.host}.<event>${this.stream ? `, JetStream stream ${this.stream}` : ''})`);
    this.run(nats).catch((err: unknown) => this.log(`stopped: ${errText(err)}`));
    return this;
  }

  /**
   * Stops taking events, waits up to `closeTimeoutMs` for the server to confirm what is
   * pending, and closes the connection. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose();
    return this.closing;
  }

  /** Counters and state. */
  stats(): NatsPublisherStats {
    return {
      state: this.state,
      server: this.ready ? this.server : null,
      published: this.counters.published,
      confirmed: this.counters.confirmed,
      dropped: this.counters.dropped,
      unconfirmed: this.counters.unconfirmed,
      lostReports: this.counters.lostReports,
      unreported: this.missed,
      queued: this.queue.length - this.qHead,
      pendingBytes: this.pendingBytes(),
      reconnects: this.counters.reconnects,
    };
  }

  // ----- connection lifecycle -----

  private log(line: string): void {
    try {
      this.logFn(`nats: ${line}`);
    } catch {
      /* a failing logger must not break publishing */
    }
  }

  private fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.tell('error', err);
  }

  /** Emits to the user's listeners; one that throws is logged and never breaks the publisher. */
  private tell<K extends keyof NatsPublisherEvents>(name: K, ...args: NatsPublisherEvents[K]): void {
    try {
      (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args);
    } catch (err) {
      this.log(`a '${name}' listener threw: ${errText(err)}`);
    }
  }

  private delayFor(attempt: number): number {
    if (this.jitter.attempt !== attempt) this.jitter = { attempt, factor: 0.8 + Math.random() * 0.4 };
    const base = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(30, Math.max(0, attempt - 1)));
    return Math.round(Math.min(this.maxDelay, base * this.jitter.factor));
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = null;
        resolve();
      }, ms);
      this.sleeper = { timer, resolve };
    });
  }

  private get stopped(): boolean {
    return this.closing !== null;
  }

  /** Connects, and connects again whenever the client gives up on a connection; until close(). */
  private async run(nats: NatsModule): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let nc: NcConnection;
      try {
        nc = await nats.connect({
          servers: this.addrs.map((a) => a.hostport),
          name: this.clientName,
          ...(this.creds.user !== undefined ? { user: this.creds.user } : {}),
          ...(this.creds.pass !== undefined ? { pass: this.creds.pass } : {}),
          ...(this.creds.token !== undefined ? { token: this.creds.token } : {}),
          ...(this.creds.tls ? { tls: {} } : {}),
          reconnect: true,
          maxReconnectAttempts: -1,
          waitOnFirstConnect: false,
          reconnectDelayHandler: () => this.delayFor(this.reconnectAttempt),
          pingInterval: 20000,
          maxPingOut: 3,
          timeout: 10000,
          noEcho: true,
        });
      } catch (err) {
        attempt++;
        const wait = this.delayFor(attempt);
        if (isPow2(attempt)) this.log(`cannot connect to ${this.servers.join(', ')}: ${errText(err)}; retrying in ${(wait / 1000).toFixed(1)} s (attempt ${attempt})`);
        this.fail(err instanceof Error ? err : new Error(String(err)));
        this.tell('reconnecting', this.servers.join(','), attempt);
        await this.sleep(wait);
        continue;
      }
      if (this.stopped) {
        await nc.close().catch(() => {});
        return;
      }
      attempt = 0;
      this.nc = nc;
      this.server = nc.getServer();
      if (this.stream) {
        // Acks come back as replies: one subscription for all, no request object per message.
        this.ackInbox = nats.createInbox();
        nc.subscribe(`${this.ackInbox}.*`, { callback: (err, msg) => (err ? undefined : this.onAck(msg)) });
      }
      void this.watch(nc);
      this.log(`connected to ${this.server}`);
      this.becomeReady(nc, ++this.gen).catch((err: unknown) => this.log(`${errText(err)}`));
      const why = await nc.closed();
      if (this.nc === nc) this.nc = null;
      if (this.stopped) return;
      this.lostConnection();
      this.log(`connection closed${why instanceof Error ? `: ${errText(why)}` : ''}; connecting again`);
      this.state = 'connecting';
    }
  }

  /** Follows the client's status: disconnect, reconnecting, reconnect, server errors. */
  private async watch(nc: NcConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (this.stopped) continue;
        const data = typeof s.data === 'string' ? s.data : String(s.data);
        switch (s.type) {
          case 'disconnect':
            this.log(`disconnected from ${data}; holding up to ${this.maxPending} bytes of events meanwhile`);
            this.lostConnection();
            this.state = 'disconnected';
            this.tell('disconnect', data);
            break;
          case 'reconnecting':
            this.reconnectAttempt++;
            if (isPow2(this.reconnectAttempt)) this.log(`reconnecting to ${data} (attempt ${this.reconnectAttempt})`);
            this.tell('reconnecting', data, this.reconnectAttempt);
            break;
          case 'reconnect':
            this.reconnectAttempt = 0;
            this.counters.reconnects++;
            this.server = nc.getServer();
            this.log(`reconnected to ${this.server}`);
            this.becomeReady(nc, ++this.gen).catch((err: unknown) => this.log(`${errText(err)}`));
            break;
          case 'error':
            this.log(`server error: ${data}`);
            break;
          case 'ldm':
            this.log(`${data} is shutting down (lame duck mode)`);
            break;
          default:
            break;
        }
      }
    } catch (err) {
      this.log(`status: ${errText(err)}`);
    }
  }

  /**
   * The connection is gone. Core NATS: what the server had not confirmed goes back to the
   * front of the queue, to be published again on the next connection (the server may have
   * had some of it: a subscriber can see such an event twice, never miss it uncounted).
   * JetStream: acks for the old connection never arrive on a new one: written off.
   */
  private lostConnection(): void {
    this.gen++;
    this.ready = false;
    if (this.state === 'connected') this.state = 'disconnected';
    if (!this.stream) this.requeueUnconfirmed();
    else this.writeOffAcks();
  }

  private requeueUnconfirmed(): void {
    const back = this.sent.length - this.sentHead;
    this.flushesOut = 0; // those of the old connection no longer count (see maybeFlush)
    if (back === 0) return;
    const rest = this.queue.length - this.qHead;
    const merged: Msg[] = new Array<Msg>(back + rest);
    for (let i = 0; i < back; i++) merged[i] = this.sent[this.sentHead + i] as Msg;
    for (let i = 0; i < rest; i++) merged[back + i] = this.queue[this.qHead + i] as Msg;
    this.queue.length = 0;
    for (const m of merged) this.queue.push(m);
    this.qHead = 0;
    this.qBytes += this.pub.bytes - this.settled.bytes;
    this.sent.length = 0;
    this.sentHead = 0;
    if (this.state !== 'closed')
      this.log(`${this.pub.events - this.settled.events} published event(s) not confirmed before the connection broke: publishing them again once reconnected`);
    this.settled = this.pub;
    this.lastMarkBytes = this.pub.bytes;
  }

  /** On (re)connection: ensure the stream (JetStream), then publish what waited. */
  private async becomeReady(nc: NcConnection, gen: number): Promise<void> {
    if (this.stream) {
      let attempt = 0;
      for (;;) {
        if (this.stopped || gen !== this.gen || nc.isClosed()) return;
        try {
          await this.ensureStream(nc);
          break;
        } catch (err) {
          attempt++;
          if (this.stopped || gen !== this.gen) return;
          if (isPow2(attempt)) this.log(`JetStream stream ${this.stream}: ${errText(err)}; retrying (attempt ${attempt})`);
          this.fail(err instanceof Error ? err : new Error(String(err)));
          await this.sleep(this.delayFor(attempt));
        }
      }
      if (this.stopped || gen !== this.gen) return;
    }
    this.ready = true;
    this.state = 'connected';
    this.tell('connect', this.server ?? '');
    this.drain();
  }

  private async ensureStream(nc: NcConnection): Promise<void> {
    const name = this.stream as string;
    const want = `${this.subjectPrefix}.>`;
    const jsm = await nc.jetstreamManager({ timeout: this.ackTimeoutMs });
    let info: NcStreamInfo;
    try {
      info = await jsm.streams.info(name);
    } catch (err) {
      const e = err as { code?: unknown; api_error?: { err_code?: number } };
      if (e.code !== '404' && e.api_error?.err_code !== 10059) throw err;
      await jsm.streams.add({ name, subjects: [want] });
      this.log(`JetStream stream ${name} created (subjects ${want})`);
      return;
    }
    const subjects = info.config.subjects ?? [];
    if (subjects.some((p) => covers(p, `${this.subjectPrefix}.${this.host}.*`))) {
      this.log(`JetStream stream ${name} ready (subjects ${subjects.join(' ')})`);
      return;
    }
    await jsm.streams.update(name, { subjects: [...subjects, want] });
    this.log(`JetStream stream ${name}: subject ${want} added`);
  }

  private async doClose(): Promise<void> {
    const wasStarted = this.state !== 'idle';
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer);
      this.sleeper.resolve();
      this.sleeper = null;
    }
    const nc = this.nc;
    if (nc && this.ready && this.closeTimeoutMs > 0) {
      // Give the server a moment to confirm (core: one PING after everything; JetStream: acks).
      let timer: NodeJS.Timeout | undefined;
      const mark = this.pub;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeTimeoutMs)));
      const idle = this.stream
        ? new Promise<void>((resolve) => (this.inflight === 0 ? resolve() : this.idleWaiters.push(resolve)))
        : nc.flush().then(
            () => this.confirmTo(mark),
            () => {},
          );
      await Promise.race([idle, timeout]);
      clearTimeout(timer);
    }
    this.ready = false;
    this.state = 'closed';
    this.gen++;
    this.nc = null;
    if (nc) await nc.close().catch(() => {});
    this.writeOffAcks();
    this.queue.length = 0;
    this.qHead = 0;
    this.qBytes = 0;
    this.sent.length = 0;
    this.sentHead = 0;
    if (wasStarted) this.log('closed');
    this.tell('close');
  }

  // ----- the event path -----

  private pendingBytes(): number {
    return this.qBytes + (this.stream ? this.inflightBytes : this.pub.bytes - this.settled.bytes);
  }

  /** Each line of a batch becomes one message, its subject from the line's kind: no parsing. */
  private take(lines: LineBatch): void {
    const n = lines.ends.length;
    let start = 0;
    for (let i = 0; i < n; i++) {
      const end = lines.ends[i] as number;
      const from = start;
      start = end;
      if (this.dropping && !this.recovered()) {
        // Not even copied: an outage costs next to nothing per event.
        this.missed++;
        this.counters.dropped++;
        continue;
      }
      // A copy: a queued message must not keep the whole batch's buffer alive.
      const data = Buffer.from(lines.buf.subarray(from, end));
      const kind = lines.kinds[i] as number;
      const name = KIND_NAMES[kind] ?? eventNameOf(data);
      this.offer({ subject: this.subject(name), data, units: 1, events: 1 });
    }
    if (this.ready && !this.stream) this.maybeFlush();
  }

  private offer(m: Msg): void {
    if (this.dropping && !this.recovered()) {
      this.drop(m);
      return;
    }
    if (this.pendingBytes() + m.data.length > this.maxPending) {
      this.dropping = true;
      this.log(`${this.ready ? 'the server is not keeping up' : 'not connected'} and ${this.pendingBytes()} bytes are pending: dropping events until it is back and caught up`);
      this.drop(m);
      return;
    }
    if (this.ready) {
      this.report();
      this.send(m);
    } else {
      this.queue.push(m);
      this.qBytes += m.data.length;
    }
  }

  private drop(m: Msg): void {
    this.missed += m.units;
    this.counters.dropped += m.events;
  }

  /** Ends a dropping episode once connected, nothing queued and at most half the bound pending. */
  private recovered(): boolean {
    if (!this.dropping) return true;
    if (!this.ready || this.qHead < this.queue.length || this.pendingBytes() > this.maxPending / 2) return false;
    this.dropping = false;
    return true;
  }

  /** Publishes the `lost` message owed, if any, when connected and caught up. */
  private report(): void {
    if (this.missed === 0 || !this.ready || this.dropping || this.qHead < this.queue.length) return;
    const ev: LostEvent = { event: 'lost', time: new Date().toISOString(), count: this.missed, source: 'nats' };
    this.missed = 0;
    this.counters.lostReports++;
    this.log(`reporting ${ev.count} lost events`);
    this.send({ subject: this.subject('lost'), data: Buffer.from(toLine(ev)), units: ev.count, events: 0 });
    this.tell('lost', ev);
  }

  private drain(): void {
    while (this.ready && this.qHead < this.queue.length) {
      const m = this.queue[this.qHead] as Msg;
      this.queue[this.qHead++] = undefined as unknown as Msg;
      this.qBytes -= m.data.length;
      this.send(m);
    }
    if (this.qHead >= this.queue.length) {
      this.queue.length = 0;
      this.qHead = 0;
    }
    if (!this.ready) return;
    if (this.recovered()) this.report();
    if (!this.stream) this.maybeFlush();
  }

  private send(m: Msg): void {
    const nc = this.nc;
    if (!nc) {
      this.drop(m);
      return;
    }
    if (this.stream) {
      const seq = ++this.ackSeq;
      try {
        nc.publish(m.subject, m.data, { reply: `${this.ackInbox}.${seq}` });
      } catch (err) {
        this.sendFailed(m, err);
        return;
      }
      this.counters.published++;
      this.inflight++;
      this.inflightBytes += m.data.length;
      this.acks.set(seq, { m, deadline: Date.now() + this.ackTimeoutMs });
      if (!this.ackTimer) {
        this.ackTimer = setInterval(() => this.expireAcks(), Math.min(250, this.ackTimeoutMs));
        this.ackTimer.unref();
      }
      return;
    }
    try {
      nc.publish(m.subject, m.data);
    } catch (err) {
      this.sendFailed(m, err);
      return;
    }
    this.counters.published++;
    this.sent.push(m);
    this.pub = { units: this.pub.units + m.units, events: this.pub.events + m.events, bytes: this.pub.bytes + m.data.length, msgs: this.pub.msgs + 1 };
  }

  /** publish() threw (closed connection, or a message larger than the server's max_payload). */
  private sendFailed(m: Msg, err: unknown): void {
    this.drop(m);
    this.publishFailed(err);
  }

  private failedLogged = 0;
  private publishFailed(err: unknown): void {
    const code = (err as { code?: unknown }).code;
    // No responders: the stream is gone (deleted, or a server without its storage): make it again.
    if (this.stream && code === '503' && this.ready && this.nc) {
      this.ready = false;
      this.becomeReady(this.nc, ++this.gen).catch((e: unknown) => this.log(`${errText(e)}`));
    }
    const now = Date.now();
    if (now - this.failedLogged > 10000) {
      this.failedLogged = now;
      this.log(`publish failed: ${errText(err)} (counted as lost)`);
    }
  }

  /** A JetStream ack (or error, or "no responders"), on `INBOX.seq`. */
  private onAck(msg: NcMsg): void {
    const seq = Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
    const e = this.acks.get(seq);
    if (!e) return;
    this.acks.delete(seq);
    let failure: (Error & { code?: string }) | null = null;
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      failure = Object.assign(new Error('no JetStream stream answered (503)'), { code: '503' });
    } else {
      try {
        const r = JSON.parse(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).toString('utf8')) as {
          stream?: string;
          error?: { code?: number; description?: string };
        };
        if (r.error) failure = Object.assign(new Error(`JetStream: ${r.error.description ?? 'error'}`), { code: String(r.error.code ?? '') });
        else if (r.stream !== this.stream && !this.otherStreamLogged) {
          this.otherStreamLogged = true;
          this.log(`JetStream stream ${String(r.stream)} stored an event, not ${this.stream as string}`);
        }
      } catch {
        failure = new Error('JetStream: unreadable acknowledgement');
      }
    }
    this.ackDone(e.m, failure);
  }

  private otherStreamLogged = false;

  private ackDone(m: Msg, failure: Error | null): void {
    if (failure) {
      this.counters.unconfirmed += m.events;
      this.missed += m.units;
    } else {
      this.counters.confirmed++;
    }
    // A failure first (it may take the publisher out of service), then the accounting.
    if (failure) this.publishFailed(failure);
    this.settleJs(m);
  }

  /** Acks past their deadline are failures (the event may or may not be stored). */
  private expireAcks(): void {
    const now = Date.now();
    for (const [seq, e] of this.acks) {
      if (e.deadline > now) break;
      this.acks.delete(seq);
      this.ackDone(e.m, Object.assign(new Error(`no JetStream acknowledgement within ${this.ackTimeoutMs} ms`), { code: 'TIMEOUT' }));
    }
    if (this.acks.size === 0 && this.ackTimer) {
      clearInterval(this.ackTimer);
      this.ackTimer = null;
    }
  }

  /** The connection is gone: acks still awaited will never come. */
  private writeOffAcks(): void {
    if (this.acks.size === 0) return;
    let events = 0;
    for (const e of this.acks.values()) {
      events += e.m.events;
      this.counters.unconfirmed += e.m.events;
      this.missed += e.m.units;
      this.settleJs(e.m);
    }
    this.acks.clear();
    if (this.ackTimer) {
      clearInterval(this.ackTimer);
      this.ackTimer = null;
    }
    if (events > 0 && this.state !== 'closed') this.log(`${events} published event(s) not acknowledged before the connection broke (counted as lost)`);
  }

  private settleJs(m: Msg): void {
    this.inflight--;
    this.inflightBytes -= m.data.length;
    if (this.inflight === 0 && this.idleWaiters.length) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
    if (this.recovered()) this.report();
  }

  /** Core NATS: a PING after what was published; its PONG confirms all of it. */
  private maybeFlush(): void {
    const nc = this.nc;
    if (!nc || this.pub.bytes === this.lastMarkBytes) return;
    if (this.flushesOut > 0 && this.pub.bytes - this.lastMarkBytes < this.maxPending / 8) return;
    if (this.flushesOut >= 4) return;
    const mark = this.pub;
    const gen = this.gen;
    this.lastMarkBytes = mark.bytes;
    this.flushesOut++;
    // A flush of a connection that broke since settles nothing: what it covered was put back
    // in the queue. One that fails on a live connection settles nothing either: a later
    // PONG confirms everything before it, or the break puts it back.
    const done = (ok: boolean) => {
      if (gen !== this.gen) return;
      this.flushesOut--;
      if (!ok) return;
      this.confirmTo(mark);
      if (this.ready && this.nc === nc) {
        this.maybeFlush();
        if (this.recovered()) this.report();
      }
    };
    nc.flush().then(
      () => done(true),
      () => done(false),
    );
  }

  /** Core NATS: the server confirmed everything published up to `mark`. */
  private confirmTo(mark: Mark): void {
    const d = mark.msgs - this.settled.msgs;
    if (d <= 0) return;
    this.counters.confirmed += d;
    this.sentHead += d;
    if (this.sentHead >= this.sent.length) {
      this.sent.length = 0;
      this.sentHead = 0;
    } else if (this.sentHead > 4096 && this.sentHead * 2 > this.sent.length) {
      this.sent.splice(0, this.sentHead);
      this.sentHead = 0;
    }
    this.settled = mark;
    this.lastMarkBytes = Math.max(this.lastMarkBytes, mark.bytes);
  }
}

/**
 * Creates a publisher of `options.source`'s events to NATS (subject `PREFIX.HOST.EVENT`, the
 * event's JSON line as the message). Call `start()`. Throws a NatsPublisherError (`EINVAL`)
 * for bad options, e.g. a server that is not `nats://host[:port]`.
 */
export function createNatsPublisher(options: NatsPublisherOptions): NatsPublisher {
  return new NatsPublisher(options);
}
