// The broadcast server: assembles the listeners, admission (TCP), client slots, request
// windows, the fan-out and the stall watch, and keeps each connection's life from accept to
// close. Data flows one way: source → fan-out → clients.
import * as crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { subscribeLines, type EventSource } from '../source';
export type { BatchSource, EventSource, LineSource } from '../source';
import { AUTH_SUCCESS, TOO_MANY_FILES } from '../protocol';
import { LogTally } from './log-tally';
import { Admission } from './admission';
import { Connections } from './connections';
import { TokenBuckets } from './buckets';
import { PeerIdentifier } from './peers';
import { makeFilter, ReplayRing } from './replay';
import { EMPTY, isPrivileged, makeConn, peerKey, who, type Conn } from './conn';
import { resolveServerOptions } from './setup';
import { FdGuard } from './fds';
import { Listeners } from './listeners';
import { Fanout } from './fanout';
import { Requests } from './requests';
import { Slots } from './slots';
import { StallWatch } from './stalls';

export * from './types';
import {
  BroadcastServerError,
  type BroadcastAddress,
  type BroadcastServerEvents,
  type BroadcastServerOptions,
  type BroadcastStats,
  type ClientCloseInfo,
  type ClientCloseReason,
  type Transport,
} from './types';

/**
 * Serves the events of `source` to many clients at once over a Unix socket and/or
 * password-protected TCP. Each batch is serialised once and the same bytes go to every
 * client; a slow client only ever loses its own events.
 */
export class BroadcastServer extends EventEmitter<BroadcastServerEvents> {
  /** Identifies this run of the stream: a resume with another stream's seq starts over. */
  readonly stream = crypto.randomBytes(4).toString('hex');
  private readonly source: EventSource;
  private readonly log: (line: string) => void;
  private readonly sockets: Listeners;
  /** TCP connections until they are authenticated (null without TCP). */
  private readonly admission: Admission | null = null;
  private readonly tlsSummary: string;
  private readonly maxClients: number;
  private readonly unixMode: number;
  private readonly fanout: Fanout;
  private readonly requests: Requests;
  private readonly slots: Slots;
  private readonly stalls: StallWatch;
  private readonly fds: FdGuard;
  /** Lines a peer can cause at will (refusals, failures): a few as they come, the rest summed up. */
  private readonly tally: LogTally;
  /** Connected/closed lines of local users other than root and the server's own (clientLog). */
  private readonly connTally: LogTally;
  /** Every connection, from accept to close. */
  private readonly conns: Connections;
  /** Who Unix clients are. */
  private readonly peers: PeerIdentifier;
  private nextId = 1;
  private totalClients = 0;
  private state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  private closing: Promise<void> | null = null;
  /** Stops taking the source's lines (set by listen()). */
  private unsubscribe: (() => void) | null = null;

  constructor(options: BroadcastServerOptions) {
    super();
    const o = resolveServerOptions(options);
    this.source = o.source;
    this.log = o.log;
    this.tally = new LogTally(this.log);
    this.connTally = new LogTally(this.log, 10000, 20);
    this.maxClients = o.maxClients;
    this.conns = new Connections(o.graceMs, {
      tally: this.tally,
      rejected: (info) => {
        if (this.listenerCount('reject') > 0) this.emit('reject', info);
      },
      leavePending: (conn) => this.leavePending(conn),
    });
    this.unixMode = o.unix.mode;
    this.peers = new PeerIdentifier(o.visibility, o.subordinateIds, this.log);
    this.tlsSummary = o.admission?.tls?.summary ?? '';
    if (o.admission) {
      this.admission = new Admission(o.admission, {
        refuse: (conn, reason, message, quiet) => this.conns.refuse(conn, reason, message, quiet),
        admitClient: (conn) => this.admitClient(conn),
        admitted: (conn, rest) => {
          if (!this.admitClient(conn)) return;
          conn.sock.write(AUTH_SUCCESS);
          this.startStreaming(conn, rest);
        },
        socketError: (conn, err) => this.conns.socketError(conn, err),
        tally: this.tally,
      });
    }
    this.sockets = new Listeners(
      // Half-open connections are kept for plain TCP (a client may send its password and shut
      // its side); not under TLS, where a peer that closes during the handshake must be seen.
      { unix: o.unix, tcp: o.tcp, tcpHalfOpen: !this.admission?.tlsServer },
      {
        connection: (sock, transport) => this.onConnection(sock, transport),
        log: this.log,
        error: (err) => {
          if (this.listenerCount('error') > 0) this.emit('error', err);
        },
      },
    );
    this.fanout = new Fanout(
      {
        ring: new ReplayRing(o.replayEvents, o.replayBytes),
        bufferBytes: o.bufferBytes,
        policy: o.policy,
        answerBudget: new TokenBuckets(o.answerBytesPerSecond, o.answerBytesPerSecond * 4),
      },
      { log: this.log, answerWritten: (conn) => this.requests.setBusy(conn, false), open: () => this.state === 'listening' },
    );
    const source = this.source;
    this.requests = new Requests(
      {
        waitMs: o.requestWaitMs,
        requestsPerSecond: o.requestsPerSecond,
        stream: this.stream,
        bufferBytes: o.bufferBytes,
        snapshot: typeof source.snapshot === 'function' ? () => source.snapshot?.() ?? [] : null,
      },
      this.fanout,
      { tally: this.tally, clientLog: (conn, line) => this.clientLog(conn, line), endConn: (conn, message) => this.conns.end(conn, message) },
    );
    this.slots = new Slots({ maxClients: o.maxClients, reserved: o.reservedClients, maxPerUser: o.maxPerUser }, this.fanout.clients, (conn) => {
      this.onClose(conn); // its slot is free now, not when the socket's close comes
      conn.sock.destroy();
    });
    this.stalls = new StallWatch(
      o.stallTimeoutMs,
      () => this.fanout.clients,
      (conn, queued, ms) => this.fanout.dropStalled(conn, queued, ms),
    );
    this.fds = new FdGuard(this.log);
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

  /** Starts listening on the configured transports. Rejects (and leaves nothing behind) on failure. */
  async listen(): Promise<void> {
    if (this.state !== 'new') throw new BroadcastServerError('EINVAL', `listen() called on a ${this.state} server`);
    this.state = 'listening';
    try {
      await this.sockets.listen();
    } catch (err) {
      this.state = 'closed';
      throw err;
    }
    this.unsubscribe = subscribeLines(this.source, (lines) => this.fanout.broadcast(lines));
    this.fds.start(this.conns.all.size);
    this.stalls.start();
    const a = this.address();
    if (a.unix) this.log(`listening on unix socket ${a.unix} (mode ${this.unixMode.toString(8).padStart(4, '0')})`);
    if (a.tcp) this.log(`listening on tcp ${a.tcp.address}:${a.tcp.port}${this.admission?.tlsServer ? ` with TLS (${this.tlsSummary})` : ''}`);
  }

  /** The bound addresses (the real TCP port when port 0 was asked). */
  address(): BroadcastAddress {
    return this.sockets.address();
  }

  // ------------------------------------------------------------------ connections

  private onConnection(sock: net.Socket, transport: Transport): void {
    const conn = makeConn(this.nextId++, sock, transport);
    if (transport === 'unix') this.peers.identify(conn);
    this.conns.add(conn, () => this.onClose(conn));
    if (this.state !== 'listening') return void sock.destroy(); // accepted while closing
    // Over TLS nothing can be said before the handshake: a connection beyond the pending
    // limits is closed without one (none is spent on it); a full server is told after it.
    const overTls = transport === 'tcp' && this.admission?.tlsServer;
    if (this.fds.short(this.conns.all.size, () => this.conns.rejected['too-many-files']) && !this.slots.evictEnded()) {
      return this.conns.refuseNoFiles(conn, overTls ? '' : TOO_MANY_FILES);
    }
    if (!overTls && !this.admitClient(conn)) return;
    if (transport === 'unix') this.startStreaming(conn);
    else (this.admission as Admission).take(conn); // the password (and TLS) handshake, then admitted()
  }

  /** Whether a streaming slot is free for `conn` (else it is refused, and false returned). */
  private admitClient(conn: Conn): boolean {
    const refusal = this.slots.take(conn);
    if (refusal) this.conns.refuse(conn, refusal.reason, refusal.message);
    return refusal === null;
  }

  /** Out of pending (TCP: its admission slot and password check given up); its timer stopped. */
  private leavePending(conn: Conn): void {
    if (this.admission) return this.admission.leave(conn);
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
  }

  private startStreaming(conn: Conn, early: Buffer = EMPTY): void {
    conn.state = 'streaming';
    conn.announced = true;
    this.fanout.add(conn);
    this.totalClients++;
    const sock = conn.sock;
    sock.on('end', () => {
      // The client closed its sending side only (shutdown(SHUT_WR): `nc -N`, `nc -U sock
      // </dev/null`, a client that sent its password or request and is done talking): it
      // keeps getting events. One that closed altogether looks the same until a write to it
      // fails (EPIPE / ECONNRESET): that ends it, with reason 'end'; so does a newcomer that
      // needs its slot (Slots.evictEnded).
      conn.peerEnded = true;
      this.requests.ended(conn);
    });
    if (conn.transport === 'tcp') sock.setKeepAlive(true, 60000); // (TCP_NODELAY: set by the listener)
    if (conn.only !== null) conn.filter = makeFilter(null, [conn.only]);
    const cred = conn.uid !== null ? `, uid ${conn.uid}, pid ${conn.pid}${conn.only !== null ? ', its own processes only' : ''}` : '';
    this.clientLog(conn, `${who(conn)}: client ${conn.id} connected (${this.fanout.clients.size}/${this.maxClients})${cred}`);
    this.emit('client', { id: conn.id, transport: conn.transport, peer: conn.peer });
    this.requests.open(conn, early);
  }

  private onClose(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    if (conn.state === 'pending' || conn.state === 'verifying') {
      // Gone while authenticating, without us turning it away first (a guesser that does not
      // wait for the answer to its failure still counts as a failure).
      this.leavePending(conn);
      this.conns.count(conn, conn.failed ?? 'closed-before-auth', null);
      return;
    }
    if (conn.timer) clearTimeout(conn.timer);
    if (conn.feedTimer) clearTimeout(conn.feedTimer);
    conn.timer = conn.feedTimer = null;
    this.requests.forget(conn);
    this.fanout.remove(conn);
    if (!conn.announced) return;
    const reason: ClientCloseReason = conn.reason ?? 'end';
    const info: ClientCloseInfo = { id: conn.id, transport: conn.transport, peer: conn.peer, reason, sent: conn.sent, dropped: conn.dropped };
    if (conn.error) info.error = conn.error;
    this.clientLog(conn, `${who(conn)}: client ${conn.id} closed (${reason}${conn.error ? ` ${conn.error}` : ''}; ${conn.sent} events sent, ${conn.dropped} dropped)`);
    this.emit('clientClose', info);
  }

  /** Counters: events received and sent, bytes, clients, drops per client. */
  stats(): BroadcastStats {
    const f = this.fanout.counters;
    const ring = this.fanout.ring;
    return {
      batches: f.batches,
      events: f.events,
      sentEvents: f.sentEvents,
      sentBytes: f.sentBytes,
      droppedEvents: f.droppedEvents,
      totalClients: this.totalClients,
      slowDisconnects: f.slowDisconnects,
      stallDisconnects: f.stallDisconnects,
      clients: this.fanout.clients.size,
      pending: this.admission?.pendingCount ?? 0,
      passwordChecks: this.admission?.checks ?? 0,
      passwordFailures: this.admission?.failures ?? 0,
      passwordWaiting: this.admission?.waiting ?? 0,
      rejected: { ...this.conns.rejected },
      perClient: this.fanout.clientStats(),
      seq: ring.next - 1,
      stream: this.stream,
      replay: { events: ring.events, bytes: ring.bytes, first: ring.first },
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
    this.stalls.close();
    this.fanout.close();
    this.tally.close();
    this.connTally.close();
    this.admission?.close();
    await Promise.all([this.conns.closeAll(), this.sockets.close()]); // (connections ended first, as before the split)
    this.state = 'closed';
    if (wasListening) this.log('closed');
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
