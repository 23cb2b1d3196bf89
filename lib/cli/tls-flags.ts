// The TLS flags of both commands (`--tls-cert`, `--tls-key`, `--tls-ca`): the files read and
// checked. Apart from args.ts so that a command without TLS (trace) does not load crypto.
import type { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import { checkKeyPair, parseCertificates, parsePrivateKey } from '../pem';
import { UsageError, type Flags } from './args';

/** PEM files named by the `--tls-cert`, `--tls-key` and `--tls-ca` flags, read and checked. */
export interface TlsFiles {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

/**
 * Reads `--tls-cert`, `--tls-key` and `--tls-ca` (or those of another `prefix`: `nats-tls`;
 * null when none is given). A file that cannot
 * be read or holds no valid PEM, a cert without its key or a key that is not the cert's, is a
 * UsageError naming the flag and the file.
 */
export function readTlsFlags(flags: Flags, prefix = 'tls'): TlsFiles | null {
  const names = { cert: flags.str(`${prefix}-cert`), key: flags.str(`${prefix}-key`), ca: flags.str(`${prefix}-ca`) };
  if (names.cert === undefined && names.key === undefined && names.ca === undefined) return null;
  if ((names.cert === undefined) !== (names.key === undefined)) throw new UsageError(`--${prefix}-cert and --${prefix}-key go together`);
  const read = (flag: string, file: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new UsageError(`cannot read --${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const out: TlsFiles = {};
  try {
    if (names.cert !== undefined && names.key !== undefined) {
      const certWhat = `--${prefix}-cert ${names.cert}`;
      const keyWhat = `--${prefix}-key ${names.key}`;
      out.cert = read(`${prefix}-cert`, names.cert);
      out.key = read(`${prefix}-key`, names.key);
      const leaf = parseCertificates(out.cert, certWhat)[0] as X509Certificate;
      checkKeyPair(leaf, parsePrivateKey(out.key, keyWhat), certWhat, keyWhat);
    }
    if (names.ca !== undefined) {
      out.ca = read(`${prefix}-ca`, names.ca);
      parseCertificates(out.ca, `--${prefix}-ca ${names.ca}`);
    }
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError((err as Error).message);
  }
  return out;
}
