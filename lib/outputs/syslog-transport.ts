/**
 * How messages reach syslog: the transport of each kind of target (described in syslog.ts),
 * one per connection attempt, which says when it is ready, down (the sender retries), or has
 * room again.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';

export type SyslogTarget = { kind: 'unix'; path: string } | { kind: 'udp' | 'tcp'; host: string; port: number };

/** logger connects to the socket before it reads a line; alive this long means it did. */
const LOGGER_SETTLE_MS = 100;

export function targetText(t: SyslogTarget): string {
  return t.kind === 'unix' ? `unix:${t.path}` : `${t.kind}://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

/** Why logger(1) cannot do what the unix target needs, or null if it can. */
export function loggerProblem(): string | null {
  const r = spawnSync('logger', ['--help'], { encoding: 'utf8', timeout: 5000, env: { ...process.env, LC_ALL: 'C' } });
  if (r.error) {
    return `--syslog to a unix socket needs logger(1) from util-linux: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on the PATH' : r.error.message}`;
  }
  const help = `${r.stdout}${r.stderr}`;
  if (!help.includes('--rfc5424') || !help.includes('--prio-prefix')) {
    return '--syslog to a unix socket needs logger(1) from util-linux 2.26 or later (with --rfc5424 and --prio-prefix); this one is another';
  }
  return null;
}

export interface Transport {
  /** Whether messages may be handed over now. */
  ready(): boolean;
  /** Bytes handed over and not yet taken by the other side (pipe or socket buffer). */
  backlog(): number;
  /** Hands one message over; `done(false)` if it failed. */
  write(msg: Buffer, done: (ok: boolean) => void): void;
  /** Ends it; what is not taken within `waitMs` is abandoned (a stuck logger is killed). */
  close(waitMs: number): Promise<void>;
}

export interface TransportEvents {
  onReady(): void;
  onDown(why: string): void;
  onDrain(): void;
}

/** What logger(1) puts in the header it writes: the APP-NAME, and the longest message. */
export interface LoggerHeader {
  tag: string;
  maxBytes: number;
}

/** Starts a transport to `target`; what happens to it comes through `ev`. */
export function openTransport(target: SyslogTarget, logger: LoggerHeader, ev: TransportEvents): Transport {
  if (target.kind === 'unix') return loggerTransport(target.path, logger, ev);
  return target.kind === 'tcp' ? tcpTransport(target.host, target.port, ev) : udpTransport(target.host, target.port, ev);
}

/** logger(1) on a unix socket, fed one `<PRI>message` line at a time. */
function loggerTransport(socketPath: string, header: LoggerHeader, ev: TransportEvents): Transport {
  const args = ['--rfc5424=notq', '--prio-prefix', '-t', header.tag, `--id=${process.pid}`, '-u', socketPath, '--socket-errors=on', '--size', String(header.maxBytes)];
  let child: ChildProcess | null = null;
  let ready = false;
  let down = false;
  let stderr = '';
  const fail = (why: string): void => {
    if (down) return;
    down = true;
    ready = false;
    ev.onDown(why);
  };
  try {
    child = spawn('logger', args, { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  } catch (err) {
    setImmediate(() => fail(`cannot run logger: ${(err as Error).message}`));
  }
  const cp = child;
  let settle: NodeJS.Timeout | null = null;
  if (cp) {
    cp.stderr?.setEncoding('utf8');
    cp.stderr?.on('data', (d: string) => {
      stderr = (stderr + d).slice(-1000);
    });
    cp.stdin?.on('error', () => undefined); // EPIPE when it died: 'exit' tells
    cp.stdin?.on('drain', () => ev.onDrain());
    cp.on('error', (err) => fail(`cannot run logger: ${err.message}`));
    cp.on('exit', (code, signal) => {
      if (settle) clearTimeout(settle);
      const said = stderr.trim().split('\n').pop();
      fail(said ? said.replace(/^logger: /, '') : `logger exited (${signal ?? `status ${code}`})`);
    });
    settle = setTimeout(() => {
      settle = null;
      if (down) return;
      ready = true;
      ev.onReady();
    }, LOGGER_SETTLE_MS);
    settle.unref();
  }
  return {
    ready: () => ready,
    backlog: () => cp?.stdin?.writableLength ?? 0,
    write(msg, done) {
      const stdin = cp?.stdin;
      if (!stdin || stdin.destroyed) return done(false);
      stdin.write(msg, (err) => done(!err));
    },
    close(waitMs) {
      ready = false;
      down = true;
      if (settle) clearTimeout(settle);
      if (!cp || cp.exitCode !== null || cp.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        // It exits once it has read everything; a logger stuck on a stalled syslog is killed.
        const kill = setTimeout(() => cp.kill('SIGKILL'), waitMs);
        cp.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        cp.stdin?.end();
      });
    },
  };
}

/** RFC 6587 octet-counted frames over TCP. */
function tcpTransport(host: string, port: number, ev: TransportEvents): Transport {
  let ready = false;
  let down = false;
  const sock = net.createConnection({ host, port });
  sock.setNoDelay(true);
  sock.setTimeout(5000); // connecting
  sock.on('connect', () => {
    sock.setTimeout(0);
    sock.setKeepAlive(true, 60000);
    ready = true;
    ev.onReady();
  });
  sock.on('timeout', () => sock.destroy(new Error('connection timed out')));
  sock.on('drain', () => ev.onDrain());
  sock.on('data', () => undefined); // a syslog server says nothing; whatever it says is ignored
  let why = '';
  sock.on('error', (err: NodeJS.ErrnoException) => (why ||= err.code ?? err.message));
  sock.on('end', () => sock.end());
  sock.on('close', () => {
    ready = false;
    if (down) return;
    down = true;
    ev.onDown(`connection ${why ? `failed: ${why}` : 'closed'}`);
  });
  return {
    ready: () => ready,
    backlog: () => sock.writableLength,
    write(msg, done) {
      if (!sock.writable) return done(false);
      sock.write(msg, (err) => done(!err));
    },
    close(waitMs) {
      ready = false;
      down = true;
      if (sock.destroyed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => sock.destroy(), waitMs);
        sock.once('close', () => {
          clearTimeout(kill);
          resolve();
        });
        sock.end();
      });
    },
  };
}

/** One datagram per message (no delivery guarantee: a refusal is only known a send later). */
function udpTransport(host: string, port: number, ev: TransportEvents): Transport {
  let ready = false;
  let down = false;
  let inFlight = 0;
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const fail = (err: NodeJS.ErrnoException): void => {
    ready = false;
    if (down) return;
    down = true;
    try {
      sock.close();
    } catch {
      /* closed already */
    }
    ev.onDown(err.code ?? err.message);
  };
  sock.on('error', fail);
  sock.connect(port, host, () => {
    ready = true;
    ev.onReady();
  });
  sock.unref();
  return {
    ready: () => ready,
    backlog: () => inFlight,
    write(msg, done) {
      inFlight += msg.length;
      sock.send(msg, (err) => {
        inFlight -= msg.length;
        done(!err);
        if (err) fail(err);
        else if (inFlight === 0) ev.onDrain();
      });
    },
    close() {
      ready = false;
      if (down) return Promise.resolve();
      down = true;
      return new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}
