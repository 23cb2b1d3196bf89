/**
 * Checks of PEM certificates and keys given for TLS, so that a bad file or string is one clear
 * message naming what was wrong (and where it came from), not an OpenSSL error at first use.
 */
import * as crypto from 'node:crypto';

/** PEM text, as a string or the bytes of a file. */
export type Pem = string | Buffer;

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

function text(pem: unknown, what: string): string {
  if (typeof pem === 'string') return pem;
  if (Buffer.isBuffer(pem)) return pem.toString('latin1');
  throw new TypeError(`${what} must be PEM text (a string or a Buffer), got ${pem === null ? 'null' : typeof pem}`);
}

function reason(err: unknown): string {
  return (err as Error).message.replace(/^error:[0-9A-Fa-f]+:/, '').replace(/::/g, ': ');
}

/** Every certificate in a PEM bundle (at least one), parsed; throws naming `what` otherwise. */
export function parseCertificates(pem: Pem | readonly Pem[], what: string): crypto.X509Certificate[] {
  const parts = Array.isArray(pem) ? (pem as readonly Pem[]) : [pem as Pem];
  const certs: crypto.X509Certificate[] = [];
  for (const part of parts) {
    const blocks = text(part, what).match(CERT_BLOCK) ?? [];
    for (const block of blocks) {
      try {
        certs.push(new crypto.X509Certificate(block));
      } catch (err) {
        throw new Error(`${what}: certificate ${certs.length + 1} cannot be read (${reason(err)})`);
      }
    }
  }
  if (certs.length === 0) throw new Error(`${what}: no PEM certificate in it (expected "-----BEGIN CERTIFICATE-----")`);
  return certs;
}

/** A PEM private key, parsed; throws naming `what` otherwise (encrypted keys are not supported). */
export function parsePrivateKey(pem: Pem, what: string): crypto.KeyObject {
  const t = text(pem, what);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(t)) {
    throw new Error(`${what}: the private key is encrypted; give an unencrypted one (e.g. openssl pkey -in KEY -out KEY.plain)`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(t)) throw new Error(`${what}: no PEM private key in it (expected "-----BEGIN PRIVATE KEY-----")`);
  try {
    return crypto.createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${what}: the private key cannot be read (${reason(err)})`);
  }
}

/** Throws unless `key` is the private key of `cert` (the first certificate of a chain). */
export function checkKeyPair(cert: crypto.X509Certificate, key: crypto.KeyObject, certWhat: string, keyWhat: string): void {
  let ok = false;
  try {
    ok = cert.checkPrivateKey(key);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`${keyWhat} is not the private key of the certificate in ${certWhat}`);
}

/** "CN=host" (or the whole subject) of a certificate, on one line. */
export function subjectName(cert: crypto.X509Certificate): string {
  const lines = cert.subject.split('\n');
  return lines.find((l) => l.startsWith('CN=')) ?? lines.join(', ');
}
