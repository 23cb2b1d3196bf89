/** The client's public types: its options, its error, the events it emits. */
import { CodedError, type ProcessRecord, type ProcEvent, type ProcEventMap } from '../events';
import type { ClientRequest } from '../protocol';

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
