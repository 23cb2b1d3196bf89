import * as crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { CodedError, toLine, type LineBatch, type LostEvent, type ProcessRecord, type ProcEvent } from '../events';
import { isEventSource, subscribeLines, type EventSource } from '../source';
export type { BatchSource, EventSource, LineSource } from '../source';
import { checkKeyPair, parseCertificates, parsePrivateKey, subjectName, type Pem } from '../pem';
import { readSecretFile } from '../secret';
import { intOption as intOptionOf } from '../options';
import { LogTally } from './log-tally';
import { AuthGate, prefixOf } from './auth-gate';
import { loadBinding } from '../native';
import { TokenBuckets } from './buckets';
import { IdResolver, lookupIdSync, SubordinateIds } from './accounts';
import { readProcPolicy, seesOnlyOwn, type PeerVisibility, type ProcPolicy } from './visibility';
import { lineOffset, numberLines, makeFilter, ReplayRing, select, type Filter } from './replay';
import {
  AUTH_FAILED,
  AUTH_SUCCESS,
  AUTH_TIMEOUT,
  badRequestLine,
  CLIENT_CERT_REFUSED,
  MAX_PASSWORD_BYTES,
  MAX_REQUEST_BYTES,
  parseRequest,
  PASSWORD_PROMPT,
  tooManyClientsLine,
  tooManyForUserLine,
  tooManyPendingLine,
  TOO_MANY_FILES,
  type ClientRequest,
} from '../protocol';

/** File descriptors kept free for the server's own work (the connector's /proc reads, logs). */
export const FD_RESERVE = 8;

// ---------------------------------------------------------------------------------------------
// Options and types
// ---------------------------------------------------------------------------------------------

export interface UnixTransportOptions {
  /** Path of the socket file. A live socket there is an error; a stale one is replaced. */
  path: string;
  /** File mode of the socket (who may connect). Default `0o666`, as in the seed. */
  mode?: number;
  /** Group (name or gid) to give the socket file; e.g. with mode `0o660`. Default: unchanged. */
  group?: string | number;
}

export interface TcpTransportOptions {
  /** Port to listen on; 0 picks a free one (see `address()`). */
  port: number;
  /**
   * Address to bind. Default `'0.0.0.0'` (every IPv4 interface, like the seed); use
   * `'127.0.0.1'` for local clients only (e.g. behind an SSH tunnel) or `'::'` for IPv6 too.
   */
  host?: string;
  /** The password clients must send. Exactly one of `password`, `passwordFile`, `passwordEnv` is required. */
  password?: string;
  /** A file holding the password (one trailing newline is ignored), so it need not sit in argv. */
  passwordFile?: string;
  /** The name of an environment variable holding the password. */
  passwordEnv?: string;
  /**
   * Serve TLS on this port: the password handshake then runs inside TLS. A connection that
   * has not finished the TLS handshake counts as pending (`maxPending`, `authTimeoutMs`).
   */
  tls?: TcpTlsOptions;
}

export interface TcpTlsOptions {
  /** The server's certificate, PEM (may be followed by its intermediate CA certificates). */
  cert: Pem;
  /** Its private key, PEM, unencrypted. */
  key: Pem;
  /**
   * CA certificate(s), PEM. When given, client certificates are required and verified (the
   * effect of `requestCert` + `rejectUnauthorized`): a client with none, or with one not signed
   * by these CAs, is sent `CLIENT_CERT_REFUSED` right after the TLS handshake and closed
   * (never prompted for the password), and the reason is logged.
   */
  ca?: Pem | Pem[];
}

export interface BroadcastServerOptions {
  /**
   * Where events come from: a `LineSource` (a `ProcConnector`: its lines go out as they are,
   * never parsed), or any emitter of `'batch'` (`ProcEvent[]`), serialised once.
   */
  source: EventSource;
  /** Serve a Unix domain socket (no handshake: a client gets the stream at once). */
  unix?: UnixTransportOptions;
  /** Serve TCP with the seed's password handshake. A TCP server without a password is refused. */
  tcp?: TcpTransportOptions;
  /** Streaming clients at most, over both transports. Default 10. */
  maxClients?: number;
  /**
   * Slots that local users other than root and the server's own user (over the Unix socket,
   * told by SO_PEERCRED) leave free between them: they can never fill the server. Default 2
   * (at most maxClients - 1).
   */
  reservedClients?: number;
  /** Unix-socket clients one user (other than root and the server's own) may have at once. Default maxClients / 4, rounded up. */
  maxClientsPerUser?: number;
  /**
   * Request lines a peer (a local user other than root and the server's own, a TCP client's
   * network) may send a second, in bursts of 5 seconds' worth; beyond, its requests are
   * answered later (its events wait in the ring meanwhile). Default 2.
   */
  requestsPerSecond?: number;
  /**
   * Bytes a second of requested answers (snapshots, resumed backlogs) one peer (a local user,
   * a network) gets, in bursts of 4 seconds' worth: beyond, they go out at this pace. The live
   * stream is never held back. Default 16 MiB.
   */
  answerBytesPerSecond?: number;
  /**
   * What a Unix-socket client other than root and the server's own user sees. `'host'`
   * (default): what /proc lets it see; where /proc is mounted with `hidepid` (and it is not in
   * the mount's `gid=` group), only its own processes' events and snapshot records. `'own'`:
   * only its own processes, whatever /proc does. `'all'`: everything. TCP clients (they have
   * the password) always see everything.
   */
  peerVisibility?: PeerVisibility;
  /**
   * Where the ranges of subordinate uids are (`user:first:count`): a process running as one
   * of them counts as the owning user for `maxClientsPerUser`, the request and answer budgets
   * and the log's tally, so rootless containers cannot multiply a user's share. Default
   * /etc/subuid.
   */
  subordinateIds?: string;
  /**
   * TCP connections waiting to authenticate at most (shared fairly between networks: see the
   * README's threat model). Default 128.
   */
  maxPending?: number;
  /**
   * A TCP connection that has not sent its password line within this is closed (a real client
   * sends it at once; over TLS the handshake counts too). Default 3000 ms.
   */
  authTimeoutMs?: number;
  /**
   * Delay after a failed authentication, counted per network (IPv4 /24, IPv6 /64): its answer
   * waits this long, and so does the next password check from that network. Each further
   * failure from it within 10 minutes doubles it (at most 30 s); a success resets it. 0 turns
   * off delays and the global budget (`authFailureRate`): for tests only. Default 250 ms.
   */
  authFailureDelayMs?: number;
  /**
   * Failed authentications a second over all addresses (bursts of 4 seconds' worth): beyond,
   * every password check waits, whatever its address, networks that have logged in before
   * going first. The most an attacker can guess, however many addresses it holds. 0: no global
   * budget. Default 5.
   */
  authFailureRate?: number;
  /** Bytes buffered for one client at most (beyond, `slowClient` applies). Default 4 MiB. */
  clientBufferBytes?: number;
  /**
   * What to do with a client whose buffer is full. `'drop'` (default): skip events for it and,
   * once it has caught up, send it one `{"event":"lost",...,"source":"client"}` line with the
   * count. `'disconnect'`: close it (reason `'slow'`).
   */
  slowClient?: 'drop' | 'disconnect';
  /**
   * Events kept, as sent, for clients that resume (`{"resume_from": N}`) or fall behind.
   * 0 turns the ring, resuming and request lines off. Default 65536.
   */
  replayEvents?: number;
  /** Bytes of events kept at most (whole batches leave first). Default 64 MiB. */
  replayBytes?: number;
  /**
   * How long a new client (TCP: once authenticated) may take to send its request line
   * before it gets the plain stream; the events of that moment come from the ring, so
   * nothing is missed. 0: no request lines. Default 100 ms.
   */
  requestWaitMs?: number;
  /**
   * A streaming client with bytes waiting for it that the kernel has accepted none of for
   * this long is closed (reason `'stalled'`): a peer that vanished without FIN or RST (its
   * host powered off, a cable pulled) would otherwise keep its slot until TCP gives up
   * retransmitting, about 15 minutes (keepalive does not run while data is unacknowledged,
   * and Node cannot set TCP_USER_TIMEOUT). A client that reads, however slowly, is not
   * stalled. 0 turns it off. Default 60000 ms.
   */
  stallTimeoutMs?: number;
  /** On close(), how long connections may flush before they are destroyed. Default 200 ms. */
  closeGraceMs?: number;
  /** Receives one line per notable happening (connections, refusals, errors). Default: silent. */
  log?: (line: string) => void;
}

export type Transport = 'unix' | 'tcp';

export interface ClientInfo {
  /** Unique within this server. */
  id: number;
  transport: Transport;
  /** `"host:port"` for TCP, `"unix"` for the Unix socket. */
  peer: string;
}

/**
 * Why a streaming client went away: `'end'` (it closed the connection: after its EOF, a
 * write to it failed with EPIPE/ECONNRESET, or the connection closed without error),
 * `'error'` (socket error such as ECONNRESET/EPIPE without an EOF first, see `error`),
 * `'slow'` (buffer full under policy `'disconnect'`), `'stalled'` (nothing written to it
 * for `stallTimeoutMs` although bytes waited), `'server-close'` (close() was called),
 * `'bad-request'` (its request line was unusable; it was told why).
 */
export type ClientCloseReason = 'end' | 'error' | 'slow' | 'stalled' | 'server-close' | 'bad-request';

export interface ClientCloseInfo extends ClientInfo {
  reason: ClientCloseReason;
  /** The socket error code (e.g. `'ECONNRESET'`, `'EPIPE'`) when reason is `'error'`. */
  error?: string;
  /** Events written to it. */
  sent: number;
  /** Events it missed (policy `'drop'`). */
  dropped: number;
}

/**
 * Why a connection was turned away before streaming: too many clients, too many pending,
 * the process nearly out of file descriptors, wrong password, over-long password line, no
 * password (or TLS handshake) in time, it closed first, its TLS handshake failed, or its
 * client certificate was missing or not trusted.
 */
export const REJECT_REASONS = [
  'too-many-clients',
  'too-many-for-user',
  'too-many-pending',
  'too-many-files',
  'auth-failed',
  'line-too-long',
  'auth-timeout',
  'closed-before-auth',
  'tls-failed',
  'cert-refused',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface RejectInfo {
  transport: Transport;
  peer: string;
  reason: RejectReason;
}

export interface BroadcastServerEvents {
  /** A client starts receiving events (TCP: after authenticating). */
  client: [ClientInfo];
  /** A client that had a `'client'` event is gone. */
  clientClose: [ClientCloseInfo];
  /** A connection was turned away without receiving events. */
  reject: [RejectInfo];
  /** A server-side failure after listen() (e.g. accept() failing); logged when nobody listens. */
  error: [Error];
}

export interface ClientStats extends ClientInfo {
  /** Events written to this client. */
  sent: number;
  /** Bytes written to this client. */
  bytes: number;
  /** Events this client missed (policy `'drop'`). */
  dropped: number;
  /** Bytes waiting in this process for this client, in its socket's buffer (at most about `clientBufferBytes`). */
  buffered: number;
  /** Bytes of the answer to its request (the snapshot it asked for) not yet handed to its socket. */
  answerBytes: number;
  /** `'live'`, `'catch-up'` (fed from the ring: resuming, or behind) or `'request'` (may still send one). */
  mode: 'live' | 'catch-up' | 'request';
  /** It asked for a subset of events. */
  filtered: boolean;
}

export interface BroadcastStats {
  /** Batches and events received from the source. */
  batches: number;
  events: number;
  /** Events and bytes written, over every client ever connected. */
  sentEvents: number;
  sentBytes: number;
  /** Events dropped for slow clients, over every client ever connected. */
  droppedEvents: number;
  /** Clients streaming now. */
  clients: number;
  /** TCP connections waiting to authenticate now. */
  pending: number;
  /** Clients ever accepted for streaming. */
  totalClients: number;
  /** Passwords checked, and of them wrong (or too long), since start; lines waiting for their check now (`authFailureRate`). */
  passwordChecks: number;
  passwordFailures: number;
  passwordWaiting: number;
  /** Connections turned away, by reason. */
  rejected: Record<RejectReason, number>;
  /** Slow clients disconnected (policy `'disconnect'`). */
  slowDisconnects: number;
  /** Clients closed because nothing could be written to them for `stallTimeoutMs`. */
  stallDisconnects: number;
  /** Each streaming client. */
  perClient: ClientStats[];
  /** seq of the last event sent (0 before the first); `stream` identifies this run. */
  seq: number;
  stream: string;
  /** The replay ring: events and bytes held, seq of the oldest. */
  replay: { events: number; bytes: number; first: number };
}

export interface BroadcastAddress {
  /** The Unix socket path, or null. */
  unix: string | null;
  /** The bound TCP address (the real port when 0 was asked), or null. */
  tcp: net.AddressInfo | null;
}

/** A configuration or listen failure, with a code: `EINVAL`, `ENOPASSWORD`, `EADDRINUSE`, `EEXIST`, ... */
export class BroadcastServerError extends CodedError {}

// ---------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------

/** A connection as log lines name it: `unix` or `tcp 1.2.3.4:5678` (the peer of a Unix socket has no address). */
function who(conn: Conn): string {
  return conn.transport === 'tcp' ? `tcp ${conn.peer}` : 'unix';
}

interface Conn extends ClientInfo {
  sock: net.Socket;
  /** Remote address (no port). */
  addr: string;
  /** Its prefix (IPv4 /24, IPv6 /64): the unit of pending slots and failure accounting. */
  prefix: string;
  /** A Unix client's user and process (SO_PEERCRED); null for TCP, or if unknown. */
  uid: number | null;
  pid: number | null;
  /**
   * The account a Unix client counts as for per-user limits: `uid N` (a subordinate uid's
   * owner, see SubordinateIds), `user NAME` (an owner not in /etc/passwd), `uid ?` (unknown).
   */
  account: string;
  /** Its account's uid (the owner's, for a subordinate uid), for messages. */
  accountUid: number;
  /** A costly answer of its is under way (names being looked up, its snapshot being written). */
  busy: boolean;
  /** Its password was wrong (or too long): the answer is still to come (state 'verifying'). */
  failed: 'auth-failed' | 'line-too-long' | null;
  /** The only uid whose processes it may see (peerVisibility), or null: all. */
  only: number | null;
  /** Cancels its wait for a password check (AuthGate). */
  cancelCheck: (() => void) | null;
  state: 'new' | 'pending' | 'verifying' | 'streaming' | 'closing';
  /** A 'client' event was emitted for it (so a 'clientClose' will be). */
  announced: boolean;
  line: Buffer | null;
  timer: NodeJS.Timeout | null;
  sent: number;
  bytes: number;
  dropped: number;
  /**
   * `live`: gets each batch as it comes. `catch-up`: fed from the ring from `nextSeq` on as
   * its socket drains (it resumed, or it fell behind). `request`: its request line may
   * still come (the ring holds what it will get).
   */
  mode: 'live' | 'catch-up' | 'request';
  /** seq of the next event it gets (catch-up, request). */
  nextSeq: number;
  /**
   * Bytes it may be behind on top of its buffer (policy 'disconnect'): the backlog it asked
   * for when it resumed, shrinking as it works through it; it is slow only beyond that.
   */
  slack: number;
  filter: Filter | null;
  /** The request line so far. */
  req: Buffer | null;
  /**
   * Its own lines still to write before the stream (the answer to its request: hello, the
   * snapshot), in pieces that pump() writes as its socket drains.
   */
  own: Buffer[] | null;
  ownBytes: number;
  /** Bytes of what it asked for (snapshot, resumed backlog) not yet paid from its peer's answer budget. */
  owed: number;
  /** An empty write is queued to tell when its backlog has flushed. */
  flushWatch: boolean;
  /**
   * Write progress, for the stall timeout: bytes whose writes completed and bytes in the
   * kernel-side write queue at the last look, and since when no progress was seen while
   * bytes waited (0: nothing waits).
   */
  doneMark: number;
  queueMark: number;
  stallSince: number;
  /** It closed its sending side (EOF): it may still read, and keeps getting events. */
  peerEnded: boolean;
  /**
   * Each event line goes out in a write of its own, about LINE_GAP_MS after the one before
   * (see pace()): a plain TCP client that sent nothing but its password, as the seed's own
   * client does, which parses each read as one JSON object.
   */
  perLine: boolean;
  /** When its last line went out (perLine), performance.now() ms. */
  lineAt: number;
  reason: ClientCloseReason | null;
  error?: string;
}

const EMPTY = Buffer.alloc(0);
/**
 * Least time between two lines to a client that reads each read as one event (perLine): a
 * reader that takes its time over one line still finds the next in a read of its own.
 */
const LINE_GAP_MS = 5;
/**
 * Lines a paced client may be behind (10 s at its pace) before the oldest half of them is
 * given up as one `lost` line: it lags seconds, never minutes.
 */
const PACED_MAX_BEHIND = 2000;
/** How soon a request waiting for its peer's previous costly answer looks again. */
const BUSY_RETRY_MS = 50;

/** The daemon's own user: like root, it may use every client slot. */
const OWN_UID = typeof process.getuid === 'function' ? process.getuid() : -1;

/** Whose budgets a connection spends: its local user's, or its network's. */
function peerKey(conn: Conn): string {
  return conn.transport === 'unix' ? conn.account : conn.prefix;
}

/** Root or the daemon's own user at the other end of a Unix socket. */
function isPrivileged(conn: Conn): boolean {
  return conn.uid !== null && (conn.uid === 0 || conn.uid === OWN_UID);
}

/** Who is at the other end of a Unix socket (SO_PEERCRED, through the addon); null if unknown. */
function peerCredOf(sock: net.Socket): { pid: number; uid: number; gid: number } | null {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  const b = loadBinding();
  if (typeof fd !== 'number' || fd < 0 || b instanceof Error) return null;
  return b.peerCred(fd);
}

/** A password line waits this long at most for its check (AuthGate) before the connection is closed. */
const CHECK_WAIT_MAX_MS = 30 * 1000;

function groupId(group: string | number): number {
  try {
    return lookupIdSync('group', group, 'group');
  } catch (err) {
    throw new BroadcastServerError('EINVAL', (err as Error).message);
  }
}

function intOption(v: number | undefined, name: string, def: number, min: number, max = 0x7fffffff): number {
  return intOptionOf(v, name, def, min, max, (m) => new BroadcastServerError('EINVAL', m));
}

/** Reads the TCP password from exactly one of its three sources. */
function resolvePassword(tcp: TcpTransportOptions, warn: (line: string) => void): Buffer {
  const given = (['password', 'passwordFile', 'passwordEnv'] as const).filter((k) => tcp[k] !== undefined);
  if (given.length === 0) {
    throw new BroadcastServerError('ENOPASSWORD', 'a TCP server needs a password (tcp.password, tcp.passwordFile or tcp.passwordEnv); refusing to serve events unauthenticated');
  }
  if (given.length > 1) {
    throw new BroadcastServerError('EINVAL', `give only one of tcp.password, tcp.passwordFile, tcp.passwordEnv (got ${given.join(', ')})`);
  }
  let pw: string;
  if (tcp.password !== undefined) {
    pw = tcp.password;
  } else if (tcp.passwordFile !== undefined) {
    try {
      const f = readSecretFile(tcp.passwordFile, 'the password file');
      pw = f.text;
      if (f.warning) warn(f.warning);
    } catch (err) {
      throw new BroadcastServerError('ENOPASSWORD', (err as Error).message, { cause: err });
    }
  } else {
    const name = tcp.passwordEnv as string;
    const v = process.env[name];
    if (v === undefined) throw new BroadcastServerError('ENOPASSWORD', `the environment variable ${name} (the TCP password) is not set`);
    pw = v;
  }
  if (typeof pw !== 'string' || pw.length === 0) {
    const what =
      tcp.passwordFile !== undefined
        ? `the password file ${tcp.passwordFile} is empty`
        : tcp.passwordEnv !== undefined
          ? `the environment variable ${tcp.passwordEnv} (the TCP password) is empty`
          : 'the TCP password is empty';
    throw new BroadcastServerError('ENOPASSWORD', `${what}; refusing to serve events unauthenticated`);
  }
  if (/[\r\n]/.test(pw)) throw new BroadcastServerError('EINVAL', 'the TCP password cannot contain a line break');
  const buf = Buffer.from(pw, 'utf8');
  if (buf.length > MAX_PASSWORD_BYTES) {
    throw new BroadcastServerError('EINVAL', `the TCP password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  return buf;
}

/** The TLS set-up of a TCP server: options checked, and a line for the log. */
interface TlsSetup {
  options: tls.TlsOptions;
  requireCert: boolean;
  summary: string;
}

/** Checks `tcp.tls` (PEM strings or Buffers) and says clearly what is wrong with it. */
function resolveTls(t: TcpTlsOptions): TlsSetup {
  if (!t || typeof t !== 'object') throw new BroadcastServerError('EINVAL', 'tcp.tls must be an object { cert, key, ca? }');
  let summary: string;
  let requireCert = false;
  try {
    if (t.cert === undefined || t.key === undefined) throw new Error('tcp.tls needs both cert and key');
    const cert = parseCertificates(t.cert, 'tcp.tls.cert')[0] as crypto.X509Certificate;
    checkKeyPair(cert, parsePrivateKey(t.key, 'tcp.tls.key'), 'tcp.tls.cert', 'tcp.tls.key');
    const until = new Date(cert.validTo);
    summary = `certificate ${subjectName(cert)}, valid until ${until.toISOString().slice(0, 10)}${until.getTime() < Date.now() ? ' (EXPIRED)' : ''}`;
    if (t.ca !== undefined) {
      const cas = parseCertificates(t.ca, 'tcp.tls.ca');
      requireCert = true;
      summary += `; client certificates required, signed by ${cas.map(subjectName).join(' or ')}`;
    }
  } catch (err) {
    throw new BroadcastServerError('EINVAL', (err as Error).message, { cause: err });
  }
  const options: tls.TlsOptions = {
    cert: t.cert,
    key: t.key,
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
    // Verified here, after the handshake (tls.Server sets `authorized`), so that a refused
    // certificate is logged with the reason and the client is told; nothing is read from a
    // client that is not authorized.
    requestCert: requireCert,
    rejectUnauthorized: false,
    // The pending timeout (authTimeoutMs) covers the handshake.
    handshakeTimeout: 0,
  };
  try {
    tls.createSecureContext(options);
  } catch (err) {
    throw new BroadcastServerError('EINVAL', `tcp.tls: ${(err as Error).message}`, { cause: err });
  }
  return { options, requireCert, summary };
}

/** A TCP connection's addresses: the same for an accepted socket and the TLS socket around it. */
function tupleKey(s: net.Socket): string | null {
  if (!s.remoteAddress || !s.remotePort || !s.localAddress || !s.localPort) return null;
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

/** What is at a would-be socket path: nothing, a stale socket, or a live one (throws for the rest). */
function probeSocketPath(p: string): Promise<'none' | 'stale'> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve('none');
    return Promise.reject(new BroadcastServerError('EACCES', `cannot inspect ${p}: ${(err as Error).message}`, { cause: err }));
  }
  if (!st.isSocket()) {
    return Promise.reject(new BroadcastServerError('EEXIST', `${p} exists and is not a socket; not removing it (choose another path or remove it yourself)`));
  }
  return new Promise((resolve, reject) => {
    const s = net.createConnection(p);
    s.once('connect', () => {
      s.destroy();
      reject(new BroadcastServerError('EADDRINUSE', `another process is listening on ${p} (is another procMonitor running?)`));
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === 'ECONNREFUSED') resolve('stale');
      else if (err.code === 'ENOENT') resolve('none');
      else reject(new BroadcastServerError(err.code ?? 'EIO', `cannot tell whether ${p} is in use: ${err.message}`, { cause: err }));
    });
  });
}

/** A lock older than this counts as abandoned (its holder died while it held it). */
const PATH_LOCK_STALE_MS = 10000;
/** A lock whose process is gone counts as abandoned once it is this old. */
const PATH_LOCK_DEAD_MS = 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Whether the lock file at `lock` (stats `st`) was left by a process that died holding it.
 * A file that is not one of ours (its content is not a pid line) never is: it is not removed.
 */
function lockAbandoned(lock: string, st: fs.Stats): boolean {
  let text: string;
  try {
    text = fs.readFileSync(lock, 'utf8');
  } catch {
    return false; // gone or unreadable: look again
  }
  const m = /^(\d+)\n$/.exec(text);
  if (!m) return false;
  const age = Date.now() - st.mtimeMs;
  if (age > PATH_LOCK_STALE_MS) return true;
  if (age < PATH_LOCK_DEAD_MS) return false;
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Runs `fn` holding `<target>.lock`, which serialises the removal of a stale socket at
 * `target` among concurrent starters (of any process). The lock file is made complete under
 * a private name, then link()ed into place: link() fails if the lock exists, so exactly one
 * starter holds it. A lock left by a process that died holding it (a window of a few
 * milliseconds) is broken after a second. Held only while it decides, never for the server's
 * life: the live socket itself is what keeps a second instance out.
 */
async function withPathLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${target}.lock`;
  const mine = path.join(path.dirname(target), `.${path.basename(target)}.lock-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const fail = (err: unknown, what: string) =>
    new BroadcastServerError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot ${what} ${lock}: ${(err as Error).message}`, { cause: err });
  try {
    fs.writeFileSync(mine, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    throw fail(err, 'create a file next to');
  }
  let held: fs.Stats;
  try {
    const deadline = Date.now() + PATH_LOCK_STALE_MS + 5000;
    for (;;) {
      try {
        fs.linkSync(mine, lock);
        held = fs.lstatSync(lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(err, 'create');
      }
      let st: fs.Stats | null = null;
      try {
        st = fs.lstatSync(lock);
      } catch {
        continue; // released meanwhile
      }
      if (st.isFile() && lockAbandoned(lock, st)) {
        try {
          const again = fs.lstatSync(lock);
          if (again.ino === st.ino && again.dev === st.dev) fs.unlinkSync(lock);
        } catch {
          /* gone already */
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new BroadcastServerError('EBUSY', `${lock} is held by another starter, or is not a lock of procmonitor's; if no procMonitor is starting, remove it`);
      }
      await sleep(10);
    }
  } finally {
    try {
      fs.unlinkSync(mine); // the lock, if taken, is the other name of this file
    } catch {
      /* ignore */
    }
  }
  try {
    return await fn();
  } finally {
    try {
      const st = fs.lstatSync(lock);
      if (st.ino === held.ino && st.dev === held.dev) fs.unlinkSync(lock);
    } catch {
      /* ignore */
    }
  }
}

/**
 * Removes the socket at `p` if it is stale, deciding under the path lock: a concurrent
 * starter that removed it first and put its own socket in place is seen (the file is
 * another, or it answers) and left alone. Rejects with EADDRINUSE when a live socket is there.
 */
function removeStaleSocket(p: string): Promise<void> {
  return withPathLock(p, async () => {
    let before: fs.Stats;
    try {
      before = fs.lstatSync(p);
    } catch {
      return; // gone: the caller tries again
    }
    if (!before.isSocket()) return; // the caller's next look reports it
    if ((await probeSocketPath(p)) !== 'stale') return;
    // Nothing else removes a socket from the path while we hold the lock, and link() cannot
    // put one there while this one is there: the file checked is the file removed.
    try {
      const st = fs.lstatSync(p);
      if (st.ino === before.ino && st.dev === before.dev) fs.unlinkSync(p);
    } catch {
      /* gone already */
    }
  });
}

function listenOn(server: net.Server, opts: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts);
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/**
 * Serves the events of `source` to many clients at once over a Unix socket and/or
 * password-protected TCP. Each batch is serialised once and the same bytes go to every
 * client; a slow client only ever loses its own events.
 */
export class BroadcastServer extends EventEmitter<BroadcastServerEvents> {
  private readonly source: EventSource;
  private readonly unixOpts: Required<Omit<UnixTransportOptions, 'group'>> & { gid: number | null };
  private readonly tcpOpts: { port: number; host: string } | null;
  private readonly password: Buffer | null;
  /**
   * With TLS: a tls.Server that never listens itself; each accepted TCP connection that passes
   * the pending limits is handed to it, so Node runs (and verifies) the handshake.
   */
  private readonly tlsServer: tls.Server | null = null;
  private readonly tlsSummary: string = '';
  private readonly tlsRequireCert: boolean = false;
  /** Connections in their TLS handshake, by their addresses (see tupleKey). */
  private readonly handshaking = new Map<string, Conn>();
  private readonly hmacKey = crypto.randomBytes(32);
  private readonly maxClients: number;
  private readonly maxPending: number;
  private readonly reservedClients: number;
  private readonly maxPerUser: number;
  private readonly authTimeoutMs: number;
  private readonly bufferBytes: number;
  private readonly policy: 'drop' | 'disconnect';
  private readonly graceMs: number;
  private readonly logFn: (line: string) => void;
  private readonly ring: ReplayRing;
  private readonly requestWaitMs: number;
  private readonly stallTimeoutMs: number;
  private stallTimer: NodeJS.Timeout | null = null;
  /** Lines a peer can cause at will (refusals, failures): a few as they come, the rest summed up. */
  private readonly tally = new LogTally((line) => this.log(line));
  /** Connected/closed lines of local users other than root and the server's own (clientLog). */
  private readonly connTally = new LogTally((line) => this.log(line), 10000, 20);
  /** perLine clients with lines still to get, and the timer that paces them. */
  private readonly paced = new Set<Conn>();
  private pacer: NodeJS.Timeout | null = null;
  /** Identifies this run of the stream: a resume with another stream's seq starts over. */
  readonly stream = crypto.randomBytes(4).toString('hex');

  private unixServer: net.Server | null = null;
  private tcpServer: net.Server | null = null;
  private unixFile: { path: string; dev: number; ino: number } | null = null;
  private readonly conns = new Set<Conn>();
  private readonly streaming = new Set<Conn>();
  private pendingCount = 0;
  /** Connections waiting to authenticate (or for the verdict), by prefix, oldest first. */
  private readonly pendingByPrefix = new Map<string, Set<Conn>>();
  /** At most this many of them from one prefix, so that one network cannot take every slot. */
  private readonly maxPendingPerPrefix: number;
  /** When a password is checked: the bound on guessing. */
  private readonly gate: AuthGate;
  /** Request lines, per peer (peerKey) other than root and the server's user. */
  private readonly requestBudget: TokenBuckets;
  /** Bytes of requested answers (snapshots, resumed backlogs), per peer. */
  private readonly answerBudget: TokenBuckets;
  /** Said once: peers' credentials cannot be read. */
  private credWarned = false;
  private readonly visibility: PeerVisibility;
  /** The host's /proc policy (hidepid), as of the constructor. */
  private readonly procPolicy: ProcPolicy;
  /** Owners of subordinate uids (peerKey, per-user limits). */
  private readonly subIds: SubordinateIds;
  /** Costly answers under way, per peer (setBusy). */
  private readonly busy = new Map<string, number>();
  /** User names of requests, resolved off the JS thread. */
  private readonly ids = new IdResolver();
  private nextId = 1;
  private state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  private closing: Promise<void> | null = null;
  /** Stops taking the source's lines (set by listen()). */
  private unsubscribe: (() => void) | null = null;
  /** File descriptors: the soft RLIMIT_NOFILE as of listen() (Infinity: unknown, unlimited). */
  private fdLimit = Infinity;
  /** Below this many connections (this.conns), the limit is too far away to count. */
  private fdCountFrom = Infinity;
  /** Descriptors that are not connections, as of the last count of /proc/self/fd. */
  private fdOthers = 0;
  private fdCountedAt = 0;
  /** Refusing for want of descriptors since the last check (for one log line per episode). */
  private fdShort = false;
  /** accept() failures (EMFILE...) not logged yet, and when the last was. */
  private acceptErrors = { unlogged: 0, loggedAt: 0 };
  private readonly counters = {
    batches: 0,
    events: 0,
    sentEvents: 0,
    sentBytes: 0,
    droppedEvents: 0,
    totalClients: 0,
    slowDisconnects: 0,
    stallDisconnects: 0,
    passwordChecks: 0,
    passwordFailures: 0,
  };
  private readonly rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;

  constructor(options: BroadcastServerOptions) {
    super();
    if (!options || typeof options !== 'object') throw new BroadcastServerError('EINVAL', 'createBroadcastServer needs an options object');
    if (!isEventSource(options.source)) {
      throw new BroadcastServerError('EINVAL', 'options.source must be an EventEmitter of "batch" events (e.g. a ProcConnector)');
    }
    if (!options.unix && !options.tcp) throw new BroadcastServerError('EINVAL', 'give options.unix, options.tcp or both');
    this.source = options.source;
    if (options.unix) {
      const p = options.unix.path;
      if (typeof p !== 'string' || p === '') throw new BroadcastServerError('EINVAL', 'unix.path must be a non-empty string');
      this.unixOpts = {
        path: path.resolve(p),
        mode: intOption(options.unix.mode, 'unix.mode', 0o666, 0, 0o777),
        gid: options.unix.group === undefined ? null : groupId(options.unix.group),
      };
    } else {
      this.unixOpts = { path: '', mode: 0, gid: null };
    }
    if (options.tcp) {
      this.tcpOpts = {
        port: intOption(options.tcp.port, 'tcp.port', -1, 0, 65535),
        host: options.tcp.host ?? '0.0.0.0',
      };
      if (this.tcpOpts.port < 0) throw new BroadcastServerError('EINVAL', 'tcp.port is required (0 picks a free port)');
      this.password = resolvePassword(options.tcp, (line) => this.log(line));
      if (options.tcp.tls !== undefined) {
        const t = resolveTls(options.tcp.tls);
        this.tlsSummary = t.summary;
        this.tlsRequireCert = t.requireCert;
        this.tlsServer = tls.createServer(t.options);
        this.tlsServer.on('secureConnection', (s: tls.TLSSocket) => this.onTlsSecure(s));
        this.tlsServer.on('tlsClientError', (err: Error, s: tls.TLSSocket) => this.onTlsError(err, s));
      }
    } else {
      this.tcpOpts = null;
      this.password = null;
    }
    this.maxClients = intOption(options.maxClients, 'maxClients', 10, 1);
    this.maxPending = intOption(options.maxPending, 'maxPending', 128, 1);
    this.reservedClients = intOption(options.reservedClients, 'reservedClients', Math.min(2, this.maxClients - 1), 0, this.maxClients - 1);
    const vis = options.peerVisibility ?? 'host';
    if (vis !== 'host' && vis !== 'all' && vis !== 'own') throw new BroadcastServerError('EINVAL', `peerVisibility must be "host", "all" or "own", got ${String(vis)}`);
    this.visibility = vis;
    this.procPolicy = readProcPolicy();
    if (options.subordinateIds !== undefined && (typeof options.subordinateIds !== 'string' || options.subordinateIds === '')) {
      throw new BroadcastServerError('EINVAL', 'subordinateIds must be a file path');
    }
    this.subIds = new SubordinateIds(options.subordinateIds ?? '/etc/subuid');
    const rps = intOption(options.requestsPerSecond, 'requestsPerSecond', 2, 1);
    this.requestBudget = new TokenBuckets(rps, rps * 5);
    const bps = intOption(options.answerBytesPerSecond, 'answerBytesPerSecond', 16 << 20, 1024);
    this.answerBudget = new TokenBuckets(bps, bps * 4);
    this.maxPerUser = intOption(options.maxClientsPerUser, 'maxClientsPerUser', Math.ceil(this.maxClients / 4), 1);
    this.maxPendingPerPrefix = Math.max(2, Math.floor(this.maxPending / 2));
    this.authTimeoutMs = intOption(options.authTimeoutMs, 'authTimeoutMs', 3000, 1);
    this.gate = new AuthGate({
      baseDelayMs: intOption(options.authFailureDelayMs, 'authFailureDelayMs', 250, 0),
      ratePerSec: intOption(options.authFailureRate, 'authFailureRate', 5, 0, 1000000),
    });
    this.bufferBytes = intOption(options.clientBufferBytes, 'clientBufferBytes', 4 << 20, 1);
    this.graceMs = intOption(options.closeGraceMs, 'closeGraceMs', 200, 0);
    this.stallTimeoutMs = intOption(options.stallTimeoutMs, 'stallTimeoutMs', 60000, 0);
    const policy = options.slowClient ?? 'drop';
    if (policy !== 'drop' && policy !== 'disconnect') {
      throw new BroadcastServerError('EINVAL', `slowClient must be "drop" or "disconnect", got ${String(policy)}`);
    }
    this.policy = policy;
    const log = options.log;
    this.logFn = typeof log === 'function' ? log : () => {};
    const replayEvents = intOption(options.replayEvents, 'replayEvents', 65536, 0);
    this.ring = new ReplayRing(replayEvents, intOption(options.replayBytes, 'replayBytes', 64 << 20, 1));
    // Without a ring, a client waiting to send its request would miss events: no requests.
    this.requestWaitMs = replayEvents === 0 ? 0 : intOption(options.requestWaitMs, 'requestWaitMs', 100, 0, 60000);
  }

  /**
   * A client's connected/closed line. A local user other than root and the server's own can
   * connect at will without a password: its lines go through a tally of its own (20 per 10 s,
   * then a count), so a connect loop cannot flood the log, nor hide another user's lines.
   */
  private clientLog(conn: Conn, line: string): void {
    if (conn.transport === 'unix' && !isPrivileged(conn)) this.connTally.add(`connections of ${conn.account}`, line, peerKey(conn));
    else this.log(line);
  }

  private log(line: string): void {
    try {
      this.logFn(line);
    } catch {
      /* a failing logger must not break the server */
    }
  }

  /** Starts listening on the configured transports. Rejects (and leaves nothing behind) on failure. */
  async listen(): Promise<void> {
    if (this.state !== 'new') throw new BroadcastServerError('EINVAL', `listen() called on a ${this.state} server`);
    this.state = 'listening';
    try {
      if (this.unixOpts.path) await this.listenUnix();
      if (this.tcpOpts) await this.listenTcp();
    } catch (err) {
      await this.teardownListeners();
      this.state = 'closed';
      throw err;
    }
    this.unsubscribe = subscribeLines(this.source, (lines) => this.broadcast(lines));
    this.watchDescriptors();
    if (this.stallTimeoutMs > 0) {
      // Looked at a few times per timeout (at most every second): a stalled client is closed
      // between stallTimeoutMs and stallTimeoutMs + 1 s after its last progress.
      const every = Math.max(10, Math.min(1000, Math.floor(this.stallTimeoutMs / 4)));
      this.stallTimer = setInterval(() => this.checkStalls(), every);
      this.stallTimer.unref();
    }
    const a = this.address();
    if (a.unix) this.log(`listening on unix socket ${a.unix} (mode ${this.unixOpts.mode.toString(8).padStart(4, '0')})`);
    if (a.tcp) this.log(`listening on tcp ${a.tcp.address}:${a.tcp.port}${this.tlsServer ? ` with TLS (${this.tlsSummary})` : ''}`);
  }

  private async listenUnix(): Promise<void> {
    const target = this.unixOpts.path;
    await probeSocketPath(target);
    // Bind inside a fresh 0700 directory next to the target, set mode and group there, then
    // link() it into place: the socket is never reachable with looser permissions than asked,
    // and link() fails when anything is at the path, so a socket that another starter put
    // there meanwhile is never replaced (rename would replace it).
    let tmpDir: string;
    try {
      tmpDir = fs.mkdtempSync(path.join(path.dirname(target), '.pm-'));
    } catch (err) {
      throw new BroadcastServerError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot create the socket in ${path.dirname(target)}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const tmpSock = path.join(tmpDir, 's');
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.onUnixConnection(s));
    try {
      try {
        await listenOn(server, { path: tmpSock });
      } catch (err) {
        throw new BroadcastServerError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot listen on ${target}: ${(err as Error).message}`, { cause: err });
      }
      this.unixServer = server;
      server.on('error', (err) => this.serverError(err));
      fs.chmodSync(tmpSock, this.unixOpts.mode);
      if (this.unixOpts.gid !== null) {
        try {
          fs.chownSync(tmpSock, -1, this.unixOpts.gid);
        } catch (err) {
          throw new BroadcastServerError((err as NodeJS.ErrnoException).code ?? 'EPERM', `cannot give ${target} group ${this.unixOpts.gid}: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
      for (let attempt = 1; ; attempt++) {
        try {
          fs.linkSync(tmpSock, target);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
            throw new BroadcastServerError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot create ${target}: ${(err as Error).message}`, { cause: err });
          }
        }
        // Something is at the path: not a socket (EEXIST), a live one (EADDRINUSE: another
        // instance, maybe a concurrent starter that won), or a stale one, removed under the
        // path lock before trying again.
        if ((await probeSocketPath(target)) === 'none') continue;
        if (attempt >= 10) throw new BroadcastServerError('EADDRINUSE', `the socket path ${target} keeps being replaced by another process; not taking it`);
        await removeStaleSocket(target);
      }
      const st = fs.lstatSync(target);
      this.unixFile = { path: target, dev: st.dev, ino: st.ino };
    } finally {
      try {
        fs.unlinkSync(tmpSock);
      } catch {
        /* never bound */
      }
      try {
        fs.rmdirSync(tmpDir);
      } catch {
        /* ignore */
      }
    }
  }

  private async listenTcp(): Promise<void> {
    const opts = this.tcpOpts as { port: number; host: string };
    // Half-open connections are kept for plain TCP (a client may send its password and shut
    // its side); not under TLS, where a peer that closes during the handshake must be seen.
    const server = net.createServer({ allowHalfOpen: !this.tlsServer, noDelay: true }, (s) => this.onTcpConnection(s));
    try {
      await listenOn(server, { port: opts.port, host: opts.host });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      throw new BroadcastServerError(code, `cannot listen on tcp ${opts.host}:${opts.port}: ${(err as Error).message}`, { cause: err });
    }
    this.tcpServer = server;
    server.on('error', (err) => this.serverError(err));
  }

  private serverError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') {
      // accept() found no descriptor free. libuv first sheds the waiting connections itself
      // (closes a spare descriptor it keeps, accepts and closes them, takes the spare back);
      // Node reports the error ('accept EMFILE' on the net.Server) only when that spare is
      // gone too, and the server goes on listening. With FD_RESERVE kept free this should
      // not happen; when it does, it is logged at most once a second, with how many times.
      const e = this.acceptErrors;
      e.unlogged++;
      const now = Date.now();
      if (now - e.loggedAt >= 1000) {
        const times = e.unlogged > 1 ? `, ${e.unlogged} times since the last report` : '';
        this.log(`server error: ${err.message} (out of file descriptors${times}; still listening)`);
        e.unlogged = 0;
        e.loggedAt = now;
      }
    } else {
      this.log(`server error: ${err.message}`);
    }
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * Learns the soft RLIMIT_NOFILE (Node raised it to the hard limit at its start: read it
   * now, not before) and the descriptors already open. Without /proc the check is off.
   */
  private watchDescriptors(): void {
    const limit = softFdLimit();
    const open = openFds();
    if (limit === Infinity || open < 0) return;
    this.fdLimit = limit;
    this.fdOthers = Math.max(0, open - this.conns.size);
    this.fdCountedAt = Date.now();
    // Other descriptors may come and go between counts (the connector's reads of /proc,
    // sockets of --metrics, --syslog, --nats): start counting well before the reserve.
    const slack = Math.max(64, limit >> 4);
    this.fdCountFrom = Math.max(0, limit - FD_RESERVE - slack - this.fdOthers);
  }

  /**
   * True when a new connection would leave fewer than FD_RESERVE descriptors free. Costs a
   * comparison until the connections alone come near the limit; then /proc/self/fd is
   * counted, at most every 50 ms (in between: the descriptors that are not connections as of
   * that count, plus the connections now).
   */
  private outOfDescriptors(): boolean {
    const conns = this.conns.size;
    let used = 0;
    let short = false;
    if (conns >= this.fdCountFrom) {
      const now = Date.now();
      if (now - this.fdCountedAt >= 50) {
        const open = openFds();
        if (open === Infinity) {
          this.fdOthers = this.fdLimit; // not even one descriptor to read the directory with
        } else if (open >= 0) {
          this.fdOthers = Math.max(0, open - conns);
          this.fdCountedAt = now;
        }
      }
      used = Math.min(this.fdOthers + conns, this.fdLimit);
      short = this.fdLimit - used < FD_RESERVE;
    }
    if (short !== this.fdShort) {
      this.fdShort = short;
      if (short) this.log(`${used} of ${this.fdLimit} file descriptors open (soft limit): refusing new connections while fewer than ${FD_RESERVE} are free`);
      else this.log(`file descriptors free again (${this.rejected['too-many-files']} connections refused for want of them so far): accepting connections`);
    }
    return short;
  }

  /**
   * Turns a connection away for want of descriptors: the line (plain text; nothing over TLS
   * before its handshake) is written at once (a fresh socket takes it whole) and the socket
   * destroyed at once, so the refusal itself holds no descriptor: in a burst libuv accepts
   * connection after connection before anything else runs.
   */
  private refuseNoFiles(conn: Conn, message: string): void {
    conn.state = 'closing';
    this.rejected['too-many-files']++;
    this.tally.add('refused (too-many-files)', `${conn.transport} ${conn.peer}: refused (too-many-files)`, conn.addr);
    if (this.listenerCount('reject') > 0) this.emit('reject', { transport: conn.transport, peer: conn.peer, reason: 'too-many-files' });
    const sock = conn.sock;
    if (message && !sock.destroyed) sock.write(message);
    sock.destroy(); // closes the descriptor now ('close' comes later)
    this.conns.delete(conn); // so it no longer counts as one
  }

  /** The bound addresses (the real TCP port when port 0 was asked). */
  address(): BroadcastAddress {
    const a = this.tcpServer?.address();
    return {
      unix: this.unixFile ? this.unixFile.path : null,
      tcp: a && typeof a === 'object' ? a : null,
    };
  }

  // ------------------------------------------------------------------ connections

  private newConn(sock: net.Socket, transport: Transport): Conn {
    const addr = transport === 'tcp' ? (sock.remoteAddress ?? '?').replace(/^::ffff:/, '') : 'unix';
    const peer = transport === 'tcp' ? (addr.includes(':') ? `[${addr}]:${sock.remotePort}` : `${addr}:${sock.remotePort}`) : 'unix';
    const conn: Conn = {
      id: this.nextId++,
      transport,
      peer,
      sock,
      addr,
      prefix: transport === 'tcp' ? prefixOf(addr) : 'unix',
      uid: null,
      pid: null,
      account: 'uid ?',
      accountUid: -1,
      only: null,
      failed: null,
      busy: false,
      cancelCheck: null,
      state: 'new',
      announced: false,
      line: null,
      timer: null,
      sent: 0,
      bytes: 0,
      dropped: 0,
      mode: 'live',
      nextSeq: 0,
      slack: 0,
      filter: null,
      req: null,
      own: null,
      ownBytes: 0,
      owed: 0,
      flushWatch: false,
      doneMark: 0,
      queueMark: 0,
      stallSince: 0,
      peerEnded: false,
      perLine: false,
      lineAt: 0,
      reason: null,
    };
    if (transport === 'unix') {
      const cred = peerCredOf(sock);
      if (cred) {
        conn.uid = cred.uid;
        conn.pid = cred.pid;
        const owner = this.subIds.ownerOf(cred.uid);
        conn.account = typeof owner === 'number' ? `uid ${owner}` : `user ${owner}`;
        conn.accountUid = typeof owner === 'number' ? owner : cred.uid;
        if (!isPrivileged(conn) && seesOnlyOwn(this.visibility, this.procPolicy, cred)) conn.only = cred.uid;
      } else {
        // Who it is cannot be told (no addon): where it must be limited to its own processes,
        // it sees nobody's (-2: no event has that uid).
        if (this.visibility === 'own' || (this.visibility === 'host' && this.procPolicy.hidepid !== 'off')) conn.only = -2;
        if (!this.credWarned) {
          this.credWarned = true;
          this.log('unix: the peer of a client cannot be told (the addon is not loaded): per-user limits count such clients together');
        }
      }
    }
    this.conns.add(conn);
    sock.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(conn, err));
    sock.on('close', () => this.onClose(conn));
    return conn;
  }

  private onSocketError(conn: Conn, err: NodeJS.ErrnoException): void {
    if (conn.reason) return;
    const code = err.code ?? err.message;
    // A write failing because the client closed altogether (not only its sending side) is
    // how it is seen to have left: EPIPE says so whether or not its EOF was read first (which
    // comes first depends on the Node.js version); a reset counts as leaving after its EOF.
    if (code === 'EPIPE' || (conn.peerEnded && code === 'ECONNRESET')) {
      conn.reason = 'end';
      return;
    }
    conn.reason = 'error';
    conn.error = code;
  }

  /**
   * A client that closed its sending side may still read, or may be gone altogether (that
   * shows only when a write to it fails): when a newcomer needs its slot or descriptor, the
   * longest-ended such client is let go (reason 'end') rather than the newcomer refused.
   */
  private evictEnded(which: (c: Conn) => boolean = () => true): boolean {
    for (const conn of this.streaming) {
      if (!conn.peerEnded || conn.reason || !which(conn)) continue;
      conn.reason = 'end';
      this.onClose(conn); // its slot is free now, not when the socket's close comes
      conn.sock.destroy();
      return true;
    }
    return false;
  }

  /**
   * Whether a streaming slot is free for `conn` (else it is refused, and false returned).
   * Local users other than root and the daemon's own (SO_PEERCRED) hold `maxClientsPerUser`
   * each at most, and together leave `reservedClients` free: a local user can never keep
   * root's client out. TCP clients (they have the password) and privileged ones take any slot.
   */
  private admitClient(conn: Conn): boolean {
    if (conn.transport === 'unix' && !isPrivileged(conn)) {
      let mine = 0;
      let local = 0;
      for (const c of this.streaming) {
        if (c.transport !== 'unix' || isPrivileged(c)) continue;
        local++;
        if (c.account === conn.account) mine++;
      }
      const localEnded = (c: Conn) => c.transport === 'unix' && !isPrivileged(c);
      if (mine >= this.maxPerUser) {
        // (One of its own that closed its side may be gone altogether: that one makes room.)
        if (!this.evictEnded((c) => localEnded(c) && c.account === conn.account)) {
          this.refuse(conn, 'too-many-for-user', tooManyForUserLine(conn.accountUid, this.maxPerUser));
          return false;
        }
        local--;
      }
      if (local >= this.maxClients - this.reservedClients && !this.evictEnded(localEnded)) {
        this.refuse(conn, 'too-many-clients', tooManyClientsLine(this.maxClients));
        return false;
      }
    }
    if (this.streaming.size >= this.maxClients && !this.evictEnded()) {
      this.refuse(conn, 'too-many-clients', tooManyClientsLine(this.maxClients));
      return false;
    }
    return true;
  }

  private onUnixConnection(sock: net.Socket): void {
    const conn = this.newConn(sock, 'unix');
    if (this.state !== 'listening') return void sock.destroy(); // accepted while closing
    if (this.outOfDescriptors() && !this.evictEnded()) return this.refuseNoFiles(conn, TOO_MANY_FILES);
    if (!this.admitClient(conn)) return;
    this.startStreaming(conn);
  }

  private onTcpConnection(sock: net.Socket): void {
    const conn = this.newConn(sock, 'tcp');
    if (this.state !== 'listening') return void sock.destroy(); // accepted while closing
    // Over TLS nothing can be said before the handshake: a connection beyond the pending
    // limits is closed without one (none is spent on it); a full server is told after it.
    const tlsServer = this.tlsServer;
    if (this.outOfDescriptors() && !this.evictEnded()) return this.refuseNoFiles(conn, tlsServer ? '' : TOO_MANY_FILES);
    if (!tlsServer && !this.admitClient(conn)) return;
    if (!this.admitPending(conn)) return this.refuse(conn, 'too-many-pending', tlsServer ? '' : tooManyPendingLine(this.maxPending));
    conn.state = 'pending';
    conn.line = Buffer.alloc(0);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      // (Still in the TLS handshake: conn.sock is the plain socket, and nothing can be said.)
      if (conn.state === 'pending') this.refuse(conn, 'auth-timeout', conn.sock === sock && tlsServer ? '' : AUTH_TIMEOUT);
    }, this.authTimeoutMs);
    if (!tlsServer) return this.askPassword(conn);
    const key = tupleKey(sock);
    if (key === null) return void sock.destroy(); // already gone
    this.handshaking.set(key, conn);
    sock.once('close', () => {
      if (this.handshaking.get(key) === conn) this.handshaking.delete(key);
    });
    tlsServer.emit('connection', sock); // the handshake runs; see onTlsSecure / onTlsError
  }

  /**
   * Takes a pending slot for a new TCP connection, fairly: one network (IPv4 /24, IPv6 /64)
   * holds at most half of them, and when all are taken, a connection of the network holding
   * the most makes room, if that is more than the newcomer's own holds (else the newcomer is
   * refused). See pendingVictim for which one.
   */
  private admitPending(conn: Conn): boolean {
    const mine = this.pendingByPrefix.get(conn.prefix);
    const held = mine ? mine.size : 0;
    if (held >= this.maxPendingPerPrefix) return false;
    if (this.pendingCount >= this.maxPending) {
      const victim = this.pendingVictim(conn, held);
      if (!victim) return false;
      this.evictPending(victim);
    }
    let set = mine;
    if (!set) {
      set = new Set();
      this.pendingByPrefix.set(conn.prefix, set);
    }
    set.add(conn);
    this.pendingCount++;
    return true;
  }

  /**
   * The pending connection that makes room for `conn`: of the networks holding more than its
   * own (`held`), the busiest; a network that logged in before keeps its connections unless
   * the newcomer's did too; within the network, one that has sent nothing yet goes before one
   * whose password is waiting for its check, and the oldest first. Null: none may go.
   */
  private pendingVictim(conn: Conn, held: number): Conn | null {
    const newcomerKnown = this.gate.known(conn.addr);
    let victim: Conn | null = null;
    let vKey: [number, number, number] = [0, 0, 0];
    for (const set of this.pendingByPrefix.values()) {
      if (set.size <= held) continue;
      const first = set.values().next().value as Conn;
      if (!newcomerKnown && this.gate.known(first.addr)) continue;
      let pick: Conn | null = null;
      for (const c of set) {
        if (c.line !== null && c.state === 'pending') {
          pick = c; // still silent (or part way through its password line): the oldest such
          break;
        }
      }
      const silent = pick !== null;
      pick = pick ?? first;
      const key: [number, number, number] = [set.size, silent ? 1 : 0, -pick.id];
      if (!victim || key[0] > vKey[0] || (key[0] === vKey[0] && (key[1] > vKey[1] || (key[1] === vKey[1] && key[2] > vKey[2])))) {
        victim = pick;
        vKey = key;
      }
    }
    return victim;
  }

  /** A pending connection makes room for a newcomer from a quieter prefix. */
  private evictPending(conn: Conn): void {
    const inTls = conn.sock !== null && this.tlsServer !== null && !(conn.sock instanceof tls.TLSSocket);
    if (conn.state === 'verifying') return this.refuse(conn, 'auth-failed', AUTH_FAILED, true);
    this.refuse(conn, 'too-many-pending', inTls ? '' : tooManyPendingLine(this.maxPending));
  }

  /** TLS is up: verify the client certificate if one is required, then the password handshake. */
  private onTlsSecure(s: tls.TLSSocket): void {
    const key = tupleKey(s);
    const conn = key === null ? undefined : this.handshaking.get(key);
    if (key !== null) this.handshaking.delete(key);
    if (!conn || conn.state !== 'pending') return void s.destroy();
    conn.sock = s;
    s.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(conn, err));
    if (this.tlsRequireCert && !s.authorized) {
      const peerCert = s.getPeerX509Certificate();
      const why = peerCert ? `${subjectName(peerCert)}: ${String(s.authorizationError ?? 'not trusted')}` : 'none given';
      this.tally.add('client certificate refused', `tcp ${conn.peer}: client certificate refused (${why})`, conn.addr);
      return this.refuse(conn, 'cert-refused', CLIENT_CERT_REFUSED, true);
    }
    if (!this.admitClient(conn)) return;
    this.askPassword(conn);
  }

  /** A TLS handshake failed (not TLS at all, no common protocol, a bad record...). */
  private onTlsError(err: Error, s: tls.TLSSocket): void {
    const key = tupleKey(s);
    const conn = key === null ? undefined : this.handshaking.get(key);
    if (!conn || conn.state !== 'pending') return; // its socket is closed by Node either way
    if (key !== null) this.handshaking.delete(key);
    // OpenSSL's errors carry a short `reason` ("wrong version number"); the message is long.
    const e = err as NodeJS.ErrnoException & { reason?: unknown };
    const why = typeof e.reason === 'string' ? e.reason : e.message.split('\n')[0];
    this.tally.add('TLS handshake failed', `tcp ${conn.peer}: TLS handshake failed (${e.code ? `${e.code}: ` : ''}${why})`, conn.addr);
    this.refuse(conn, 'tls-failed', '', true);
  }

  /** Sends the password prompt and reads the answer (inside TLS when it is on). */
  private askPassword(conn: Conn): void {
    const sock = conn.sock;
    sock.on('data', (chunk: Buffer) => this.onAuthData(conn, chunk));
    sock.on('end', () => {
      // EOF before a whole password line (e.g. `printf pw | nc -N host port`): it cannot be
      // a correct password, and it is told so (unless its write side closed too: TLS).
      if (conn.state === 'pending') this.refuse(conn, 'closed-before-auth', sock.writable ? AUTH_FAILED : '');
    });
    sock.write(PASSWORD_PROMPT);
  }

  private onAuthData(conn: Conn, chunk: Buffer): void {
    if (conn.state !== 'pending' || !conn.line) return;
    const start = conn.line.length;
    const buf = start === 0 ? chunk : Buffer.concat([conn.line, chunk]);
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) {
      // Room for the longest line and a "\r" before its "\n".
      if (buf.length > MAX_PASSWORD_BYTES + 1) return this.queueCheck(conn, null, EMPTY);
      conn.line = buf;
      return;
    }
    let end = nl;
    if (end > 0 && buf[end - 1] === 0x0d) end--;
    if (end > MAX_PASSWORD_BYTES) return this.queueCheck(conn, null, EMPTY);
    // (Copies: the chunk's memory is not kept, and the copy is wiped once checked.)
    this.queueCheck(conn, Buffer.from(buf.subarray(0, end)), Buffer.from(buf.subarray(nl + 1)));
  }

  /**
   * A password line came in time (`given`; null: longer than any password): it waits for its
   * turn to be checked (AuthGate), at most CHECK_WAIT_MAX_MS. An over-long line waits too,
   * as a wrong password does: it is one, and must not be a faster way to spend the budget.
   * `rest` is what followed it (the start of a request line).
   */
  private queueCheck(conn: Conn, given: Buffer | null, rest: Buffer): void {
    conn.line = null;
    conn.sock.pause();
    conn.sock.removeAllListeners('data');
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      if (conn.state === 'pending') this.refuse(conn, 'auth-timeout', AUTH_TIMEOUT);
    }, CHECK_WAIT_MAX_MS);
    let granted = false;
    const cancel = this.gate.wait(conn.addr, () => {
      granted = true;
      conn.cancelCheck = null;
      this.checkPassword(conn, given, rest);
    });
    if (!granted) conn.cancelCheck = cancel;
  }

  private checkPassword(conn: Conn, given: Buffer | null, rest: Buffer): void {
    if (conn.state !== 'pending') return;
    if (given === null) return this.authFailed(conn, 'line-too-long');
    const h = (b: Buffer) => crypto.createHmac('sha256', this.hmacKey).update(b).digest();
    const ok = crypto.timingSafeEqual(h(given), h(this.password as Buffer));
    given.fill(0);
    this.counters.passwordChecks++;
    if (!ok) return this.authFailed(conn, 'auth-failed');
    this.gate.succeeded(conn.addr);
    this.leavePending(conn);
    conn.sock.removeAllListeners('data');
    conn.sock.removeAllListeners('end');
    if (!this.admitClient(conn)) return;
    conn.sock.write(AUTH_SUCCESS);
    this.startStreaming(conn, rest);
  }

  private authFailed(conn: Conn, reason: 'auth-failed' | 'line-too-long'): void {
    conn.state = 'verifying';
    conn.failed = reason;
    conn.line = null;
    conn.sock.pause();
    conn.sock.removeAllListeners('data');
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    const { count, delay, prefix } = this.gate.failed(conn.addr);
    this.counters.passwordFailures++;
    const what = reason === 'line-too-long' ? 'password line too long' : 'wrong password';
    this.tally.add(what, `tcp ${conn.peer}: ${what} (failure ${count} from ${prefix}${delay ? `, answered after ${delay} ms` : ''})`, conn.addr);
    const answer = () => {
      conn.timer = null;
      if (conn.state === 'verifying') this.refuse(conn, reason, AUTH_FAILED, true);
    };
    if (delay === 0) answer();
    else {
      conn.timer = setTimeout(answer, delay);
      conn.timer.unref();
    }
  }

  private leavePending(conn: Conn): void {
    if (conn.state === 'pending' || conn.state === 'verifying') {
      this.pendingCount--;
      const set = this.pendingByPrefix.get(conn.prefix);
      if (set) {
        set.delete(conn);
        if (set.size === 0) this.pendingByPrefix.delete(conn.prefix);
      }
      conn.state = 'closing';
    }
    if (conn.cancelCheck) conn.cancelCheck();
    conn.cancelCheck = null;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
  }

  /** Turns a connection away: optional message, then close (destroyed after the grace). */
  private refuse(conn: Conn, reason: RejectReason, message: string, quiet = false): void {
    this.leavePending(conn);
    conn.state = 'closing';
    this.rejected[reason]++;
    if (!quiet) this.tally.add(`refused (${reason})`, `${who(conn)}: refused (${reason})`, conn.addr);
    if (this.listenerCount('reject') > 0) this.emit('reject', { transport: conn.transport, peer: conn.peer, reason });
    this.endConn(conn, message);
  }

  private endConn(conn: Conn, message: string): void {
    const sock = conn.sock;
    if (sock.destroyed) return;
    sock.removeAllListeners('data');
    sock.resume(); // discard anything else it sends
    if (message) sock.end(message);
    else sock.end();
    const t = setTimeout(() => sock.destroy(), Math.max(this.graceMs, 1));
    t.unref();
    sock.once('close', () => clearTimeout(t));
  }

  private startStreaming(conn: Conn, early: Buffer = EMPTY): void {
    conn.state = 'streaming';
    conn.announced = true;
    this.streaming.add(conn);
    this.counters.totalClients++;
    const sock = conn.sock;
    sock.on('end', () => {
      // The client closed its sending side only (shutdown(SHUT_WR): `nc -N`, `nc -U sock
      // </dev/null`, a client that sent its password or request and is done talking): it
      // keeps getting events. One that closed altogether looks the same until a write to it
      // fails (EPIPE / ECONNRESET): that ends it, with reason 'end'; so does a newcomer that
      // needs its slot (evictEnded). A request line cut short by the EOF is taken as it is.
      conn.peerEnded = true;
      if (conn.mode === 'request' && conn.state === 'streaming') this.onRequestData(conn, Buffer.from('\n'));
    });
    if (conn.transport === 'tcp') sock.setKeepAlive(true, 60000); // (TCP_NODELAY: set by the listener)
    if (conn.only !== null) conn.filter = makeFilter(null, [conn.only]);
    const cred = conn.uid !== null ? `, uid ${conn.uid}, pid ${conn.pid}${conn.only !== null ? ', its own processes only' : ''}` : '';
    this.clientLog(conn, `${who(conn)}: client ${conn.id} connected (${this.streaming.size}/${this.maxClients})${cred}`);
    this.emit('client', { id: conn.id, transport: conn.transport, peer: conn.peer });
    if (this.requestWaitMs === 0) {
      // No request window (no ring): nothing tells a seed client from another, and without a
      // ring there is nothing to pace its lines from: the stream goes out as it comes.
      sock.resume(); // whatever it sends is ignored
      return;
    }
    // It may send one request line first; meanwhile its events wait in the ring.
    conn.mode = 'request';
    conn.nextSeq = this.ring.next;
    conn.req = EMPTY;
    conn.timer = setTimeout(() => {
      conn.timer = null;
      // Nothing at all came after the password: a client written for the seed, which
      // parses each read as one event, may be at the other end.
      conn.perLine = conn.req !== null && conn.req.length === 0 && !conn.peerEnded && this.isPlainTcp(conn);
      this.release(conn, null);
    }, this.requestWaitMs);
    sock.on('data', (chunk: Buffer) => this.onRequestData(conn, chunk));
    if (early.length > 0) this.onRequestData(conn, early);
    sock.resume();
  }

  private onRequestData(conn: Conn, chunk: Buffer): void {
    if (conn.mode !== 'request' || !conn.req) return;
    const start = conn.req.length;
    const buf = start === 0 ? chunk : Buffer.concat([conn.req, chunk]);
    // A request is a JSON object; a client that sends anything else is not speaking this
    // protocol (seed clients send nothing): it gets the plain stream and is not listened to.
    const lead = buf.subarray(0, 64).toString('latin1').trimStart();
    if (lead.length > 0 && lead[0] !== '{') return this.release(conn, null);
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) {
      if (buf.length > MAX_REQUEST_BYTES) return this.badRequest(conn, `the request line is longer than ${MAX_REQUEST_BYTES} bytes`);
      conn.req = buf;
      return;
    }
    if (nl > MAX_REQUEST_BYTES) return this.badRequest(conn, `the request line is longer than ${MAX_REQUEST_BYTES} bytes`);
    const line = buf.toString('utf8', 0, nl).replace(/\r$/, '');
    if (line.trim() === '') return this.release(conn, null); // an empty line: the plain stream
    let req: ClientRequest;
    try {
      req = parseRequest(line);
    } catch (err) {
      return this.badRequest(conn, (err as Error).message);
    }
    this.release(conn, req);
  }

  private badRequest(conn: Conn, why: string): void {
    this.tally.add('bad request', `${who(conn)}: client ${conn.id}: bad request (${why})`, conn.addr);
    conn.reason = 'bad-request';
    conn.req = null;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'closing';
    this.streaming.delete(conn);
    this.endConn(conn, badRequestLine(why));
  }

  /** Ends the request phase: answers the request (if any), then feeds it from the ring. */
  private release(conn: Conn, req: ClientRequest | null): void {
    if (conn.mode !== 'request' || conn.state !== 'streaming') return;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    conn.req = null;
    conn.sock.removeAllListeners('data'); // anything after the request line is ignored
    if (req) return this.whenAllowed(conn, req);
    this.goStream(conn);
  }

  /**
   * A request is answered once its peer (a local user, a network) has a token for it: 2 a
   * second, 10 at once. Meanwhile its events wait in the ring, as during the request window.
   */
  private whenAllowed(conn: Conn, req: ClientRequest): void {
    if (conn.mode !== 'request' || conn.state !== 'streaming') return;
    const key = peerKey(conn);
    const privileged = isPrivileged(conn);
    // One costly answer at a time per peer (names being looked up, a snapshot not yet
    // written): the next waits for it, so that one peer never holds many tables or lookups.
    if (!privileged && (req.users || req.snapshot) && (this.busy.get(key) ?? 0) > 0) {
      conn.timer = setTimeout(() => {
        conn.timer = null;
        this.whenAllowed(conn, req);
      }, BUSY_RETRY_MS);
      return;
    }
    const wait = privileged ? 0 : this.requestBudget.take(key, 1);
    if (wait > 0) {
      this.tally.add('requests slowed', `${who(conn)}: client ${conn.id}: too many requests from ${peerKey(conn)}, answered in ${wait} ms`, peerKey(conn));
      conn.timer = setTimeout(() => {
        conn.timer = null;
        this.whenAllowed(conn, req);
      }, wait);
      return;
    }
    // User names are looked up off the JS thread (NSS may be slow), cached.
    const names = req.users ?? null;
    if (!names) return this.answer(conn, req, null);
    this.setBusy(conn, true);
    Promise.all(names.map((u) => this.ids.resolve('passwd', u, 'user'))).then(
      (uids) => {
        this.setBusy(conn, false);
        this.answer(conn, req, uids);
      },
      (err: Error) => {
        this.setBusy(conn, false);
        if (conn.mode === 'request' && conn.state === 'streaming') this.badRequest(conn, err.message);
      },
    );
  }

  /** Marks a costly answer of `conn`'s peer begun or done (whenAllowed). Privileged peers are not counted. */
  private setBusy(conn: Conn, on: boolean): void {
    if (isPrivileged(conn) || conn.busy === on) return;
    conn.busy = on;
    const key = peerKey(conn);
    const n = (this.busy.get(key) ?? 0) + (on ? 1 : -1);
    if (n > 0) this.busy.set(key, n);
    else this.busy.delete(key);
  }

  /** Answers a request (hello, a snapshot) and sets where its stream starts. */
  private answer(conn: Conn, req: ClientRequest, uids: number[] | null): void {
    if (conn.mode !== 'request' || conn.state !== 'streaming') return;
    if (req.snapshot && typeof this.source.snapshot !== 'function') {
      return this.badRequest(conn, 'this server keeps no process table (its source has no snapshot())');
    }
    // A peer that sees only its own processes asks for those of others in vain.
    if (conn.only !== null) uids = (uids ?? [conn.only]).filter((u) => u === conn.only);
    conn.filter = makeFilter(req.events ?? null, uids);
    const last = this.ring.next - 1;
    // The answer goes out in pieces of whole lines as the socket drains (pump), so that a
    // big snapshot never sits in the socket's buffer beyond the client's bound; the table
    // is taken now, at `last`, and kept in wire form only until it has been written.
    const pieceBytes = Math.max(1, Math.min(this.bufferBytes >> 1, 64 * 1024));
    const own: Buffer[] = [];
    let text = toLine({ event: 'hello', time: new Date().toISOString(), stream: this.stream, last_seq: last } as unknown as ProcEvent);
    if (req.snapshot) {
      const procs = (this.source.snapshot as () => ProcessRecord[])().filter((p) => !uids || (p.uid !== null && uids.includes(p.uid)));
      let bytes = Buffer.byteLength(text);
      for (const p of procs) {
        const line = toLine({ event: 'process', ...p } as unknown as ProcEvent);
        text += line;
        bytes += Buffer.byteLength(line);
        if (bytes >= pieceBytes) {
          own.push(Buffer.from(text));
          text = '';
          bytes = 0;
        }
      }
      text += toLine({ event: 'snapshot', time: new Date().toISOString(), count: procs.length } as unknown as ProcEvent);
    }
    own.push(Buffer.from(text));
    if (req.snapshot) this.setBusy(conn, true); // until the table is written (pump) or it goes
    conn.own = own;
    conn.ownBytes = own.reduce((n, b) => n + b.length, 0);
    if (req.resume_from !== undefined) {
      // Another stream's seq (the daemon restarted) or one ahead of ours: everything of this
      // stream is new to it.
      const other = (req.stream !== undefined && req.stream !== this.stream) || req.resume_from > last;
      conn.nextSeq = other ? 1 : req.resume_from + 1;
    }
    const what = [req.resume_from !== undefined ? `resume after ${req.resume_from}` : '', req.snapshot ? 'snapshot' : '', conn.filter ? 'filtered' : ''].filter(Boolean);
    this.clientLog(conn, `${who(conn)}: client ${conn.id} asked for ${what.join(', ') || 'the stream'}`);
    // What it asked for beyond the live stream (its snapshot, the backlog it resumed from)
    // is paid for from its peer's answer budget as it goes out.
    if (!isPrivileged(conn) && (req.snapshot || req.resume_from !== undefined)) conn.owed = conn.ownBytes + this.ring.bytesFrom(Math.max(conn.nextSeq, this.ring.first));

    this.goStream(conn);
  }

  /** Out of the request phase: fed from the ring from nextSeq on. */
  private goStream(conn: Conn): void {
    conn.sock.resume();
    conn.mode = 'catch-up';
    conn.slack = this.ring.bytesFrom(Math.max(conn.nextSeq, this.ring.first));
    this.pump(conn);
  }

  /** Bytes a catching-up client is behind: in its socket, and in the ring still to send. */
  private behind(conn: Conn): number {
    return conn.sock.writableLength + this.ring.bytesFrom(conn.nextSeq);
  }

  /** A TCP client without TLS: one that a client written for the seed may be. */
  private isPlainTcp(conn: Conn): boolean {
    return conn.transport === 'tcp' && !(conn.sock instanceof tls.TLSSocket);
  }

  /** Writes `count` event lines of the shared stream to one client. */
  private writeStream(conn: Conn, buf: Buffer, count: number): void {
    conn.sock.write(buf);
    conn.sent += count;
    conn.bytes += buf.length;
    this.counters.sentEvents += count;
    this.counters.sentBytes += buf.length;
  }

  /** Writes lines of its own (not of the shared stream) to one client. */
  private writeOwn(conn: Conn, text: string | Buffer): void {
    const n = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    conn.sock.write(text);
    conn.bytes += n;
    this.counters.sentBytes += n;
  }

  /**
   * Feeds a catching-up client from the ring, as fast as its socket drains; once it has
   * everything, it goes live. What the ring no longer holds becomes one `lost` line with
   * the exact count.
   */
  private pump(conn: Conn): void {
    const sock = conn.sock;
    const half = Math.max(this.bufferBytes >> 1, 1);
    while (conn.mode === 'catch-up' && conn.state === 'streaming' && !sock.destroyed) {
      if (conn.own) {
        // Its answer first (hello, snapshot), piece by piece within its bound.
        if (sock.writableLength >= half) return this.watchFlush(conn);
        if (conn.owed > 0 && !this.charge(conn, conn.own[0]?.length ?? 0)) return;
        const piece = conn.own.shift();
        if (conn.own.length === 0) {
          conn.own = null;
          this.setBusy(conn, false);
        }
        if (piece) {
          conn.ownBytes -= piece.length;
          this.writeOwn(conn, piece);
        }
        continue;
      }
      if (conn.perLine) return this.pace(conn);
      if (conn.nextSeq >= this.ring.next) {
        conn.mode = 'live';
        return;
      }
      if (sock.writableLength >= half) return this.watchFlush(conn);
      if (conn.nextSeq < this.ring.first) {
        this.writeLost(conn);
        continue;
      }
      const at = this.ring.find(conn.nextSeq);
      if (!at) return; // cannot happen: nextSeq is within the ring
      if (conn.owed > 0 && !this.charge(conn, at.chunk.buf.length)) return;
      const { buf, count } = select(at.chunk, at.index, conn.filter);
      conn.nextSeq = at.chunk.first + at.chunk.ends.length;
      if (buf.length === 0) continue;
      this.writeStream(conn, buf, count);
    }
  }

  /**
   * Pays for `n` bytes of a requested answer from its peer's budget (16 MiB a second, 64 MiB
   * at once): true if it may write them now; else false, and pump() runs again once it may.
   */
  private charge(conn: Conn, n: number): boolean {
    const wait = this.answerBudget.take(peerKey(conn), n);
    if (wait > 0) {
      if (!conn.timer) {
        conn.timer = setTimeout(() => {
          conn.timer = null;
          this.pump(conn);
        }, wait);
      }
      return false;
    }
    conn.owed = Math.max(0, conn.owed - n);
    return true;
  }

  private broadcast(lines: LineBatch): void {
    const n = lines.ends.length;
    if (n === 0) return;
    this.counters.batches++;
    this.counters.events += n;
    // Serialised once, numbered, kept in the ring; the same bytes go to every client.
    const chunk = numberLines(lines, this.ring.next);
    this.ring.push(chunk);
    const bound = this.bufferBytes;
    for (const conn of this.streaming) {
      if (conn.mode === 'catch-up' && this.policy === 'disconnect' && !conn.perLine) {
        const behind = this.behind(conn);
        if (behind > bound + conn.slack) {
          this.dropSlow(conn); // further behind than a full buffer (and what it asked for)
          continue;
        }
        conn.slack = Math.min(conn.slack, behind);
      }
      if (conn.perLine) {
        this.pace(conn);
        continue;
      }
      if (conn.mode !== 'live') continue; // fed from the ring
      const sock = conn.sock;
      if (sock.destroyed || !sock.writable) continue;
      const { buf, count } = conn.filter ? select(chunk, 0, conn.filter) : { buf: chunk.buf, count: n };
      if (buf.length === 0) continue;
      const queued = sock.writableLength;
      if (queued > 0 && queued + buf.length > bound) {
        if (this.policy === 'disconnect') {
          this.dropSlow(conn);
          continue;
        }
        // Behind: from now on it is fed from the ring once its backlog has flushed; it only
        // loses what the ring lets go before it gets there.
        conn.mode = 'catch-up';
        conn.nextSeq = chunk.first;
        this.watchFlush(conn);
        continue;
      }
      this.writeStream(conn, buf, count);
    }
  }

  /** Gives up a client's backlog before seq `to` (the ring no longer holds it): one `lost` line with the exact count. */
  private writeLost(conn: Conn, to = this.ring.first): void {
    const missed = to - conn.nextSeq;
    const lost: LostEvent = { event: 'lost', time: new Date().toISOString(), count: missed, source: 'client' };
    this.writeOwn(conn, toLine(lost));
    conn.dropped += missed;
    this.counters.droppedEvents += missed;
    conn.nextSeq = to;
  }

  /**
   * Feeds a perLine client from the ring one line at a time: a line only once the one before
   * has been handed to the kernel and about LINE_GAP_MS have passed, so that each goes out in
   * a segment of its own. One interval timer serves every such client while any has lines to
   * get; one whose socket has bytes waiting is picked up again when they have flushed. Its
   * backlog is bounded by PACED_MAX_BEHIND (it is never disconnected as slow for it: its pace
   * is ours), and by the ring.
   */
  private pace(conn: Conn): void {
    if (this.stepLine(conn, performance.now())) this.paced.add(conn);
    else this.paced.delete(conn);
    if (this.paced.size > 0 && !this.pacer) {
      this.pacer = setInterval(() => {
        const now = performance.now();
        for (const c of this.paced) if (!this.stepLine(c, now)) this.paced.delete(c);
        if (this.paced.size === 0 && this.pacer) {
          clearInterval(this.pacer);
          this.pacer = null;
        }
      }, LINE_GAP_MS);
      this.pacer.unref();
    }
  }

  /**
   * Writes a perLine client its next line if it is due; false when it has none to get (or is
   * gone). It is `live` while it has every line, `catch-up` while lines wait for it.
   */
  private stepLine(conn: Conn, now: number): boolean {
    const sock = conn.sock;
    if (conn.state !== 'streaming' || sock.destroyed || this.state !== 'listening') return false;
    conn.mode = conn.nextSeq < this.ring.next ? 'catch-up' : 'live';
    if (conn.mode === 'live') return false;
    if (sock.writableLength > 0) {
      this.watchFlush(conn); // it is paced again from pump() once they have gone
      return false;
    }
    // (The timer ticks on whole milliseconds: a tick 4.x ms after the last line is on time.)
    if (now - conn.lineAt < LINE_GAP_MS - 1) return true;
    conn.lineAt = now;
    if (conn.nextSeq < this.ring.first) {
      this.writeLost(conn);
      return true;
    }
    if (this.ring.next - conn.nextSeq > PACED_MAX_BEHIND) {
      this.writeLost(conn, this.ring.next - PACED_MAX_BEHIND / 2);
      return true;
    }
    const at = this.ring.find(conn.nextSeq);
    if (!at) return false;
    const { chunk, index } = at;
    conn.nextSeq++;
    this.writeStream(conn, chunk.buf.subarray(lineOffset(chunk, index), chunk.ends[index]), 1);
    if (conn.nextSeq < this.ring.next) return true;
    conn.mode = 'live';
    return false;
  }

  /**
   * Calls back once everything queued for a client has been flushed (an empty write
   * completes in order), to go on feeding it from the ring even if no further batch comes.
   */
  private watchFlush(conn: Conn): void {
    if (conn.flushWatch) return;
    conn.flushWatch = true;
    conn.sock.write(EMPTY, () => {
      conn.flushWatch = false;
      if (conn.state === 'streaming' && this.state === 'listening' && !conn.sock.destroyed) this.pump(conn);
    });
  }

  /**
   * Closes each streaming client whose waiting bytes made no progress for stallTimeoutMs.
   * Progress is bytes accepted by the kernel: a write completing (bytesWritten less what is
   * still queued grows) or the kernel-side write queue of a write in progress shrinking. A
   * client fed from the ring ('catch-up') always has bytes waiting while it is behind, so
   * the same look covers it; one with nothing waiting is idle, not stalled.
   */
  private checkStalls(): void {
    const now = Date.now();
    for (const conn of this.streaming) {
      const sock = conn.sock;
      if (sock.destroyed) continue;
      const queued = sock.writableLength;
      const handle = (sock as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
      const inWrite = typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0;
      const done = sock.bytesWritten - queued;
      const progressed = done > conn.doneMark || inWrite < conn.queueMark;
      conn.doneMark = done;
      conn.queueMark = inWrite;
      if (queued === 0) {
        conn.stallSince = 0;
      } else if (progressed || conn.stallSince === 0) {
        conn.stallSince = now;
      } else if (now - conn.stallSince >= this.stallTimeoutMs) {
        this.dropStalled(conn, queued, now - conn.stallSince);
      }
    }
  }

  private dropStalled(conn: Conn, queued: number, ms: number): void {
    conn.reason = 'stalled';
    this.counters.stallDisconnects++;
    this.log(`${who(conn)}: client ${conn.id} stalled (${queued} bytes waiting, none taken for ${(ms / 1000).toFixed(1)} s), disconnecting`);
    conn.state = 'closing';
    this.streaming.delete(conn);
    conn.sock.destroy();
  }

  private dropSlow(conn: Conn): void {
    conn.reason = 'slow';
    this.counters.slowDisconnects++;
    this.log(`${who(conn)}: client ${conn.id} too slow (${conn.sock.writableLength} bytes buffered), disconnecting`);
    conn.state = 'closing';
    this.streaming.delete(conn);
    conn.sock.destroy();
  }

  private onClose(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    if (conn.state === 'pending' || conn.state === 'verifying') {
      // Gone while authenticating, without us turning it away first (a guesser that does not
      // wait for the answer to its failure still counts as a failure).
      const reason: RejectReason = conn.failed ?? 'closed-before-auth';
      this.leavePending(conn);
      this.rejected[reason]++;
      if (this.listenerCount('reject') > 0) this.emit('reject', { transport: conn.transport, peer: conn.peer, reason });
      return;
    }
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    this.setBusy(conn, false);
    this.streaming.delete(conn);
    if (!conn.announced) return;
    const reason: ClientCloseReason = conn.reason ?? 'end';
    const info: ClientCloseInfo = { id: conn.id, transport: conn.transport, peer: conn.peer, reason, sent: conn.sent, dropped: conn.dropped };
    if (conn.error) info.error = conn.error;
    this.clientLog(conn, `${who(conn)}: client ${conn.id} closed (${reason}${conn.error ? ` ${conn.error}` : ''}; ${conn.sent} events sent, ${conn.dropped} dropped)`);
    this.emit('clientClose', info);
  }

  /** Counters: events received and sent, bytes, clients, drops per client. */
  stats(): BroadcastStats {
    const perClient: ClientStats[] = [];
    for (const c of this.streaming) {
      perClient.push({
        id: c.id,
        transport: c.transport,
        peer: c.peer,
        sent: c.sent,
        bytes: c.bytes,
        dropped: c.dropped,
        buffered: c.sock.writableLength,
        answerBytes: c.ownBytes,
        mode: c.mode,
        filtered: c.filter !== null,
      });
    }
    return {
      ...this.counters,
      clients: this.streaming.size,
      pending: this.pendingCount,
      passwordWaiting: this.gate.waiting,
      rejected: { ...this.rejected },
      perClient,
      seq: this.ring.next - 1,
      stream: this.stream,
      replay: { events: this.ring.events, bytes: this.ring.bytes, first: this.ring.first },
    };
  }

  /**
   * Stops listening, ends every connection (those that cannot flush within `closeGraceMs` are
   * destroyed), and removes the socket file. Does not stop the source. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const wasListening = this.state === 'listening';
    this.state = 'closing';
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = null;
    if (this.pacer) clearInterval(this.pacer);
    this.pacer = null;
    this.paced.clear();
    this.tally.close();
    this.connTally.close();
    this.gate.close();
    const gone: Promise<void>[] = [];
    for (const conn of this.conns) {
      if (conn.announced && !conn.reason) conn.reason = 'server-close';
      this.leavePending(conn);
      conn.state = 'closing';
      gone.push(new Promise((resolve) => (conn.sock.destroyed ? resolve() : conn.sock.once('close', () => resolve()))));
      const sock = conn.sock;
      if (!sock.destroyed) {
        sock.removeAllListeners('data');
        sock.resume();
        sock.end();
      }
    }
    const grace = setTimeout(() => {
      for (const conn of this.conns) conn.sock.destroy();
    }, this.graceMs);
    await Promise.all([this.teardownListeners(), ...gone]);
    clearTimeout(grace);
    this.state = 'closed';
    if (wasListening) this.log('closed');
  }

  private async teardownListeners(): Promise<void> {
    const servers = [this.unixServer, this.tcpServer].filter((s): s is net.Server => s !== null);
    this.unixServer = null;
    this.tcpServer = null;
    // The socket file goes first, while it still answers: a starter never finds it stale and
    // removes it, and so this never removes another instance's socket put in its place.
    const f = this.unixFile;
    this.unixFile = null;
    if (f) {
      try {
        const st = fs.lstatSync(f.path);
        if (st.isSocket() && st.dev === f.dev && st.ino === f.ino) fs.unlinkSync(f.path);
      } catch (err) {
        // Gone already (e.g. its directory was removed) is fine; anything else leaves a stale
        // socket file behind, which is worth a line (a later start replaces it if it can).
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') this.log(`cannot remove the socket file ${f.path}: ${(err as Error).message}`);
      }
    }
    await Promise.all(servers.map(closeServer));
  }
}

/**
 * Creates a server that broadcasts `options.source`'s events as NDJSON over a Unix socket
 * and/or authenticated TCP. Call `listen()` to start. Throws a `BroadcastServerError` for
 * bad options (e.g. TCP without a password: code `ENOPASSWORD`).
 */
export function createBroadcastServer(options: BroadcastServerOptions): BroadcastServer {
  return new BroadcastServer(options);
}

/** The soft limit on open files of this process (/proc/self/limits), or Infinity. */
function softFdLimit(): number {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return Infinity;
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  const n = m ? Number(m[1]) : NaN; // "unlimited" is NaN
  return Number.isSafeInteger(n) && n > 0 ? n : Infinity;
}

/** Descriptors open in this process; Infinity when not even one is free to count them; -1 without /proc. */
function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1; // not the one reading the directory
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? Infinity : -1;
  }
}
