// The listening sockets of the broadcast server: the Unix socket file (made with its mode and
// group before anyone can reach it, never replacing another instance's) and the TCP port.
// They hand each accepted socket on and know nothing of what is said on it.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { closeServer, listenOn, probeSocketPath, removeStaleSocket } from './unix-socket';
import { BroadcastServerError, type BroadcastAddress, type Transport } from './types';

export interface ListenerOptions {
  /** The socket file ('' for none), its mode and group (null: unchanged). */
  unix: { path: string; mode: number; gid: number | null };
  tcp: { port: number; host: string } | null;
  /** Keep half-open TCP connections (plain TCP: a client may send its password and shut its side). */
  tcpHalfOpen: boolean;
}

export interface ListenerHooks {
  connection(sock: net.Socket, transport: Transport): void;
  log(line: string): void;
  /** A listening socket's error, after it has been logged. */
  error(err: Error): void;
}

function errnoOf(err: unknown, fallback: string): string {
  return (err as NodeJS.ErrnoException).code ?? fallback;
}

export class Listeners {
  private unixServer: net.Server | null = null;
  private tcpServer: net.Server | null = null;
  private unixFile: { path: string; dev: number; ino: number } | null = null;
  /** accept() failures (EMFILE...) not logged yet, and when the last was. */
  private readonly acceptErrors = { unlogged: 0, loggedAt: 0 };

  constructor(
    private readonly o: ListenerOptions,
    private readonly hooks: ListenerHooks,
  ) {}

  /** Listens on the configured transports; on failure closes what it opened and rejects. */
  async listen(): Promise<void> {
    try {
      if (this.o.unix.path) await this.listenUnix();
      if (this.o.tcp) await this.listenTcp(this.o.tcp);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** The bound addresses (the real TCP port when port 0 was asked). */
  address(): BroadcastAddress {
    const a = this.tcpServer?.address();
    return {
      unix: this.unixFile ? this.unixFile.path : null,
      tcp: a && typeof a === 'object' ? a : null,
    };
  }

  private async listenUnix(): Promise<void> {
    const { path: target, mode, gid } = this.o.unix;
    await probeSocketPath(target);
    // Bind inside a fresh 0700 directory next to the target, set mode and group there, then
    // link() it into place: the socket is never reachable with looser permissions than asked,
    // and link() fails when anything is at the path, so a socket that another starter put
    // there meanwhile is never replaced (rename would replace it).
    let tmpDir: string;
    try {
      tmpDir = fs.mkdtempSync(path.join(path.dirname(target), '.pm-'));
    } catch (err) {
      throw new BroadcastServerError(errnoOf(err, 'EIO'), `cannot create the socket in ${path.dirname(target)}: ${(err as Error).message}`, { cause: err });
    }
    const tmpSock = path.join(tmpDir, 's');
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.hooks.connection(s, 'unix'));
    try {
      try {
        await listenOn(server, { path: tmpSock });
      } catch (err) {
        throw new BroadcastServerError(errnoOf(err, 'EIO'), `cannot listen on ${target}: ${(err as Error).message}`, { cause: err });
      }
      this.unixServer = server;
      server.on('error', (err) => this.serverError(err));
      fs.chmodSync(tmpSock, mode);
      if (gid !== null) {
        try {
          fs.chownSync(tmpSock, -1, gid);
        } catch (err) {
          throw new BroadcastServerError(errnoOf(err, 'EPERM'), `cannot give ${target} group ${gid}: ${(err as Error).message}`, { cause: err });
        }
      }
      await this.linkInPlace(tmpSock, target);
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

  /** Links the bound socket to its path, removing a stale socket there, never a live one. */
  private async linkInPlace(tmpSock: string, target: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        fs.linkSync(tmpSock, target);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new BroadcastServerError(errnoOf(err, 'EIO'), `cannot create ${target}: ${(err as Error).message}`, { cause: err });
        }
      }
      // Something is at the path: not a socket (EEXIST), a live one (EADDRINUSE: another
      // instance, maybe a concurrent starter that won), or a stale one, removed under the
      // path lock before trying again.
      if ((await probeSocketPath(target)) === 'none') continue;
      if (attempt >= 10) throw new BroadcastServerError('EADDRINUSE', `the socket path ${target} keeps being replaced by another process; not taking it`);
      await removeStaleSocket(target);
    }
  }

  private async listenTcp(opts: { port: number; host: string }): Promise<void> {
    const server = net.createServer({ allowHalfOpen: this.o.tcpHalfOpen, noDelay: true }, (s) => this.hooks.connection(s, 'tcp'));
    try {
      await listenOn(server, { port: opts.port, host: opts.host });
    } catch (err) {
      throw new BroadcastServerError(errnoOf(err, 'EIO'), `cannot listen on tcp ${opts.host}:${opts.port}: ${(err as Error).message}`, { cause: err });
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
        this.hooks.log(`server error: ${err.message} (out of file descriptors${times}; still listening)`);
        e.unlogged = 0;
        e.loggedAt = now;
      }
    } else {
      this.hooks.log(`server error: ${err.message}`);
    }
    this.hooks.error(err);
  }

  /** Stops listening; the socket file goes first, and only if it is still ours. */
  async close(): Promise<void> {
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
        if (code !== 'ENOENT' && code !== 'ENOTDIR') this.hooks.log(`cannot remove the socket file ${f.path}: ${(err as Error).message}`);
      }
    }
    await Promise.all(servers.map(closeServer));
  }
}
