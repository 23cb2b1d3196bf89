// The broadcast server's public types: its options, events, stats and errors.
import type * as net from 'node:net';
import { CodedError } from '../events';
import type { Pem } from '../pem';
import type { EventSource } from '../source';
import type { PeerVisibility } from './visibility';

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
   * TCP connections waiting to authenticate at most (shared fairly between networks: see
   * docs/threat-model.md). Default 128.
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
