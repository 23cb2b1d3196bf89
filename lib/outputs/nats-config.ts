/**
 * The publisher's options, checked once into a `NatsConfig`; server addresses; subject names
 * (`PREFIX.HOST.EVENT`, from the kind each line already carries: an event is never parsed).
 */
import type { Pem } from '../pem';
import * as os from 'node:os';
import { CodedError, KIND_NAMES, type ProcEvent } from '../events';
import { intOption } from '../options';
import { isEventSource, type EventSource } from '../source';

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
  /** Credentials (instead of putting them in the URL, which `ps` shows). */
  user?: string;
  pass?: string;
  token?: string;
  /**
   * A credentials file's text (a user JWT and its NKey seed, as `nsc generate creds` writes
   * it): NATS's decentralised (operator, account, user) authentication.
   */
  creds?: string | Buffer;
  /** An NKey seed (`SU...`), for a server that lists the user's public NKey. */
  nkeySeed?: string | Buffer;
  /**
   * TLS to the servers (on for `tls://` URLs too): `ca` to trust instead of the system's
   * authorities, `cert` and `key` (PEM) for servers that verify clients.
   */
  tls?: { ca?: Pem; cert?: Pem; key?: Pem };
  /** Connection name shown by the server (`nats server report connections`). Default `procmonitor@HOSTNAME`. */
  name?: string;
  /** Receives one line per state change (connected, disconnected, reconnecting, losses). Default: silent. */
  log?: (line: string) => void;
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

/** The options, checked: what the parts of a publisher are made from. */
export interface NatsConfig {
  source: EventSource;
  addrs: NatsServerAddress[];
  /** The servers' URLs, without credentials. */
  servers: string[];
  creds: { user?: string; pass?: string; token?: string; creds?: Uint8Array; nkeySeed?: Uint8Array; tls: boolean; tlsOptions?: { ca?: Pem; cert?: Pem; key?: Pem } };
  subjectPrefix: string;
  /** The host token in subjects (`natsToken(hostname)`). */
  host: string;
  /** The JetStream stream, or null for core NATS. */
  stream: string | null;
  ackTimeoutMs: number;
  maxPending: number;
  minDelay: number;
  maxDelay: number;
  closeTimeoutMs: number;
  clientName: string;
  log: (line: string) => void;
}

/** Checks the options (in this order: tests rely on which error comes first). Throws a NatsPublisherError (EINVAL). */
export function natsConfig(options: NatsPublisherOptions): NatsConfig {
  if (!options || typeof options !== 'object') throw new NatsPublisherError('EINVAL', 'createNatsPublisher needs an options object');
  if (!isEventSource(options.source)) {
    throw new NatsPublisherError('EINVAL', 'options.source must be an EventEmitter of "batch" events (e.g. a ProcConnector)');
  }
  const addrs = parseNatsServers(options.servers);
  const creds = credentials(options, addrs);
  const subjectPrefix = options.subjectPrefix ?? DEFAULT_NATS_PREFIX;
  if (typeof subjectPrefix !== 'string' || !PREFIX.test(subjectPrefix)) {
    throw new NatsPublisherError('EINVAL', `bad subject prefix "${String(subjectPrefix)}": tokens of letters, digits, - and _, separated by dots (e.g. procmon or org.procmon)`);
  }
  const hostname = options.hostname ?? os.hostname();
  if (typeof hostname !== 'string') throw new NatsPublisherError('EINVAL', 'hostname must be a string');
  const js = jetStreamOptions(options.jetstream);
  const bad = (m: string) => new NatsPublisherError('EINVAL', m);
  const ackTimeoutMs = intOption(js?.ackTimeoutMs, 'jetstream.ackTimeoutMs', 5000, 1, undefined, bad);
  const maxPending = intOption(options.maxPendingBytes, 'maxPendingBytes', 8 << 20, 1, undefined, bad);
  const minDelay = intOption(options.reconnectMinMs, 'reconnectMinMs', 250, 1, undefined, bad);
  const maxDelay = intOption(options.reconnectMaxMs, 'reconnectMaxMs', 10000, minDelay, undefined, bad);
  const closeTimeoutMs = intOption(options.closeTimeoutMs, 'closeTimeoutMs', 2000, 0, undefined, bad);
  const clientName = options.name ?? `procmonitor@${hostname}`;
  if (typeof clientName !== 'string') throw new NatsPublisherError('EINVAL', 'name must be a string');
  const log = options.log;
  return {
    source: options.source,
    addrs,
    servers: addrs.map((a) => a.url),
    creds,
    subjectPrefix,
    host: natsToken(hostname),
    stream: js ? js.stream : null,
    ackTimeoutMs,
    maxPending,
    minDelay,
    maxDelay,
    closeTimeoutMs,
    clientName,
    log: typeof log === 'function' ? log : () => {},
  };
}

/** One scheme and one set of credentials for all servers; options override the URLs'. */
function credentials(options: NatsPublisherOptions, addrs: NatsServerAddress[]): NatsConfig['creds'] {
  const tlsKinds = new Set(addrs.map((a) => a.tls));
  if (tlsKinds.size > 1) throw new NatsPublisherError('EINVAL', 'mix of tls:// and nats:// servers: use one scheme for all');
  const credKeys = new Set(addrs.map((a) => JSON.stringify([a.user, a.pass, a.token])));
  if (credKeys.size > 1) throw new NatsPublisherError('EINVAL', 'the NATS servers carry different credentials: give the same (or none) in every URL');
  const first = addrs[0] as NatsServerAddress;
  for (const k of ['user', 'pass', 'token'] as const) {
    const v = options[k];
    if (v !== undefined && typeof v !== 'string') throw new NatsPublisherError('EINVAL', `${k} must be a string`);
  }
  const bytes = (v: unknown, name: string): Uint8Array | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' && !Buffer.isBuffer(v)) throw new NatsPublisherError('EINVAL', `${name} must be a string or a Buffer`);
    return Buffer.from(typeof v === 'string' ? v.trim() : v.toString('utf8').trim());
  };
  const jwtCreds = bytes(options.creds, 'creds');
  if (jwtCreds && !/-----BEGIN NATS USER JWT-----[\s\S]+-----BEGIN USER NKEY SEED-----/.test(Buffer.from(jwtCreds).toString('utf8'))) {
    throw new NatsPublisherError('EINVAL', 'creds is not a NATS credentials file (a user JWT, then its NKey seed)');
  }
  const nkeySeed = bytes(options.nkeySeed, 'nkeySeed');
  if (nkeySeed && !/^SU[A-Z2-7]{56}$/.test(Buffer.from(nkeySeed).toString('utf8')))
    throw new NatsPublisherError('EINVAL', 'nkeySeed is not a user NKey seed (SU followed by 56 base32 characters)');
  const user = options.user ?? first.user;
  const token = options.token ?? first.token;
  const ways = [jwtCreds && 'creds', nkeySeed && 'nkeySeed', user && 'user and pass', token && 'token'].filter(Boolean);
  if (ways.length > 1) throw new NatsPublisherError('EINVAL', `give one way to authenticate, not ${ways.join(' and ')}`);
  const tlsOptions = options.tls;
  if (tlsOptions !== undefined) {
    if (typeof tlsOptions !== 'object' || tlsOptions === null) throw new NatsPublisherError('EINVAL', 'tls must be { ca?, cert?, key? }');
    if ((tlsOptions.cert === undefined) !== (tlsOptions.key === undefined)) throw new NatsPublisherError('EINVAL', 'tls.cert and tls.key go together');
  }
  return {
    tls: first.tls || tlsOptions !== undefined,
    ...(user ? { user } : {}),
    ...((options.pass ?? first.pass) ? { pass: options.pass ?? first.pass } : {}),
    ...(token ? { token } : {}),
    ...(jwtCreds ? { creds: jwtCreds } : {}),
    ...(nkeySeed ? { nkeySeed } : {}),
    ...(tlsOptions ? { tlsOptions } : {}),
  };
}

function jetStreamOptions(v: NatsPublisherOptions['jetstream']): NatsJetStreamOptions | null {
  let js: NatsJetStreamOptions | null = null;
  if (typeof v === 'string') js = { stream: v };
  else if (v !== undefined) {
    if (!v || typeof v !== 'object') throw new NatsPublisherError('EINVAL', 'jetstream must be a stream name or { stream }');
    js = v;
  }
  if (js && (typeof js.stream !== 'string' || !TOKEN.test(js.stream))) {
    throw new NatsPublisherError('EINVAL', `bad JetStream stream name "${String(js.stream)}": letters, digits, - and _ only`);
  }
  return js;
}

/** Subjects `PREFIX.HOST.EVENT`, made once per event name. */
export class SubjectNames {
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly prefix: string,
    private readonly host: string,
  ) {}

  /** The subject of an event name. */
  of(event: string): string {
    let s = this.cache.get(event);
    if (s === undefined) {
      s = `${this.prefix}.${this.host}.${natsToken(event)}`;
      this.cache.set(event, s);
    }
    return s;
  }

  /**
   * The subject of a line, from the kind it came with. A kind the reader does not know (it
   * never sends one) is named after the event object a `'batch'` source gave, or `other`.
   */
  ofLine(kind: number, ev: ProcEvent | undefined): string {
    const name = KIND_NAMES[kind] ?? (ev as { event?: unknown } | undefined)?.event;
    return this.of(typeof name === 'string' && name !== '' ? name : 'other');
  }
}
