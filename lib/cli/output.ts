// The daemon's --output flags, read into what the file output (lib/outputs/file.ts) takes.
import * as path from 'node:path';
import { UsageError, wholeNumber, type Flags } from './args';

export const OUTPUT_FLAGS = ['output', 'output-max-size', 'output-keep'];

/** Their part of --help. */
export const OUTPUT_USAGE = `      --output FILE      append every event to FILE, one JSON line each (created 0640 if
                         absent; reopened on SIGHUP, for logrotate; a full or failing disk
                         drops events, counted in the file as one "lost" line with source
                         "file", and never holds up the other outputs; default: none)
      --output-max-size SIZE
                         rotate FILE before it passes SIZE bytes (K, M, G suffixes; at least
                         4K): it becomes FILE.<time>.gz (default: 0, no rotation)
      --output-keep N    rotated files kept, the oldest deleted beyond (default: 5)`;

/** What the daemon's --output flags ask for. */
export interface OutputConfig {
  path: string;
  maxBytes: number;
  keep: number;
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size: a whole number of bytes, or with K, M or G (1024-based); throws a UsageError. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d{1,15})([kKmMgG]?)$/.exec(text);
  if (!m) throw new UsageError(`${flag} takes a size in bytes (K, M, G suffixes), got "${text}"`);
  return Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number);
}

/** Reads --output, --output-max-size and --output-keep; null without --output. Throws a UsageError. */
export function outputConfig(flags: Flags): OutputConfig | null {
  const file = flags.str('output');
  const size = flags.str('output-max-size');
  const keep = flags.str('output-keep');
  if (file === undefined) {
    if (size !== undefined || keep !== undefined) throw new UsageError(`--output-${size !== undefined ? 'max-size' : 'keep'} needs --output`);
    return null;
  }
  if (file === '') throw new UsageError('--output needs a file name');
  const maxBytes = size === undefined ? 0 : parseSize(size, '--output-max-size');
  if (maxBytes > 0 && maxBytes < 4096) throw new UsageError(`--output-max-size must be 0 (no rotation) or at least 4K, got "${size as string}"`);
  return { path: path.resolve(file), maxBytes, keep: keep === undefined ? 5 : wholeNumber(keep, 'output-keep', 0, 1000) };
}
