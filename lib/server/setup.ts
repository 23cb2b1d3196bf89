// Options of the broadcast server checked and resolved once, at construction: ids, the TCP
// password, the TLS set-up.
import type * as crypto from 'node:crypto';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { checkKeyPair, parseCertificates, parsePrivateKey, subjectName } from '../pem';
import { readSecretFile } from '../secret';
import { intOption as intOptionOf } from '../options';
import { MAX_PASSWORD_BYTES } from '../protocol';
import { lookupIdSync } from './accounts';
import { isEventSource, type EventSource } from '../source';
import type { AdmissionOptions, TlsSetup } from './admission';
import type { PeerVisibility } from './visibility';
import { BroadcastServerError, type BroadcastServerOptions, type TcpTlsOptions, type TcpTransportOptions } from './types';

export function groupId(group: string | number): number {
  try {
    return lookupIdSync('group', group, 'group');
  } catch (err) {
    throw new BroadcastServerError('EINVAL', (err as Error).message);
  }
}

export function intOption(v: number | undefined, name: string, def: number, min: number, max = 0x7fffffff): number {
  return intOptionOf(v, name, def, min, max, (m) => new BroadcastServerError('EINVAL', m));
}

/** Reads the TCP password from exactly one of its three sources. */
export function resolvePassword(tcp: TcpTransportOptions, warn: (line: string) => void): Buffer {
  const given = (['password', 'passwordFile', 'passwordEnv'] as const).filter((k) => tcp[k] !== undefined);
  if (given.length === 0) {
    throw new BroadcastServerError('ENOPASSWORD', 'a TCP server needs a password (tcp.password, tcp.passwordFile or tcp.passwordEnv); refusing to serve events unauthenticated');
  }
  if (given.length > 1) {
    throw new BroadcastServerError('EINVAL', `give only one of tcp.password, tcp.passwordFile, tcp.passwordEnv (got ${given.join(', ')})`);
  }
  let pw: string;
  if (tcp.password !== undefined) {
    pw = tcp.password;
  } else if (tcp.passwordFile !== undefined) {
    try {
      const f = readSecretFile(tcp.passwordFile, 'the password file');
      pw = f.text;
      if (f.warning) warn(f.warning);
    } catch (err) {
      throw new BroadcastServerError('ENOPASSWORD', (err as Error).message, { cause: err });
    }
  } else {
    const name = tcp.passwordEnv as string;
    const v = process.env[name];
    if (v === undefined) throw new BroadcastServerError('ENOPASSWORD', `the environment variable ${name} (the TCP password) is not set`);
    pw = v;
  }
  if (typeof pw !== 'string' || pw.length === 0) {
    const what =
      tcp.passwordFile !== undefined
        ? `the password file ${tcp.passwordFile} is empty`
        : tcp.passwordEnv !== undefined
          ? `the environment variable ${tcp.passwordEnv} (the TCP password) is empty`
          : 'the TCP password is empty';
    throw new BroadcastServerError('ENOPASSWORD', `${what}; refusing to serve events unauthenticated`);
  }
  if (/[\r\n]/.test(pw)) throw new BroadcastServerError('EINVAL', 'the TCP password cannot contain a line break');
  const buf = Buffer.from(pw, 'utf8');
  if (buf.length > MAX_PASSWORD_BYTES) {
    throw new BroadcastServerError('EINVAL', `the TCP password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  return buf;
}

/** Checks `tcp.tls` (PEM strings or Buffers) and says clearly what is wrong with it. */
export function resolveTls(t: TcpTlsOptions): TlsSetup {
  if (!t || typeof t !== 'object') throw new BroadcastServerError('EINVAL', 'tcp.tls must be an object { cert, key, ca? }');
  let summary: string;
  let requireCert = false;
  try {
    if (t.cert === undefined || t.key === undefined) throw new Error('tcp.tls needs both cert and key');
    const cert = parseCertificates(t.cert, 'tcp.tls.cert')[0] as crypto.X509Certificate;
    checkKeyPair(cert, parsePrivateKey(t.key, 'tcp.tls.key'), 'tcp.tls.cert', 'tcp.tls.key');
    const until = new Date(cert.validTo);
    summary = `certificate ${subjectName(cert)}, valid until ${until.toISOString().slice(0, 10)}${until.getTime() < Date.now() ? ' (EXPIRED)' : ''}`;
    if (t.ca !== undefined) {
      const cas = parseCertificates(t.ca, 'tcp.tls.ca');
      requireCert = true;
      summary += `; client certificates required, signed by ${cas.map(subjectName).join(' or ')}`;
    }
  } catch (err) {
    throw new BroadcastServerError('EINVAL', (err as Error).message, { cause: err });
  }
  const options: tls.TlsOptions = {
    cert: t.cert,
    key: t.key,
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
    // Verified here, after the handshake (tls.Server sets `authorized`), so that a refused
    // certificate is logged with the reason and the client is told; nothing is read from a
    // client that is not authorized.
    requestCert: requireCert,
    rejectUnauthorized: false,
    // The pending timeout (authTimeoutMs) covers the handshake.
    handshakeTimeout: 0,
  };
  try {
    tls.createSecureContext(options);
  } catch (err) {
    throw new BroadcastServerError('EINVAL', `tcp.tls: ${(err as Error).message}`, { cause: err });
  }
  return { options, requireCert, summary };
}

/** A BroadcastServer's options, checked, with their defaults. */
export interface ServerSetup {
  source: EventSource;
  log: (line: string) => void;
  /** The socket file ('' for none), its mode and group (null: unchanged). */
  unix: { path: string; mode: number; gid: number | null };
  tcp: { port: number; host: string } | null;
  /** TCP: the password, TLS and the bounds of admission (null without TCP). */
  admission: AdmissionOptions | null;
  maxClients: number;
  reservedClients: number;
  maxPerUser: number;
  visibility: PeerVisibility;
  subordinateIds: string;
  requestsPerSecond: number;
  answerBytesPerSecond: number;
  bufferBytes: number;
  graceMs: number;
  stallTimeoutMs: number;
  policy: 'drop' | 'disconnect';
  replayEvents: number;
  replayBytes: number;
  requestWaitMs: number;
}

/** Checks a BroadcastServer's options, in the order they are documented; throws a BroadcastServerError (EINVAL, ENOPASSWORD) on the first bad one. */
export function resolveServerOptions(options: BroadcastServerOptions): ServerSetup {
  if (!options || typeof options !== 'object') throw new BroadcastServerError('EINVAL', 'createBroadcastServer needs an options object');
  if (!isEventSource(options.source)) {
    throw new BroadcastServerError('EINVAL', 'options.source must be an EventEmitter of "batch" events (e.g. a ProcConnector)');
  }
  if (!options.unix && !options.tcp) throw new BroadcastServerError('EINVAL', 'give options.unix, options.tcp or both');
  const logFn = options.log;
  const log = (line: string) => {
    try {
      if (typeof logFn === 'function') logFn(line);
    } catch {
      /* a failing logger must not break the server */
    }
  };
  let unix: ServerSetup['unix'] = { path: '', mode: 0, gid: null };
  if (options.unix) {
    const p = options.unix.path;
    if (typeof p !== 'string' || p === '') throw new BroadcastServerError('EINVAL', 'unix.path must be a non-empty string');
    unix = {
      path: path.resolve(p),
      mode: intOption(options.unix.mode, 'unix.mode', 0o666, 0, 0o777),
      gid: options.unix.group === undefined ? null : groupId(options.unix.group),
    };
  }
  let tcp: ServerSetup['tcp'] = null;
  let admission: AdmissionOptions | null = null;
  if (options.tcp) {
    tcp = { port: intOption(options.tcp.port, 'tcp.port', -1, 0, 65535), host: options.tcp.host ?? '0.0.0.0' };
    if (tcp.port < 0) throw new BroadcastServerError('EINVAL', 'tcp.port is required (0 picks a free port)');
    const password = resolvePassword(options.tcp, log);
    admission = {
      password,
      tls: options.tcp.tls !== undefined ? resolveTls(options.tcp.tls) : null,
      maxPending: intOption(options.maxPending, 'maxPending', 128, 1),
      authTimeoutMs: intOption(options.authTimeoutMs, 'authTimeoutMs', 3000, 1),
      authFailureDelayMs: intOption(options.authFailureDelayMs, 'authFailureDelayMs', 250, 0),
      authFailureRate: intOption(options.authFailureRate, 'authFailureRate', 5, 0, 1000000),
    };
  }
  const maxClients = intOption(options.maxClients, 'maxClients', 10, 1);
  const reservedClients = intOption(options.reservedClients, 'reservedClients', Math.min(2, maxClients - 1), 0, maxClients - 1);
  const visibility = options.peerVisibility ?? 'host';
  if (visibility !== 'host' && visibility !== 'all' && visibility !== 'own') {
    throw new BroadcastServerError('EINVAL', `peerVisibility must be "host", "all" or "own", got ${String(visibility)}`);
  }
  if (options.subordinateIds !== undefined && (typeof options.subordinateIds !== 'string' || options.subordinateIds === '')) {
    throw new BroadcastServerError('EINVAL', 'subordinateIds must be a file path');
  }
  const requestsPerSecond = intOption(options.requestsPerSecond, 'requestsPerSecond', 2, 1);
  const answerBytesPerSecond = intOption(options.answerBytesPerSecond, 'answerBytesPerSecond', 16 << 20, 1024);
  const maxPerUser = intOption(options.maxClientsPerUser, 'maxClientsPerUser', Math.ceil(maxClients / 4), 1);
  const bufferBytes = intOption(options.clientBufferBytes, 'clientBufferBytes', 4 << 20, 1);
  const graceMs = intOption(options.closeGraceMs, 'closeGraceMs', 200, 0);
  const stallTimeoutMs = intOption(options.stallTimeoutMs, 'stallTimeoutMs', 60000, 0);
  const policy = options.slowClient ?? 'drop';
  if (policy !== 'drop' && policy !== 'disconnect') {
    throw new BroadcastServerError('EINVAL', `slowClient must be "drop" or "disconnect", got ${String(policy)}`);
  }
  const replayEvents = intOption(options.replayEvents, 'replayEvents', 65536, 0);
  const replayBytes = intOption(options.replayBytes, 'replayBytes', 64 << 20, 1);
  // Without a ring, a client waiting to send its request would miss events: no requests.
  const requestWaitMs = replayEvents === 0 ? 0 : intOption(options.requestWaitMs, 'requestWaitMs', 100, 0, 60000);
  return {
    source: options.source,
    log,
    unix,
    tcp,
    admission,
    maxClients,
    reservedClients,
    maxPerUser,
    visibility,
    subordinateIds: options.subordinateIds ?? '/etc/subuid',
    requestsPerSecond,
    answerBytesPerSecond,
    bufferBytes,
    graceMs,
    stallTimeoutMs,
    policy,
    replayEvents,
    replayBytes,
    requestWaitMs,
  };
}
