// Options of the broadcast server checked and resolved once, at construction: ids, the TCP
// password, the TLS set-up.
import type * as crypto from 'node:crypto';
import * as tls from 'node:tls';
import { checkKeyPair, parseCertificates, parsePrivateKey, subjectName } from '../pem';
import { readSecretFile } from '../secret';
import { intOption as intOptionOf } from '../options';
import { MAX_PASSWORD_BYTES } from '../protocol';
import { lookupIdSync } from './accounts';
import { BroadcastServerError, type TcpTlsOptions, type TcpTransportOptions } from './types';

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

/** The TLS set-up of a TCP server: options checked, and a line for the log. */
export interface TlsSetup {
  options: tls.TlsOptions;
  requireCert: boolean;
  summary: string;
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
