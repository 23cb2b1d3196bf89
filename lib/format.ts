// How an event reads for people (`procMonitor --direct --format text`, `procMonitor-client`
// without --json: one line, aligned columns; journald's MESSAGE: one plain line).
import type { ProcEvent } from './events';

function exitStatus(ev: { exit_code?: number; code?: number | null; signal?: string | null; core?: boolean }): string {
  if (ev.signal) return `killed by ${ev.signal}${ev.core ? ' (core dumped)' : ''}`;
  if (typeof ev.code === 'number') return `code ${ev.code}`;
  if (typeof ev.exit_code === 'number') {
    const raw = ev.exit_code;
    return (raw & 0x7f) === 0 ? `code ${(raw >> 8) & 0xff}` : `killed by signal ${raw & 0x7f}`;
  }
  return 'exited';
}

/** How formatEvent lays a line out. */
export interface FormatOptions {
  /** The event's time first. Default true. */
  time?: boolean;
  /** Columns aligned (padded). Default true; false: single spaces (a log message). */
  columns?: boolean;
}

/**
 * One readable line (no newline) for an event, in aligned columns:
 * time, event, pid, user, then what happened.
 */
export function formatEvent(ev: ProcEvent, opts: FormatOptions = {}): string {
  const e = ev as ProcEvent & Record<string, unknown>;
  const time = opts.time === false ? null : typeof e.time === 'string' ? e.time : '';
  const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  const head = (pid: unknown, user: unknown): string => {
    if (opts.columns === false) return [time ?? '', String(e.event), text(pid), text(user)].filter((x) => x !== '').join(' ');
    return `${time === null ? '' : `${time} `}${String(e.event).padEnd(8)} ${text(pid).padStart(7)} ${text(user).padEnd(10)}`;
  };
  switch (ev.event) {
    case 'fork':
      return `${head(ev.child_pid, ev.user)} ${ev.thread ? 'thread of' : 'child of'} ${ev.parent_pid}${ev.comm ? ` (${ev.comm})` : ''}`;
    case 'exec':
      return `${head(ev.pid, ev.user)} ${ev.cmdline ?? ''}`.trimEnd();
    case 'exit': {
      const dur = typeof ev.duration_ms === 'number' ? ` after ${ev.duration_ms} ms` : '';
      return `${head(ev.pid, ev.user)} ${exitStatus(ev)}${dur}${ev.cmdline ? `: ${ev.cmdline}` : ''}`;
    }
    case 'lost':
      return `${head('', '')} ${ev.count} events lost (${ev.source})`;
    default: {
      const rest = Object.entries(e)
        .filter(([k]) => k !== 'event' && k !== 'time' && k !== 'pid')
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      return `${head(e.pid, '')} ${rest}`.trimEnd();
    }
  }
}
