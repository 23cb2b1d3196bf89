// Admission of TCP connections: who may wait for the password (pending slots shared fairly
// between networks), the TLS handshake and client certificates, the password check (paced by
// AuthGate) and its answer. It hands an authenticated connection to the server (`admitted`)
// and knows nothing of streaming or replay.
import * as crypto from 'node:crypto';
import * as tls from 'node:tls';
import { subjectName } from '../pem';
import { AUTH_FAILED, AUTH_TIMEOUT, CLIENT_CERT_REFUSED, MAX_PASSWORD_BYTES, PASSWORD_PROMPT, tooManyPendingLine } from '../protocol';
import { AuthGate } from './auth-gate';
import { CHECK_WAIT_MAX_MS, EMPTY, tupleKey, type Conn } from './conn';
import type { LogTally } from './log-tally';
import type { RejectReason } from './types';

/** What admission needs of the server. */
export interface AdmissionHooks {
  /** Turns a connection away (counted, logged unless quiet, closed after `message`). */
  refuse(conn: Conn, reason: RejectReason, message: string, quiet?: boolean): void;
  /** Whether a streaming slot is free for it (else it has been refused). */
  admitClient(conn: Conn): boolean;
  /** Authenticated and out of pending: the server answers and streams; `rest` followed the password. */
  admitted(conn: Conn, rest: Buffer): void;
  /** A socket error of a connection (its TLS socket's, once the handshake is done). */
  socketError(conn: Conn, err: NodeJS.ErrnoException): void;
  /** Lines a peer can cause at will. */
  tally: LogTally;
}

/** The TLS set-up of a TCP server: options checked, and a line for the log. */
export interface TlsSetup {
  options: tls.TlsOptions;
  requireCert: boolean;
  summary: string;
}

export interface AdmissionOptions {
  password: Buffer;
  tls: TlsSetup | null;
  maxPending: number;
  authTimeoutMs: number;
  authFailureDelayMs: number;
  authFailureRate: number;
}

export class Admission {
  /** With TLS: a tls.Server that never listens itself; each admitted TCP socket is handed to it, so Node runs (and verifies) the handshake. */
  readonly tlsServer: tls.Server | null = null;
  private readonly tlsRequireCert: boolean = false;
  /** Connections in their TLS handshake, by their addresses (see tupleKey). */
  private readonly handshaking = new Map<string, Conn>();
  private readonly hmacKey = crypto.randomBytes(32);
  private readonly password: Buffer;
  private readonly maxPending: number;
  /** At most this many pending from one prefix, so that one network cannot take every slot. */
  private readonly maxPendingPerPrefix: number;
  private readonly authTimeoutMs: number;
  /** When a password is checked: the bound on guessing. */
  private readonly gate: AuthGate;
  /** Connections waiting to authenticate (or for the verdict), by prefix, oldest first. */
  private readonly pendingByPrefix = new Map<string, Set<Conn>>();
  /** Connections pending now. */
  pendingCount = 0;
  /** Passwords checked, and wrong (or too long), since start. */
  checks = 0;
  failures = 0;

  constructor(
    o: AdmissionOptions,
    private readonly hooks: AdmissionHooks,
  ) {
    this.password = o.password;
    this.maxPending = o.maxPending;
    this.maxPendingPerPrefix = Math.max(2, Math.floor(o.maxPending / 2));
    this.authTimeoutMs = o.authTimeoutMs;
    this.gate = new AuthGate({ baseDelayMs: o.authFailureDelayMs, ratePerSec: o.authFailureRate });
    if (o.tls) {
      this.tlsRequireCert = o.tls.requireCert;
      this.tlsServer = tls.createServer(o.tls.options);
      this.tlsServer.on('secureConnection', (s: tls.TLSSocket) => this.onTlsSecure(s));
      this.tlsServer.on('tlsClientError', (err: Error, s: tls.TLSSocket) => this.onTlsError(err, s));
    }
  }

  /** Password lines waiting for their check now. */
  get waiting(): number {
    return this.gate.waiting;
  }

  /**
   * A new TCP connection (the server has checked descriptors and, without TLS, client slots):
   * a pending slot, the authentication timeout, then the prompt (after the TLS handshake).
   */
  take(conn: Conn): void {
    const tlsServer = this.tlsServer;
    const sock = conn.sock;
    if (!this.admitPending(conn)) return this.hooks.refuse(conn, 'too-many-pending', tlsServer ? '' : tooManyPendingLine(this.maxPending));
    conn.state = 'pending';
    conn.line = Buffer.alloc(0);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      // (Still in the TLS handshake: conn.sock is the plain socket, and nothing can be said.)
      if (conn.state === 'pending') this.hooks.refuse(conn, 'auth-timeout', conn.sock === sock && tlsServer ? '' : AUTH_TIMEOUT);
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

  close(): void {
    this.gate.close();
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
    if (conn.state === 'verifying') return this.hooks.refuse(conn, 'auth-failed', AUTH_FAILED, true);
    this.hooks.refuse(conn, 'too-many-pending', inTls ? '' : tooManyPendingLine(this.maxPending));
  }

  /** TLS is up: verify the client certificate if one is required, then the password handshake. */
  private onTlsSecure(s: tls.TLSSocket): void {
    const key = tupleKey(s);
    const conn = key === null ? undefined : this.handshaking.get(key);
    if (key !== null) this.handshaking.delete(key);
    if (!conn || conn.state !== 'pending') return void s.destroy();
    conn.sock = s;
    s.on('error', (err: NodeJS.ErrnoException) => this.hooks.socketError(conn, err));
    if (this.tlsRequireCert && !s.authorized) {
      const peerCert = s.getPeerX509Certificate();
      const why = peerCert ? `${subjectName(peerCert)}: ${String(s.authorizationError ?? 'not trusted')}` : 'none given';
      this.hooks.tally.add('client certificate refused', `tcp ${conn.peer}: client certificate refused (${why})`, conn.addr);
      return this.hooks.refuse(conn, 'cert-refused', CLIENT_CERT_REFUSED, true);
    }
    if (!this.hooks.admitClient(conn)) return;
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
    this.hooks.tally.add('TLS handshake failed', `tcp ${conn.peer}: TLS handshake failed (${e.code ? `${e.code}: ` : ''}${why})`, conn.addr);
    this.hooks.refuse(conn, 'tls-failed', '', true);
  }

  /** Sends the password prompt and reads the answer (inside TLS when it is on). */
  private askPassword(conn: Conn): void {
    const sock = conn.sock;
    sock.on('data', (chunk: Buffer) => this.onAuthData(conn, chunk));
    sock.on('end', () => {
      // EOF before a whole password line (e.g. `printf pw | nc -N host port`): it cannot be
      // a correct password, and it is told so (unless its write side closed too: TLS).
      if (conn.state === 'pending') this.hooks.refuse(conn, 'closed-before-auth', sock.writable ? AUTH_FAILED : '');
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
      if (conn.state === 'pending') this.hooks.refuse(conn, 'auth-timeout', AUTH_TIMEOUT);
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
    const ok = crypto.timingSafeEqual(h(given), h(this.password));
    given.fill(0);
    this.checks++;
    if (!ok) return this.authFailed(conn, 'auth-failed');
    this.gate.succeeded(conn.addr);
    this.leave(conn);
    conn.sock.removeAllListeners('data');
    conn.sock.removeAllListeners('end');
    this.hooks.admitted(conn, rest);
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
    this.failures++;
    const what = reason === 'line-too-long' ? 'password line too long' : 'wrong password';
    this.hooks.tally.add(what, `tcp ${conn.peer}: ${what} (failure ${count} from ${prefix}${delay ? `, answered after ${delay} ms` : ''})`, conn.addr);
    const answer = () => {
      conn.timer = null;
      if (conn.state === 'verifying') this.hooks.refuse(conn, reason, AUTH_FAILED, true);
    };
    if (delay === 0) answer();
    else {
      conn.timer = setTimeout(answer, delay);
      conn.timer.unref();
    }
  }

  /** `conn` is no longer pending (refused, gone, or authenticated): its slot and check are given up. */
  leave(conn: Conn): void {
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
}
