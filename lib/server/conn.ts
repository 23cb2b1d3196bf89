// One connection of the broadcast server (Conn), and what is told of it: who it is, whose
// budgets it spends, whether it is privileged.
import type * as net from 'node:net';
import { loadBinding } from '../native';
import { prefixOf } from './auth-gate';
import type { Filter } from './replay';
import type { Schema } from '../ecs';
import type { ClientCloseReason, ClientInfo } from './types';

/** A connection as log lines name it: `unix` or `tcp 1.2.3.4:5678` (the peer of a Unix socket has no address). */
export function who(conn: Conn): string {
  return conn.transport === 'tcp' ? `tcp ${conn.peer}` : 'unix';
}

/**
 * One connection. Its life has two layers:
 * - `state`, its lifecycle: `new` → `pending` (TCP: waiting for its password; admission.ts) →
 *   `verifying` (a wrong password, its answer delayed) → `streaming` (it holds a slot;
 *   index.ts) → `closing`, set wherever it is ended: a refusal (connections.ts), a bad request
 *   (requests.ts), too slow or stalled (fanout.ts), the server closing.
 * - `mode`, how a streaming client is fed: `request` (its request window; requests.ts) →
 *   `catch-up` ⇄ `live` (fanout.ts). Meaningless before `streaming`.
 * The other fields are grouped the same way: who it is (peers.ts), its password (admission.ts),
 * its request and answer (requests.ts), its place in the stream (fanout.ts), its write
 * progress (stalls.ts). `timer` is admission's, then the request window's; the fan-out has
 * `feedTimer` of its own.
 */
export interface Conn extends ClientInfo {
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
  /** The fan-out's wait for its peer's answer budget (see Fanout.charge). */
  feedTimer: NodeJS.Timeout | null;
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
  /** The fields of the events it gets (its request's `schema`). */
  schema: Schema;
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

export const EMPTY = Buffer.alloc(0);

/** A new connection's record: who it is as far as its socket tells, nothing sent yet. */
export function makeConn(id: number, sock: net.Socket, transport: ClientInfo['transport']): Conn {
  const addr = transport === 'tcp' ? (sock.remoteAddress ?? '?').replace(/^::ffff:/, '') : 'unix';
  const peer = transport === 'tcp' ? (addr.includes(':') ? `[${addr}]:${sock.remotePort}` : `${addr}:${sock.remotePort}`) : 'unix';
  return {
    id,
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
    feedTimer: null,
    sent: 0,
    bytes: 0,
    dropped: 0,
    mode: 'live',
    nextSeq: 0,
    slack: 0,
    filter: null,
    schema: 'default',
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
}
/**
 * Least time between two lines to a client that reads each read as one event (perLine): a
 * reader that takes its time over one line still finds the next in a read of its own.
 */
export const LINE_GAP_MS = 5;
/**
 * Lines a paced client may be behind (10 s at its pace) before the oldest half of them is
 * given up as one `lost` line: it lags seconds, never minutes.
 */
export const PACED_MAX_BEHIND = 2000;
/** How soon a request waiting for its peer's previous costly answer looks again. */
export const BUSY_RETRY_MS = 50;

/** The daemon's own user: like root, it may use every client slot. */
export const OWN_UID = typeof process.getuid === 'function' ? process.getuid() : -1;

/** Whose budgets a connection spends: its local user's, or its network's. */
export function peerKey(conn: Conn): string {
  return conn.transport === 'unix' ? conn.account : conn.prefix;
}

/** Root or the daemon's own user at the other end of a Unix socket. */
export function isPrivileged(conn: Conn): boolean {
  return conn.uid !== null && (conn.uid === 0 || conn.uid === OWN_UID);
}

/** Who is at the other end of a Unix socket (SO_PEERCRED, through the addon); null if unknown. */
export function peerCredOf(sock: net.Socket): { pid: number; uid: number; gid: number } | null {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  const b = loadBinding();
  if (typeof fd !== 'number' || fd < 0 || b instanceof Error) return null;
  return b.peerCred(fd);
}

/** A password line waits this long at most for its check (AuthGate) before the connection is closed. */
export const CHECK_WAIT_MAX_MS = 30 * 1000;

/** A TCP connection's addresses: the same for an accepted socket and the TLS socket around it. */
export function tupleKey(s: net.Socket): string | null {
  if (!s.remoteAddress || !s.remotePort || !s.localAddress || !s.localPort) return null;
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}
