/**
 * journald's native protocol, pure (no socket): what an event or a log line becomes as a
 * journal entry, and its bytes. Each field is `NAME=value\n`, or, where the value holds a
 * newline, `NAME\n`, its length as a little-endian 64-bit number, the value, `\n`
 * (systemd's "Native Journal Protocol"). Field names are upper case letters, digits and `_`,
 * not starting with `_` or a digit, at most 64 bytes.
 */
import { formatEvent } from '../format';
import type { ProcEvent } from '../events';
import { SEVERITIES, type Severity } from './syslog';

/** A field of an entry: its name (valid, see `fieldName`) and its value. */
export type JournalField = readonly [name: string, value: string];

export const FIELD_PREFIX = 'PROCMON_';
const MAX_NAME = 64;
/** The facility of the daemon's own log lines (syslog's `daemon`). */
const LOG_FACILITY = '3';

/** `prefix` + `key` as a field name (upper case, `_` for any other character, at most 64 bytes). */
export function fieldName(prefix: string, key: string): string {
  return (prefix + key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')).slice(0, MAX_NAME);
}

/** The bytes of one entry. */
export function encodeEntry(fields: readonly JournalField[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    if (!value.includes('\n')) {
      parts.push(Buffer.from(`${name}=${value}\n`, 'utf8'));
      continue;
    }
    const v = Buffer.from(value, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(v.length));
    parts.push(Buffer.from(`${name}\n`, 'latin1'), len, v, Buffer.from('\n', 'latin1'));
  }
  return Buffer.concat(parts);
}

/** One of the daemon's own log lines as an entry. */
export function logFields(line: string, level: Severity, identifier: string): JournalField[] {
  return [
    ['MESSAGE', line],
    ['PRIORITY', String(SEVERITIES[level])],
    ['SYSLOG_FACILITY', LOG_FACILITY],
    ['SYSLOG_IDENTIFIER', identifier],
  ];
}

function scalar(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/**
 * An event as an entry: MESSAGE (the event as one plain line, as `--format text` says it
 * without the time), PRIORITY (warning for coredump and lost, info otherwise),
 * SYSLOG_IDENTIFIER, then `PROCMON_<KEY>` for each of the event's keys: a string, number or
 * boolean as it is, an array as its JSON text, an object's members as `PROCMON_<KEY>_<MEMBER>`
 * (the same way, one level deep; deeper ones as JSON text); null values are left out. A fork's
 * child is also its PROCMON_PID, so that `journalctl PROCMON_PID=N` finds every event of N.
 */
export function eventFields(ev: ProcEvent, identifier: string): JournalField[] {
  const warn = ev.event === 'coredump' || ev.event === 'lost';
  const out: JournalField[] = [
    ['MESSAGE', formatEvent(ev, { time: false, columns: false })],
    ['PRIORITY', String(warn ? SEVERITIES.warning : SEVERITIES.info)],
    ['SYSLOG_IDENTIFIER', identifier],
  ];
  const e = ev as unknown as Record<string, unknown>;
  if (!('pid' in e) && typeof e.child_pid === 'number') out.push([`${FIELD_PREFIX}PID`, String(e.child_pid)]);
  for (const [key, v] of Object.entries(e)) {
    if (v === null || v === undefined) continue;
    const name = fieldName(FIELD_PREFIX, key);
    const s = scalar(v);
    if (s !== null) out.push([name, s]);
    else if (Array.isArray(v)) out.push([name, JSON.stringify(v)]);
    else if (typeof v === 'object') {
      for (const [k, w] of Object.entries(v as Record<string, unknown>)) {
        if (w === null || w === undefined) continue;
        out.push([fieldName(`${name}_`, k), scalar(w) ?? JSON.stringify(w)]);
      }
    }
  }
  return out;
}
