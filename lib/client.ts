import type { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import * as tls from 'node:tls';
import { CodedError, type ProcessRecord, type ProcEvent, type ProcEventMap } from './events';
import { AUTH_SUCCESS, PASSWORD_PROMPT, refusalCode, type ClientRequest } from './protocol';
import { checkKeyPair, parseCertificates, parsePrivateKey } from './pem';

/** Connect to a server's Unix socket (no handshake). */
export interface UnixConnectOptions {
  path: string;
}

/** Connect to a server's TCP port and authenticate with the seed's password handshake. */
export interface TcpConnectOptions {
  /** Default `'127.0.0.1'`. */
  host?: string;
  port: number;
  /** At most 256 bytes, no line breaks. */
  password: string;
  /**
   * Speak TLS (to a server started with `tcp.tls` / `--tls-cert`): `true` verifies the server
   * against Node's root CAs; an object gives the CA, a client certificate, and so on.
   */
  tls?: boolean | ClientTlsOptions;
}

/** TLS options of a TCP connection. */
export interface ClientTlsOptions {
  /** CA certificate(s), PEM, to verify the server's certificate with. Default: Node's root CAs. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** A client certificate, PEM (for a server that requires one); needs `key`. */
  cert?: string | Buffer;
  /** The client certificate's private key, PEM. */
  key?: string | Buffer;
  /** The name the server's certificate must carry (and SNI). Default: `host`. */
  servername?: string;
  /** Default `true`. `false` accepts any server certificate: encrypted, but open to an impostor. */
  rejectUnauthorized?: boolean;
}

export interface CommonConnectOptions {
  /** Fail with code `'ETIMEDOUT'` when connecting and the handshake take longer. Default 10000 ms. */
  handshakeTimeoutMs?: number;
  /**
   * Events an async iterator may hold unread before the socket is paused (the server then
   * drops events for this client and later sends a `lost` line). Default 10000.
   */
  maxBuffered?: number;
  /**
   * A request line sent once connected (TCP: once authenticated): `{ snapshot: true }` for
   * the process table first, `{ events: ['exec'], users: ['www-data'] }` to narrow the
   * stream, `{ resume_from: N }` to pick up after seq N. The server answers with a `hello`.
   * Over TCP `{}` is sent when none is given, so that the server batches its writes (a
   * client that sends nothing is served as the seed's own client, a line a write).
   */
  request?: ClientRequest;
  /**
   * Reconnect after the connection drops (not after close(), a wrong password or a bad
   * request) and resume after the last seq received: no event is missed or repeated while
   * the server's replay ring reaches back that far; beyond it, a `lost` event says how many.
   * `true` or the delays (default 100 ms, doubling up to 5000 ms).
   */
  resume?: boolean | { delayMs?: number; maxDelayMs?: number };
}

export type ConnectOptions = (UnixConnectOptions | TcpConnectOptions) & CommonConnectOptions;

/**
 * Client failure codes: `EAUTH` (wrong password), `EBUSY` (the server has too many clients, or is
 * out of file descriptors), `ETIMEDOUT` (handshake too slow, or the server's authentication timeout), `EPROTO` (the
 * server said something unexpected), or a socket error's own code (`ECONNREFUSED`, `ENOENT`...).
 */
export class ProcMonitorClientError extends CodedError {}

/** The server's answer to a request line. */
export interface HelloInfo {
  /** This run of the server's stream; a resume with another stream's seq starts over. */
  stream: string;
  /** seq of the last event the server had sent when it answered. */
  last_seq: number;
  time: string;
}

export interface ProcMonitorClientEvents extends ProcEventMap {
  /** The server answered the request (each connection, with `request` or `resume`). */
  hello: [HelloInfo];
  /** The process table, when the request asked for it (`snapshot: true`). */
  snapshot: [ProcessRecord[]];
  /** The connection dropped; another attempt follows after `delayMs` (with `resume`). */
  reconnecting: [{ attempt: number; delayMs: number; error: Error | null }];
  /** Connected (and authenticated): events follow. */
  ready: [];
  /** Every event, in server order. */
  event: [ProcEvent];
  /** A failure (connection, handshake, protocol); the client closes after a fatal one. */
  error: [Error];
  /** The connection is gone. */
  close: [];
}

const MAX_HANDSHAKE_CHARS = 4096;

interface Waiter {
  queue: ProcEvent[];
  head: number;
  wake: (() => void) | null;
}

/**
 * A connection to a procMonitor broadcast server: an EventEmitter of parsed events and an
 * async iterable of them (iterating applies backpressure; breaking out closes the client).
 */
export class ProcMonitorClient extends EventEmitter<ProcMonitorClientEvents> implements AsyncIterable<ProcEvent> {
  private sock!: net.Socket;
  private decoder = new StringDecoder('utf8');
  private phase: 'prompt' | 'reply' | 'stream' | 'closed' = 'stream';
  private readonly options: ConnectOptions;
  private readonly timeoutMs: number;
  private readonly resume: { delayMs: number; maxDelayMs: number } | null;
  private request: ClientRequest | null;
  /** The stream and the last seq received (for resuming). */
  private stream: string | null = null;
  private lastSeq: number | null = null;
  private procs: ProcessRecord[] | null = null;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** The user called close(): no reconnect. */
  private closing = false;
  private lastError: Error | null = null;
  private text = '';
  private password: string | null = null;
  private readonly maxBuffered: number;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  private closed = false;
  private isReady = false;
  private readonly waiters = new Set<Waiter>();
  private paused = false;
  private readyWaiters = 0;
  private deferred = false;
  /** TLS connection: whether TCP connected, and whether the TLS handshake finished. */
  private useTls = false;
  private secured = false;
  private tcpConnected = false;

  /** @internal use connect() */
  constructor(options: ConnectOptions) {
    super();
    this.options = options;
    this.timeoutMs = options.handshakeTimeoutMs ?? 10000;
    this.maxBuffered = options.maxBuffered ?? 10000;
    const r = options.resume;
    if (r) {
      const o = r === true ? {} : r;
      const delayMs = o.delayMs ?? 100;
      const maxDelayMs = o.maxDelayMs ?? 5000;
      if (!Number.isInteger(delayMs) || delayMs < 0 || !Number.isInteger(maxDelayMs) || maxDelayMs < delayMs) {
        throw new RangeError('resume: delayMs and maxDelayMs must be whole milliseconds, delayMs <= maxDelayMs');
      }
      this.resume = { delayMs, maxDelayMs };
    } else {
      this.resume = null;
    }
    if (options.request !== undefined && (typeof options.request !== 'object' || options.request === null)) throw new TypeError('request must be an object');
    // Over TCP a request line is always sent (`{}` at least): a client that sends none is
    // taken for one written for the seed and gets one line per write, paced.
    this.request = options.request ?? (this.resume || 'port' in options ? {} : null);
    this.open();
  }

  /** Opens a connection (again, when resuming). */
  private open(): void {
    const options = this.options;
    const timeout = this.timeoutMs;
    this.text = '';
    this.decoder = new StringDecoder('utf8');
    this.secured = false;
    this.tcpConnected = false;
    this.procs = null;
    this.paused = false;
    this.deferred = false;
    if ('path' in options && typeof options.path === 'string') {
      if ((options as { tls?: unknown }).tls) throw new TypeError('tls is for TCP connections, not a Unix socket');
      this.password = null;
      this.phase = 'stream';
      this.sock = net.createConnection({ path: options.path, allowHalfOpen: false });
    } else {
      const o = options as TcpConnectOptions;
      if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RangeError(`port must be an integer from 1 to 65535, got ${String(o.port)}`);
      if (typeof o.password !== 'string') throw new TypeError('password is required for a TCP connection');
      if (/[\r\n]/.test(o.password)) throw new RangeError('the password cannot contain a line break');
      if (Buffer.byteLength(o.password) > 256) throw new RangeError('the password is longer than 256 bytes');
      this.password = o.password;
      this.phase = 'prompt';
      const host = o.host ?? '127.0.0.1';
      if (o.tls === undefined || o.tls === false) {
        this.sock = net.createConnection({ host, port: o.port, noDelay: true });
      } else {
        this.sock = tlsConnect(host, o.port, o.tls);
        this.useTls = true;
        this.sock.once('connect', () => (this.tcpConnected = true));
        this.sock.once('secureConnect', () => (this.secured = true));
      }
    }
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = null;
      let hint = '';
      if (this.useTls && !this.secured) hint = ' (the TLS handshake did not finish)';
      else if (!this.useTls && this.phase === 'prompt' && this.text === '') hint = ' (nothing received: if the server serves TLS, connect with tls)';
      this.fail(new ProcMonitorClientError('ETIMEDOUT', `no ${this.password === null ? 'connection' : 'completed handshake'} within ${timeout} ms${hint}`));
    }, timeout);
    this.sock.on('connect', () => {
      if (this.phase === 'stream') this.becomeReady();
    });
    this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
    this.sock.on('error', (err: NodeJS.ErrnoException) => {
      let message = err.message;
      if (this.useTls && this.tcpConnected && !this.secured) message = tlsFailure(err);
      this.fail(new ProcMonitorClientError(err.code ?? 'EIO', message, { cause: err }));
    });
    const sock = this.sock;
    sock.on('close', () => this.onClose(sock));
  }

  /** Resolves once connected (and authenticated); rejects with the failure otherwise. */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new ProcMonitorClientError('ECONNRESET', 'the connection closed before it was ready'));
    this.readyWaiters++;
    return new Promise((resolve, reject) => {
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onClose = () => {
        cleanup();
        reject(this.failure ?? new ProcMonitorClientError('ECONNRESET', 'the connection closed before it was ready'));
      };
      const cleanup = () => {
        this.readyWaiters--;
        this.off('ready', onReady);
        this.off('close', onClose);
      };
      this.on('ready', onReady);
      this.on('close', onClose);
    });
  }

  /** Closes the connection. Resolves once it is closed. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      this.once('close', () => resolve());
      if (this.reconnectTimer) {
        // Between two connections: nothing to wait for.
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        this.finish();
      } else {
        this.sock.destroy();
      }
    });
  }

  /** The last seq received (null before the first event with one): where a resume picks up. */
  get seq(): number | null {
    return this.lastSeq;
  }

  /** The request line for this connection ('' when none): a resume goes on after the last seq. */
  private requestLine(): string {
    if (!this.request) return '';
    const req: ClientRequest = { ...this.request };
    if (this.resume && this.lastSeq !== null) {
      req.resume_from = this.lastSeq;
      if (this.stream !== null) req.stream = this.stream;
      delete req.snapshot; // the stream goes on where it was: no table again
    }
    return `${JSON.stringify(req)}\n`;
  }

  private becomeReady(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.attempt = 0;
    // (Over TCP the request went out with the password.)
    if (this.password === null && this.request) this.sock.write(this.requestLine());
    if (this.isReady) return;
    this.isReady = true;
    this.emit('ready');
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    this.text += this.decoder.write(chunk);
    this.process();
  }

  private process(): void {
    if (this.phase === 'prompt') {
      const i = this.text.indexOf(PASSWORD_PROMPT);
      if (i < 0) {
        const nl = this.text.indexOf('\n');
        if (nl >= 0) return this.serverLine(this.text.slice(0, nl));
        if (this.text.length > MAX_HANDSHAKE_CHARS) return this.fail(new ProcMonitorClientError('EPROTO', 'the server sent no password prompt'));
        return;
      }
      this.text = this.text.slice(i + PASSWORD_PROMPT.length);
      // The request line in the same write: it reaches the server within its request window
      // however slow the round trip, and the seed's daemon takes both in one read.
      this.sock.write(`${this.password}\n${this.requestLine()}`);
      this.phase = 'reply';
    }
    if (this.phase === 'reply') {
      const nl = this.text.indexOf('\n');
      if (nl < 0) {
        if (this.text.length > MAX_HANDSHAKE_CHARS) this.fail(new ProcMonitorClientError('EPROTO', 'the server did not answer the password'));
        return;
      }
      const line = this.text.slice(0, nl).replace(/\r$/, '');
      this.text = this.text.slice(nl + 1);
      if (line !== AUTH_SUCCESS.trimEnd()) return this.serverLine(line);
      this.phase = 'stream';
      this.becomeReady();
      // Events that came with the answer wait a turn, so that code resuming after
      // `await client.ready()` can start iterating before they are delivered.
      this.deferred = true;
      setImmediate(() => {
        this.deferred = false;
        this.process();
      });
    }
    if (this.phase !== 'stream' || this.deferred) return;
    const text = this.text;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      const line = text.slice(start, nl);
      start = nl + 1;
      if (line.length === 0) continue;
      if (line.charCodeAt(0) !== 0x7b /* { */) {
        this.serverLine(line);
        if ((this.phase as string) === 'closed') return;
        continue;
      }
      let ev: ProcEvent;
      try {
        ev = JSON.parse(line) as ProcEvent;
      } catch {
        this.nonFatal(new ProcMonitorClientError('EPROTO', `unparsable line from the server: ${line.slice(0, 200)}`));
        continue;
      }
      // The answers to a request are not events of the stream.
      const kind = (ev as { event: string }).event;
      if (kind === 'hello') {
        const h = ev as unknown as HelloInfo;
        this.stream = h.stream;
        this.emit('hello', { stream: h.stream, last_seq: h.last_seq, time: h.time });
        continue;
      }
      if (kind === 'process') {
        const rec: Partial<ProcessRecord & { event: string }> = { ...(ev as unknown as ProcessRecord & { event: string }) };
        delete rec.event;
        (this.procs ??= []).push(rec as ProcessRecord);
        continue;
      }
      if (kind === 'snapshot') {
        const procs = this.procs ?? [];
        this.procs = null;
        this.emit('snapshot', procs);
        continue;
      }
      if (typeof ev.seq === 'number') this.lastSeq = ev.seq;
      this.deliver(ev);
      if (this.phase !== 'stream') return;
    }
    this.text = start === 0 ? text : text.slice(start);
  }

  /** A plain-text line from the server: a refusal, or something unexpected. */
  private serverLine(raw: string): void {
    const line = raw.replace(/\r$/, '');
    const code = refusalCode(line);
    const err = new ProcMonitorClientError(code, `server: ${line.slice(0, 200)}`);
    if (code === 'EPROTO' && this.phase === 'stream') return this.nonFatal(err);
    this.fail(err);
  }

  private deliver(ev: ProcEvent): void {
    for (const w of this.waiters) {
      w.queue.push(ev);
      if (w.queue.length - w.head >= this.maxBuffered && !this.paused) {
        this.paused = true;
        this.sock.pause();
      }
      const wake = w.wake;
      w.wake = null;
      wake?.();
    }
    this.emit('event', ev);
    (this.emit as (name: string, ev: ProcEvent) => boolean)(ev.event, ev);
  }

  private nonFatal(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private fail(err: Error): void {
    if (this.failure || this.closed) return;
    const code = (err as ProcMonitorClientError).code;
    if (this.resume && !this.closing && code !== 'EAUTH' && code !== 'EREQUEST') {
      // Resuming: this connection is over, the next attempt follows (see onClose).
      this.lastError = err;
      this.sock.destroy();
      return;
    }
    this.failure = err;
    this.phase = 'closed';
    // Iterators and ready() callers get the error themselves; otherwise the usual EventEmitter
    // rule holds (an 'error' nobody listens to is thrown).
    if (this.listenerCount('error') > 0 || (this.waiters.size === 0 && this.readyWaiters === 0)) this.emit('error', err);
    this.wakeAll();
    this.sock.destroy();
  }

  private onClose(sock: net.Socket): void {
    if (this.closed || sock !== this.sock) return;
    if (this.resume && !this.closing && !this.failure) {
      this.attempt++;
      const delayMs = Math.min(this.resume.delayMs * 2 ** Math.min(this.attempt - 1, 20), this.resume.maxDelayMs);
      if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
      this.emit('reconnecting', { attempt: this.attempt, delayMs, error: this.lastError });
      this.lastError = null;
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        if (!this.closing) this.open();
      }, delayMs);
      return;
    }
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.phase = 'closed';
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.wakeAll();
    this.emit('close');
  }

  private wakeAll(): void {
    for (const w of this.waiters) {
      const wake = w.wake;
      w.wake = null;
      wake?.();
    }
  }

  private maybeResume(): void {
    if (!this.paused) return;
    for (const w of this.waiters) if (w.queue.length - w.head > this.maxBuffered / 2) return;
    this.paused = false;
    this.sock.resume();
  }

  /**
   * The events as an async iterator. Ends when the connection closes; throws the failure
   * (e.g. code `'EAUTH'`) if it failed. Breaking out of the loop closes the client.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<ProcEvent> {
    const w: Waiter = { queue: [], head: 0, wake: null };
    this.waiters.add(w);
    const finish = () => {
      this.waiters.delete(w);
      w.queue = [];
      w.head = 0;
      this.maybeResume();
    };
    const it: AsyncIterableIterator<ProcEvent> = {
      next: async (): Promise<IteratorResult<ProcEvent>> => {
        for (;;) {
          if (w.head < w.queue.length) {
            const ev = w.queue[w.head++] as ProcEvent;
            if (w.head > 1024 && w.head * 2 > w.queue.length) {
              w.queue.splice(0, w.head);
              w.head = 0;
            }
            this.maybeResume();
            return { value: ev, done: false };
          }
          if (this.failure) {
            const err = this.failure;
            finish();
            throw err;
          }
          if (this.closed || !this.waiters.has(w)) {
            finish();
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (w.wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<ProcEvent>> => {
        finish();
        await this.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
}

/** Opens a TLS connection; bad options (e.g. a PEM that is not one) throw at once. */
function tlsConnect(host: string, port: number, opt: true | ClientTlsOptions): tls.TLSSocket {
  const o: ClientTlsOptions = opt === true ? {} : opt;
  if (typeof o !== 'object' || o === null) throw new TypeError('tls must be true or an object { ca, cert, key, servername, rejectUnauthorized }');
  if ((o.cert === undefined) !== (o.key === undefined)) throw new TypeError('tls.cert and tls.key go together');
  if (o.servername !== undefined && (typeof o.servername !== 'string' || o.servername === '')) throw new TypeError('tls.servername must be a non-empty string');
  // Node would ignore a CA that is not PEM (and then trust nothing); say what is wrong instead.
  try {
    if (o.ca !== undefined) parseCertificates(o.ca, 'tls.ca');
    if (o.cert !== undefined && o.key !== undefined) {
      checkKeyPair(parseCertificates(o.cert, 'tls.cert')[0] as X509Certificate, parsePrivateKey(o.key, 'tls.key'), 'tls.cert', 'tls.key');
    }
  } catch (err) {
    throw new TypeError((err as Error).message, { cause: err });
  }
  const options: tls.ConnectionOptions = {
    host,
    port,
    rejectUnauthorized: o.rejectUnauthorized !== false,
    ...(o.ca !== undefined ? { ca: o.ca } : {}),
    ...(o.cert !== undefined ? { cert: o.cert, key: o.key } : {}),
    ...(o.servername !== undefined ? { servername: o.servername } : {}),
  };
  try {
    return tls.connect(options).setNoDelay(true);
  } catch (err) {
    throw new TypeError(`bad TLS options: ${(err as Error).message}`, { cause: err });
  }
}

/** A readable message for a failed TLS handshake (the error's own is OpenSSL's). */
function tlsFailure(err: NodeJS.ErrnoException & { reason?: unknown }): string {
  const why = typeof err.reason === 'string' ? err.reason : err.message.split('\n')[0];
  let hint = '';
  if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') hint = ' (is the server serving TLS on this port?)';
  else if (err.code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') hint = ' (the server requires a client certificate)';
  return `TLS handshake failed: ${why}${hint}`;
}

/**
 * Connects to a procMonitor broadcast server: `{ path }` for its Unix socket, or
 * `{ host, port, password }` for TCP (the seed's handshake; with `tls` inside TLS). Listen for
 * `'event'` (and `'error'`), or iterate with `for await`.
 */
export function connect(options: ConnectOptions): ProcMonitorClient {
  return new ProcMonitorClient(options);
}
