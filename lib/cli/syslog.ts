// The daemon's --syslog flags, read into what the syslog sender (lib/outputs/syslog.ts) takes.
import * as path from 'node:path';
import { UsageError, type Flags } from './args';
import { DEFAULT_EVENT_FACILITY, DEFAULT_SYSLOG_SOCKET, FACILITIES, type SyslogTarget } from '../outputs/syslog';

/** Parses `unix:PATH`, `udp://HOST:PORT` or `tcp://HOST:PORT`; throws a UsageError. */
export function parseSyslogTarget(text: string, flag = '--syslog-target'): SyslogTarget {
  if (text.startsWith('unix:')) {
    const p = text.slice(5);
    if (!p.startsWith('/')) throw new UsageError(`${flag}: unix:PATH needs an absolute path, got "${text}"`);
    return { kind: 'unix', path: p };
  }
  const m = /^(udp|tcp):\/\/(?:\[([0-9A-Fa-f:.]+)\]|([^:/[\]\s]+)):(\d{1,5})\/?$/.exec(text);
  if (!m) throw new UsageError(`${flag} must be unix:PATH, udp://HOST:PORT or tcp://HOST:PORT, got "${text}"`);
  const port = Number(m[4]);
  if (port < 1 || port > 65535) throw new UsageError(`${flag}: the port must be from 1 to 65535, got "${m[4]}"`);
  return { kind: m[1] as 'udp' | 'tcp', host: (m[2] ?? m[3]) as string, port };
}

/** A facility name (or number 0-23) as its number; throws a UsageError. */
export function parseFacility(text: string, flag = '--syslog-facility'): number {
  const f = /^\d+$/.test(text) ? Number(text) : FACILITIES[text.toLowerCase()];
  if (f === undefined || f > 23) throw new UsageError(`${flag}: unknown facility "${text}" (known: ${Object.keys(FACILITIES).join(', ')})`);
  return f;
}

/** What the daemon's --syslog flags ask for. */
export interface SyslogConfig {
  target: SyslogTarget;
  /** Every event too (--syslog-events), not only the log lines. */
  events: boolean;
  eventFacility: number;
}

/**
 * Reads --syslog, --syslog-socket, --syslog-target, --syslog-events and --syslog-facility;
 * null without --syslog. Throws a UsageError.
 */
export function syslogConfig(flags: Flags): SyslogConfig | null {
  const socket = flags.str('syslog-socket');
  const target = flags.str('syslog-target');
  const facility = flags.str('syslog-facility');
  const events = flags.on('syslog-events');
  if (!flags.on('syslog')) {
    const stray = socket !== undefined ? 'socket' : target !== undefined ? 'target' : events ? 'events' : facility !== undefined ? 'facility' : null;
    if (stray) throw new UsageError(`--syslog-${stray} needs --syslog`);
    return null;
  }
  if (socket !== undefined && target !== undefined) throw new UsageError('give either --syslog-socket or --syslog-target, not both');
  if (facility !== undefined && !events) throw new UsageError('--syslog-facility applies to --syslog-events');
  return {
    target: target !== undefined ? parseSyslogTarget(target) : { kind: 'unix', path: path.resolve(socket ?? DEFAULT_SYSLOG_SOCKET) },
    events,
    eventFacility: parseFacility(facility ?? DEFAULT_EVENT_FACILITY),
  };
}
