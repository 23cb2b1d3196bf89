import * as crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { toLine, type LineBatch, type LostEvent, type ProcessRecord, type ProcEvent } from '../events';
import { isEventSource, subscribeLines, type EventSource } from '../source';
export type { BatchSource, EventSource, LineSource } from '../source';
import { LogTally } from './log-tally';
import { prefixOf } from './auth-gate';
import { Admission } from './admission';
import { TokenBuckets } from './buckets';
import { IdResolver, SubordinateIds } from './accounts';
import { readProcPolicy, seesOnlyOwn, type PeerVisibility, type ProcPolicy } from './visibility';
import { lineOffset, numberLines, makeFilter, ReplayRing, select } from './replay';
import { AUTH_SUCCESS, badRequestLine, MAX_REQUEST_BYTES, parseRequest, tooManyClientsLine, tooManyForUserLine, TOO_MANY_FILES, type ClientRequest } from '../protocol';

export * from './types';
import {
  BroadcastServerError,
  REJECT_REASONS,
  type BroadcastAddress,
  type BroadcastServerEvents,
  type BroadcastServerOptions,
  type BroadcastStats,
  type ClientCloseInfo,
  type ClientCloseReason,
  type ClientStats,
  type RejectReason,
  type Transport,
  type UnixTransportOptions,
  FD_RESERVE,
} from './types';
import { BUSY_RETRY_MS, EMPTY, isPrivileged, LINE_GAP_MS, PACED_MAX_BEHIND, peerCredOf, peerKey, who, type Conn } from './conn';
import { groupId, intOption, resolvePassword, resolveTls } from './setup';
import { closeServer, listenOn, probeSocketPath, removeStaleSocket } from './unix-socket';
import { openFds, softFdLimit } from './fds';

/**
 * Serves the events of `source` to many clients at once over a Unix socket and/or
 * password-protected TCP. Each batch is serialised once and the same bytes go to every
 * client; a slow client only ever loses its own events.
 */
export class BroadcastServer extends EventEmitter<BroadcastServerEvents> {
  private readonly source: EventSource;
  private readonly unixOpts: Required<Omit<UnixTransportOptions, 'group'>> & { gid: number | null };
  private readonly tcpOpts: { port: number; host: string } | null;
  /** TCP connections until they are authenticated (null without TCP). */
  private readonly admission: Admission | null = null;
  /** With TLS: the admission's tls.Server (it never listens itself). */
  private readonly tlsServer: tls.Server | null = null;
  private readonly tlsSummary: string = '';
  private readonly maxClients: number;
  private readonly reservedClients: number;
  private readonly maxPerUser: number;
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
      const password = resolvePassword(options.tcp, (line) => this.log(line));
      const tlsSetup = options.tcp.tls !== undefined ? resolveTls(options.tcp.tls) : null;
      this.tlsSummary = tlsSetup?.summary ?? '';
      this.admission = new Admission(
        {
          password,
          tls: tlsSetup,
          maxPending: intOption(options.maxPending, 'maxPending', 128, 1),
          authTimeoutMs: intOption(options.authTimeoutMs, 'authTimeoutMs', 3000, 1),
          authFailureDelayMs: intOption(options.authFailureDelayMs, 'authFailureDelayMs', 250, 0),
          authFailureRate: intOption(options.authFailureRate, 'authFailureRate', 5, 0, 1000000),
        },
        {
          refuse: (conn, reason, message, quiet) => this.refuse(conn, reason, message, quiet),
          admitClient: (conn) => this.admitClient(conn),
          admitted: (conn, rest) => {
            if (!this.admitClient(conn)) return;
            conn.sock.write(AUTH_SUCCESS);
            this.startStreaming(conn, rest);
          },
          socketError: (conn, err) => this.onSocketError(conn, err),
          tally: this.tally,
        },
      );
      this.tlsServer = this.admission.tlsServer;
    } else {
      this.tcpOpts = null;
    }
    this.maxClients = intOption(options.maxClients, 'maxClients', 10, 1);
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
    (this.admission as Admission).take(conn); // the password (and TLS) handshake, then admitted()
  }

  /** Out of pending (TCP: its admission slot and password check given up); its timer stopped. */
  private leavePending(conn: Conn): void {
    if (this.admission) return this.admission.leave(conn);
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
      pending: this.admission?.pendingCount ?? 0,
      passwordChecks: this.admission?.checks ?? 0,
      passwordFailures: this.admission?.failures ?? 0,
      passwordWaiting: this.admission?.waiting ?? 0,
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
    this.admission?.close();
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
