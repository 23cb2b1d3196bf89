// Every connection of the broadcast server from accept to close, and how one is turned away:
// refusals counted by reason and logged through the tally (a peer can cause them at will),
// socket errors told apart from a client leaving, and the ending of all of them at close.
import type { LogTally } from './log-tally';
import { who, type Conn } from './conn';
import { REJECT_REASONS, type RejectReason, type Transport } from './types';

export interface ConnectionHooks {
  tally: LogTally;
  /** A connection was turned away (the server's 'reject' event). */
  rejected(info: { transport: Transport; peer: string; reason: RejectReason }): void;
  /** Out of pending: its admission slot and password check given up, its timer stopped. */
  leavePending(conn: Conn): void;
}

export class Connections {
  readonly all = new Set<Conn>();
  /** Connections turned away since start, by reason. */
  readonly rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;

  constructor(
    /** How long a closing connection may take to flush before it is destroyed. */
    private readonly graceMs: number,
    private readonly hooks: ConnectionHooks,
  ) {}

  /** Takes a new connection; `close` runs once its socket has closed. */
  add(conn: Conn, close: () => void): void {
    this.all.add(conn);
    conn.sock.on('error', (err: NodeJS.ErrnoException) => this.socketError(conn, err));
    conn.sock.on('close', close);
  }

  /** Forgets a closed connection; false if it was forgotten already. */
  delete(conn: Conn): boolean {
    return this.all.delete(conn);
  }

  socketError(conn: Conn, err: NodeJS.ErrnoException): void {
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

  /** Turns a connection away: optional message, then close (destroyed after the grace). */
  refuse(conn: Conn, reason: RejectReason, message: string, quiet = false): void {
    this.hooks.leavePending(conn);
    conn.state = 'closing';
    this.count(conn, reason, quiet ? null : who(conn));
    this.end(conn, message);
  }

  /**
   * Turns a connection away for want of descriptors: the line (plain text; nothing over TLS
   * before its handshake) is written at once (a fresh socket takes it whole) and the socket
   * destroyed at once, so the refusal itself holds no descriptor: in a burst libuv accepts
   * connection after connection before anything else runs.
   */
  refuseNoFiles(conn: Conn, message: string): void {
    conn.state = 'closing';
    this.count(conn, 'too-many-files', `${conn.transport} ${conn.peer}`);
    const sock = conn.sock;
    if (message && !sock.destroyed) sock.write(message);
    sock.destroy(); // closes the descriptor now ('close' comes later)
    this.all.delete(conn); // so it no longer counts as one
  }

  /** Counts a connection turned away, logs it (as `name`; null: not) and tells the server. */
  count(conn: Conn, reason: RejectReason, name: string | null): void {
    this.rejected[reason]++;
    if (name !== null) this.hooks.tally.add(`refused (${reason})`, `${name}: refused (${reason})`, conn.addr);
    this.hooks.rejected({ transport: conn.transport, peer: conn.peer, reason });
  }

  /** Ends a connection after `message`, reading nothing more from it. */
  end(conn: Conn, message: string): void {
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

  /** Ends every connection (a client told 'server-close'); resolves once all have closed, those that cannot flush within the grace destroyed. */
  async closeAll(): Promise<void> {
    const gone: Promise<void>[] = [];
    for (const conn of this.all) {
      if (conn.announced && !conn.reason) conn.reason = 'server-close';
      this.hooks.leavePending(conn);
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
      for (const conn of this.all) conn.sock.destroy();
    }, this.graceMs);
    await Promise.all(gone);
    clearTimeout(grace);
  }
}
