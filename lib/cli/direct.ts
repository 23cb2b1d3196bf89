/**
 * The daemon's --direct output: the connector's events on stdout, as JSON lines or as
 * --format text (coloured on a terminal).
 */
import type { ProcConnector } from '../connector';
import { lostEvent, toLine, type ProcEvent } from '../events';
import { formatEvent } from '../format';
import { ecsSource, toEcs, type Schema } from '../ecs';
import type { LineSource } from '../source';

const COLORS: Record<string, string> = { fork: '\x1b[36m', exec: '\x1b[32m', exit: '\x1b[33m', lost: '\x1b[31;1m' };

/**
 * Whether `--format text` is coloured: on a terminal, unless NO_COLOR is set and not empty
 * (https://no-color.org). FORCE_COLOR, when set, decides as it does for Node.js itself: 1, 2,
 * 3, true or empty colour even when not on a terminal; anything else (0, false) never.
 */
export function useColor(isTTY: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined) return ['', '1', '2', '3', 'true'].includes(force);
  if (env.NO_COLOR) return false;
  return isTTY;
}

/**
 * Writes the connector's events on stdout, bounded: a stalled reader of stdout loses events,
 * never memory. JSON goes out as the reader's own lines, with no object made (or as ECS lines,
 * with `schema` ecs).
 */
export function directWriter(conn: ProcConnector, format: 'json' | 'text', log: (line: string) => void, schema: Schema = 'default', lines?: LineSource): void {
  const out = process.stdout;
  const color = format === 'text' && useColor(out.isTTY === true);
  const limit = 16 << 20;
  let dropped = 0;
  const line = (ev: ProcEvent): string => {
    if (format === 'json') return schema === 'ecs' ? JSON.stringify(toEcs(ev)) + '\n' : toLine(ev);
    const text = formatEvent(ev);
    const c = color ? COLORS[ev.event] : undefined;
    return (c ? `${c}${text}\x1b[0m` : text) + '\n';
  };
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0); // the reader went away (e.g. `| head`)
    log(`stdout: ${err.message}`);
  });
  const write = (count: number, chunk: () => string | Buffer) => {
    if (out.writableLength > limit) {
      dropped += count;
      return;
    }
    if (dropped) {
      out.write(line(lostEvent(dropped, 'client')));
      dropped = 0;
    }
    out.write(chunk());
  };
  if (format === 'json') {
    // (The daemon hands its own ECS source, shared with its other outputs: one transform per batch.)
    const source: LineSource = lines ?? (schema === 'ecs' ? ecsSource(conn) : conn);
    source.on('lines', (lines) => write(lines.ends.length, () => lines.buf));
  } else {
    conn.on('batch', (batch) => write(batch.length, () => batch.map(line).join('')));
  }
}
