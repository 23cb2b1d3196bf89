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
  /** Where a flag's value came from (an environment variable, a config file's line), or null: the command line, or absent. */
  origin(name: string): string | null;
}

/** A flag's value as read: a string (an array if repeated), or true for a boolean flag. */
export type FlagValue = string | string[] | boolean;

/**
 * Reads argv into each flag's value: unknown flags, stray arguments, and repeated boolean
 * flags are UsageErrors naming the culprit.
 */
export function readArgv(argv: string[], spec: FlagSpec): Map<string, FlagValue> {
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
  const out = new Map<string, FlagValue>();
  for (const name of spec.string) if (args[name] !== undefined) out.set(name, args[name] as string | string[]);
  // (--no-NAME is given too: false, so that it decides over the environment and a config file.)
  for (const name of spec.boolean) if (args[name] === true || (args[name] === false && argv.includes(`--no-${name}`))) out.set(name, args[name]);
  return out;
}

/** Flags over values read (by readArgv, or merged from several sources with their origins). */
export function flagsOf(values: ReadonlyMap<string, FlagValue>, origins: ReadonlyMap<string, string> = new Map()): Flags {
  return {
    on: (name) => values.get(name) === true,
    str: (name) => {
      const v = values.get(name);
      if (v === undefined) return undefined;
      if (Array.isArray(v)) throw new UsageError(`--${name} given more than once`);
      if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`);
      return v;
    },
    list: (name) => {
      const v = values.get(name);
      if (v === undefined) return [];
      const all = Array.isArray(v) ? v : [v];
      for (const x of all) if (typeof x !== 'string' || x === '') throw new UsageError(`--${name} needs a value`);
      return all as string[];
    },
    origin: (name) => origins.get(name) ?? null,
  };
}

/**
 * Parses argv: unknown flags, stray arguments, repeated flags and missing values are
 * UsageErrors naming the culprit.
 */
export function parseFlags(argv: string[], spec: FlagSpec): Flags {
  return flagsOf(readArgv(argv, spec));
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
    const long = flagName(a, spec);
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

/** The long name of a flag as given alone (`--name`, or `-x` for a known short flag); undefined otherwise. */
function flagName(a: string, spec: FlagSpec): string | undefined {
  return a.startsWith('--') ? a.slice(2) : /^-[^-]$/.test(a) ? spec.short[a.slice(1)] : undefined;
}

/**
 * A command line of options then a command (`procMonitor trace [options] [--] COMMAND ARGS`):
 * the options end at `--` or at the first argument that is neither an option nor the value of
 * one; everything after is the command's, untouched (its own options included).
 */
export function splitCommand(argv: readonly string[], spec: FlagSpec): { options: string[]; command: string[] } {
  const takesValue = new Set(spec.string);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return { options: argv.slice(0, i), command: argv.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { options: argv.slice(0, i), command: argv.slice(i) };
    const long = flagName(a, spec);
    if (long !== undefined && takesValue.has(long)) i++; // its value, whatever it looks like
  }
  return { options: [...argv], command: [] };
}

/** A whole number from min to max (with `fractions`, any number: "0.5"), or a UsageError naming the flag. */
export function wholeNumber(text: string, flag: string, min: number, max: number, o: { fractions?: boolean } = {}): number {
  if (!(o.fractions ? /^\d+(\.\d+)?$/ : /^\d+$/).test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${flag} must be a ${o.fractions ? '' : 'whole '}number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}
