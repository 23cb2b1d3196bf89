/** Command-line parsing shared by the procMonitor commands (mri underneath). */
import mri = require('mri');

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
  let unknown: string | null = null;
  // mri only knows (and so only accepts, with `unknown`) the flags named in `alias`.
  const alias: Record<string, string[]> = Object.fromEntries(
    [...spec.string, ...spec.boolean].map((long) => [long, Object.keys(spec.short).filter((s) => spec.short[s] === long)]),
  );
  const args = mri(argv, {
    string: [...spec.string],
    boolean: [...spec.boolean],
    alias,
    unknown: (flag) => {
      unknown ??= flag;
      return false;
    },
  }) as Record<string, unknown> & { _: string[] };
  if (unknown) throw new UsageError(`unknown option ${unknown} (see --help)`);
  if (args._.length) throw new UsageError(`unexpected argument "${args._[0]}" (see --help)`);
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

/** A whole number from min to max, or a UsageError naming the flag. */
export function wholeNumber(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}
