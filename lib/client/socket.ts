/**
 * Opening one connection's socket: a Unix socket, TCP, or TLS over TCP, the options checked
 * first (a bad one throws at once, before anything is opened).
 */
import type { X509Certificate } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { checkKeyPair, parseCertificates, parsePrivateKey } from '../pem';
import type { ClientTlsOptions, ConnectOptions, TcpConnectOptions } from './types';

/** A socket just opened, and what the connection on it has to do. */
export interface OpenedSocket {
  sock: net.Socket;
  /** TCP: the password of the handshake; null for a Unix socket (no handshake). */
  password: string | null;
  /** Whether it speaks TLS. */
  tls: boolean;
}

/** Opens the socket `options` describe; bad options throw (TypeError, RangeError). */
export function openSocket(options: ConnectOptions): OpenedSocket {
  if ('path' in options && typeof options.path === 'string') {
    if ((options as { tls?: unknown }).tls) throw new TypeError('tls is for TCP connections, not a Unix socket');
    return { sock: net.createConnection({ path: options.path, allowHalfOpen: false }), password: null, tls: false };
  }
  const o = options as TcpConnectOptions;
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RangeError(`port must be an integer from 1 to 65535, got ${String(o.port)}`);
  if (typeof o.password !== 'string') throw new TypeError('password is required for a TCP connection');
  if (/[\r\n]/.test(o.password)) throw new RangeError('the password cannot contain a line break');
  if (Buffer.byteLength(o.password) > 256) throw new RangeError('the password is longer than 256 bytes');
  const host = o.host ?? '127.0.0.1';
  if (o.tls === undefined || o.tls === false) {
    return { sock: net.createConnection({ host, port: o.port, noDelay: true }), password: o.password, tls: false };
  }
  return { sock: tlsConnect(host, o.port, o.tls), password: o.password, tls: true };
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
export function tlsFailure(err: NodeJS.ErrnoException & { reason?: unknown }): string {
  const why = typeof err.reason === 'string' ? err.reason : err.message.split('\n')[0];
  let hint = '';
  if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') hint = ' (is the server serving TLS on this port?)';
  else if (err.code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') hint = ' (the server requires a client certificate)';
  return `TLS handshake failed: ${why}${hint}`;
}
