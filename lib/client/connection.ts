/**
 * One connection attempt: its socket, the text read from it, the handshake (TCP) and the
 * event stream after it, and the time allowed to get there. A client that resumes makes a new
 * one for each attempt; what outlives an attempt is the client's (see resume.ts).
 */
import type * as net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { ProcessRecord, ProcEvent } from '../events';
import { refusalCode } from '../protocol';
import { PasswordHandshake } from './handshake';
import { openSocket, tlsFailure } from './socket';
import { StreamReader } from './stream';
import { ProcMonitorClientError, type ConnectOptions, type HelloInfo } from './types';

/** What a connection reports to its client. */
export interface ConnectionOwner {
  /** The request line to send ('' for none). */
  requestLine(): string;
  /** Connected (TCP: authenticated): events follow. */
  ready(): void;
  hello(info: HelloInfo): void;
  snapshot(procs: ProcessRecord[]): void;
  event(ev: ProcEvent): void;
  /** The connection failed (or the server refused it). */
  fail(err: Error): void;
  /** Something wrong that does not end the connection. */
  nonFatal(err: Error): void;
  /** The socket closed. */
  closed(conn: Connection): void;
}

export class Connection {
  readonly sock: net.Socket;
  private readonly handshake: PasswordHandshake | null;
  private phase: 'handshake' | 'stream' | 'closed';
  private decoder = new StringDecoder('utf8');
  /** Text read and not yet taken (a line not yet ended, or the handshake's). */
  private text = '';
  private readonly reader: StreamReader;
  /** Events that came with the password's answer wait a turn (see shake()). */
  private deferred = false;
  private timer: NodeJS.Timeout | null;
  /** TLS connection: whether TCP connected, and whether the TLS handshake finished. */
  private readonly useTls: boolean;
  private secured = false;
  private tcpConnected = false;

  /** Opens the socket; bad options throw. */
  constructor(
    options: ConnectOptions,
    timeoutMs: number,
    private readonly owner: ConnectionOwner,
  ) {
    const opened = openSocket(options);
    const sock = (this.sock = opened.sock);
    this.handshake = opened.password === null ? null : new PasswordHandshake(opened.password);
    this.phase = this.handshake ? 'handshake' : 'stream';
    this.useTls = opened.tls;
    this.reader = new StreamReader({
      hello: (info) => owner.hello(info),
      snapshot: (procs) => owner.snapshot(procs),
      event: (ev) => owner.event(ev),
      serverLine: (line) => this.serverLine(line),
      nonFatal: (err) => owner.nonFatal(err),
      reading: () => this.phase === 'stream',
    });
    if (this.useTls) {
      sock.once('connect', () => (this.tcpConnected = true));
      sock.once('secureConnect', () => (this.secured = true));
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      let hint = '';
      if (this.useTls && !this.secured) hint = ' (the TLS handshake did not finish)';
      else if (!this.useTls && this.phase === 'handshake' && this.handshake?.beforePrompt && this.text === '')
        hint = ' (nothing received: if the server serves TLS, connect with tls)';
      owner.fail(new ProcMonitorClientError('ETIMEDOUT', `no ${this.handshake ? 'completed handshake' : 'connection'} within ${timeoutMs} ms${hint}`));
    }, timeoutMs);
    sock.on('connect', () => {
      if (this.phase === 'stream') this.becomeReady();
    });
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      let message = err.message;
      if (this.useTls && this.tcpConnected && !this.secured) message = tlsFailure(err);
      owner.fail(new ProcMonitorClientError(err.code ?? 'EIO', message, { cause: err }));
    });
    sock.on('close', () => owner.closed(this));
  }

  /** Nothing more is read: the client failed or closed. */
  end(): void {
    this.phase = 'closed';
  }

  /** No more timeout (connected, or gone). */
  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private becomeReady(): void {
    this.stopTimer();
    // (Over TCP the request went out with the password.)
    if (!this.handshake) {
      const line = this.owner.requestLine();
      if (line) this.sock.write(line);
    }
    this.owner.ready();
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    this.text += this.decoder.write(chunk);
    this.process();
  }

  private process(): void {
    if (this.phase === 'handshake') this.shake(this.handshake as PasswordHandshake);
    if (this.phase !== 'stream' || this.deferred) return;
    const text = this.text;
    const end = this.reader.read(text);
    if (end < 0) return;
    this.text = end === 0 ? text : text.slice(end);
  }

  /** Goes through the password handshake as far as the text read allows. */
  private shake(handshake: PasswordHandshake): void {
    for (;;) {
      const step = handshake.read(this.text);
      switch (step.kind) {
        case 'wait':
          return;
        case 'line':
          return this.serverLine(step.line);
        case 'error':
          return this.owner.fail(new ProcMonitorClientError('EPROTO', step.message));
        case 'prompt':
          this.text = step.rest;
          // The request line in the same write: it reaches the server within its request window
          // however slow the round trip, and the seed's daemon takes both in one read.
          this.sock.write(`${step.reply}${this.owner.requestLine()}`);
          continue;
        case 'accepted':
          this.text = step.rest;
          this.phase = 'stream';
          this.becomeReady();
          // Events that came with the answer wait a turn, so that code resuming after
          // `await client.ready()` can start iterating before they are delivered.
          this.deferred = true;
          setImmediate(() => {
            this.deferred = false;
            this.process();
          });
          return;
      }
    }
  }

  /** A plain-text line from the server: a refusal, or something unexpected. */
  private serverLine(raw: string): void {
    const line = raw.replace(/\r$/, '');
    const code = refusalCode(line);
    const err = new ProcMonitorClientError(code, `server: ${line.slice(0, 200)}`);
    if (code === 'EPROTO' && this.phase === 'stream') return this.owner.nonFatal(err);
    this.owner.fail(err);
  }
}
