/** Command-line parsing shared by the procMonitor commands (mri underneath). */
import type { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import mri = require('mri');
import { checkKeyPair, parseCertificates, parsePrivateKey } from '../pem';

/** Bad usage: the message is the one line printed before exiting with status 2. */
export class UsageError extends Error {}

export interface FlagSpec {
  /** Flags that take a value. */
  string: readonly string[];
  /** Flags that do not. */
  boolean: readonly string[];
  /** Short flag -> long flag. */
  short: Readonly<Record<string, string>>;
}

export interface Flags {
  /** Whether a boolean flag was given. */
  on(name: string): boolean;
  /** The value of a flag, or undefined; a flag given twice or without a value is a UsageError. */
  str(name: string): string | undefined;
  /** Every value of a repeatable flag, in order ([] when absent); an empty value is a UsageError. */
  list(name: string): string[];
}

/**
 * Parses argv: unknown flags, stray arguments, repeated flags and missing values are
 * UsageErrors naming the culprit.
 */
export function parseFlags(argv: string[], spec: FlagSpec): Flags {
  argv = joinNegativeValues(argv, spec);
  // (An object: TypeScript cannot see the callback below set it.)
  const unknown: { flag: string | null } = { flag: null };
  // mri only knows (and so only accepts, with `unknown`) the flags named in `alias`.
  const alias: Record<string, string[]> = Object.fromEntries(
    [...spec.string, ...spec.boolean].map((long) => [long, Object.keys(spec.short).filter((s) => spec.short[s] === long)]),
  );
  const args = mri(argv, {
    string: [...spec.string],
    boolean: [...spec.boolean],
    alias,
    unknown: (flag) => {
      unknown.flag ??= flag;
      return false;
    },
  }) as Record<string, unknown> & { _: string[] };
  if (unknown.flag) throw new UsageError(`unknown option ${unknown.flag} (see --help)`);
  if (args._.length) throw new UsageError(`unexpected argument "${String(args._[0])}" (see --help)`);
  for (const b of spec.boolean) if (Array.isArray(args[b])) throw new UsageError(`--${b} given more than once`);
  return {
    on: (name) => Boolean(args[name]),
    str: (name) => {
      const v = args[name];
      if (v === undefined) return undefined;
      if (Array.isArray(v)) throw new UsageError(`--${name} given more than once`);
      if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`);
      return v;
    },
    list: (name) => {
      const v = args[name];
      if (v === undefined) return [];
      const all = Array.isArray(v) ? v : [v];
      for (const x of all) if (typeof x !== 'string' || x === '') throw new UsageError(`--${name} needs a value`);
      return all as string[];
    },
  };
}

/**
 * mri reads `--clients -1` as two flags (and `-1` as an unknown one): a value-taking flag
 * followed by a negative number gets that number as its value (`--clients=-1`), so that the
 * flag's own check can say what is wrong with it.
 */
function joinNegativeValues(argv: string[], spec: FlagSpec): string[] {
  const takesValue = new Set(spec.string);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const next = argv[i + 1];
    const long = a.startsWith('--') ? a.slice(2) : /^-[^-]$/.test(a) ? spec.short[a.slice(1)] : undefined;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (long !== undefined && takesValue.has(long) && next !== undefined && /^-\d/.test(next)) {
      out.push(`--${long}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** A whole number from min to max, or a UsageError naming the flag. */
export function wholeNumber(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/** PEM files named by the `--tls-cert`, `--tls-key` and `--tls-ca` flags, read and checked. */
export interface TlsFiles {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

/**
 * Reads `--tls-cert`, `--tls-key` and `--tls-ca` (null when none is given). A file that cannot
 * be read or holds no valid PEM, a cert without its key or a key that is not the cert's, is a
 * UsageError naming the flag and the file.
 */
export function readTlsFlags(flags: Flags): TlsFiles | null {
  const names = { cert: flags.str('tls-cert'), key: flags.str('tls-key'), ca: flags.str('tls-ca') };
  if (names.cert === undefined && names.key === undefined && names.ca === undefined) return null;
  if ((names.cert === undefined) !== (names.key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
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
      const certWhat = `--tls-cert ${names.cert}`;
      const keyWhat = `--tls-key ${names.key}`;
      out.cert = read('tls-cert', names.cert);
      out.key = read('tls-key', names.key);
      const leaf = parseCertificates(out.cert, certWhat)[0] as X509Certificate;
      checkKeyPair(leaf, parsePrivateKey(out.key, keyWhat), certWhat, keyWhat);
    }
    if (names.ca !== undefined) {
      out.ca = read('tls-ca', names.ca);
      parseCertificates(out.ca, `--tls-ca ${names.ca}`);
    }
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError((err as Error).message);
  }
  return out;
}
