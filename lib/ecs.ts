/**
 * Events in Elastic Common Schema (ECS 8.x) fields, for Elastic, OpenSearch, Vector and
 * Fluent Bit users who index them without writing a mapping: `@timestamp`, `event.*`,
 * `process.*` (with `process.parent.*`), `user.*`, `container.id`, `host.name`. What ECS has
 * no field for stays, under `procmonitor.*`, so nothing is lost. The default wire format is
 * untouched: this is a view of it, line for line (`ecsLines`), or of a whole source
 * (`ecsSource`).
 */
import * as os from 'node:os';
import type { LineBatch, ProcEvent } from './events';
import { subscribeLines, type EventSource, type LineSource } from './source';

export const ECS_VERSION = '8.11.0';

/** The schemas events can be written in: `default` (the wire format) or `ecs`. */
export type Schema = 'default' | 'ecs';
export const SCHEMAS: readonly Schema[] = Object.freeze(['default', 'ecs']);

/** An event as an ECS document (nested objects, as Elasticsearch takes them). */
export type EcsDocument = Record<string, unknown> & { '@timestamp': string; event: Record<string, unknown> };

const TYPES: Record<string, string[]> = { fork: ['start'], exec: ['start'], exit: ['end'], lost: ['info'] };
/** Keys of the wire format that map to an ECS field (the rest go under procmonitor.*). */
const MAPPED = new Set([
  'event',
  'time',
  'seq',
  'pid',
  'child_pid',
  'parent_pid',
  'ppid',
  'exe',
  'argv',
  'cmdline',
  'comm',
  'cwd',
  'user',
  'uid',
  'exec_id',
  'parent_exec_id',
  'container_id',
  'code',
  'duration_ms',
  'thread',
]);

/** Sets `value` at the dotted `key` of `doc` (objects made on the way); undefined and null are left out. */
function put(doc: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined || value === null) return;
  const parts = key.split('.');
  let o = doc;
  for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
  o[parts[parts.length - 1] as string] = value;
}

/**
 * One event as an ECS document. `host`: host.name (default: this host's name). `event.action`
 * is the event's name; `event.type` start (fork, exec), end (exit), change (uid, gid, sid,
 * comm, ptrace), info (lost, coredump); `event.outcome` of an exit: success for code 0,
 * failure otherwise; `event.sequence` a server's seq.
 */
export function toEcs(ev: ProcEvent, host: string = os.hostname()): EcsDocument {
  const e = ev as unknown as Record<string, unknown>;
  const doc: Record<string, unknown> = {};
  put(doc, '@timestamp', e.time);
  put(doc, 'ecs.version', ECS_VERSION);
  put(doc, 'event.kind', ev.event === 'lost' ? 'metric' : 'event');
  put(doc, 'event.category', ['process']);
  put(doc, 'event.type', TYPES[ev.event] ?? (ev.event === 'coredump' ? ['info'] : ['change']));
  put(doc, 'event.action', ev.event);
  put(doc, 'event.module', 'procmonitor');
  put(doc, 'event.dataset', 'procmonitor.process');
  put(doc, 'event.sequence', e.seq);
  put(doc, 'host.name', host);
  const fork = ev.event === 'fork';
  put(doc, 'process.pid', fork ? e.child_pid : e.pid);
  put(doc, 'process.parent.pid', fork ? e.parent_pid : e.ppid);
  put(doc, 'process.entity_id', e.exec_id);
  put(doc, 'process.parent.entity_id', e.parent_exec_id);
  put(doc, 'process.executable', e.exe);
  put(doc, 'process.name', e.comm);
  put(doc, 'process.command_line', e.cmdline);
  if (Array.isArray(e.argv)) {
    put(doc, 'process.args', e.argv);
    put(doc, 'process.args_count', e.argv.length);
  }
  put(doc, 'process.working_directory', e.cwd);
  if (typeof e.uid === 'number') {
    put(doc, 'user.id', String(e.uid));
    put(doc, 'process.user.id', String(e.uid));
  }
  put(doc, 'user.name', e.user);
  put(doc, 'process.user.name', e.user);
  put(doc, 'container.id', e.container_id);
  if (fork && e.thread === true) put(doc, 'process.thread.id', e.child_pid);
  if (ev.event === 'exit') {
    put(doc, 'process.exit_code', e.code);
    put(doc, 'process.end', e.time);
    put(doc, 'event.outcome', e.code === 0 ? 'success' : 'failure');
    if (typeof e.duration_ms === 'number') put(doc, 'event.duration', Math.round(e.duration_ms * 1e6));
  }
  if (ev.event === 'exec') put(doc, 'process.start', e.time);
  // What ECS has no field for, as it is.
  for (const [k, v] of Object.entries(e)) if (!MAPPED.has(k)) put(doc, `procmonitor.${k}`, v);
  return doc as EcsDocument;
}

/** The lines of a batch (the wire format) as ECS lines, one for one (a line that is not an event stays as it is). */
export function ecsLines(batch: LineBatch, host: string = os.hostname()): LineBatch {
  const n = batch.ends.length;
  const out: string[] = new Array<string>(n);
  const ends = new Uint32Array(n);
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const end = batch.ends[i] as number;
    // (ends are byte offsets: each line is decoded on its own.)
    const line = batch.buf.toString('utf8', start, end);
    start = end;
    let doc: string;
    try {
      const ev = JSON.parse(line) as ProcEvent | EcsDocument;
      // (A line already in ECS, from a source that is one, stays as it is.)
      doc = typeof ev.event === 'object' ? (line.endsWith('\n') ? line : `${line}\n`) : JSON.stringify(toEcs(ev, host)) + '\n';
    } catch {
      doc = line.endsWith('\n') ? line : `${line}\n`;
    }
    out[i] = doc;
    bytes += Buffer.byteLength(doc);
    ends[i] = bytes;
  }
  return { buf: Buffer.from(out.join(''), 'utf8'), ends, kinds: batch.kinds, uids: batch.uids };
}

/**
 * A source that hands over `source`'s events as ECS lines (e.g. to a FileOutput, a
 * NatsPublisher, a broadcast server): each batch transformed once, whoever listens.
 */
export function ecsSource(source: EventSource, host: string = os.hostname()): LineSource {
  const listeners = new Set<(lines: LineBatch) => void>();
  let unsubscribe: (() => void) | null = null;
  const src: LineSource = {
    emitsLines: true,
    lineOf: (ev) => JSON.stringify(toEcs(ev, host)) + '\n',
    on(_event: 'lines', fn: (lines: LineBatch) => void) {
      listeners.add(fn);
      unsubscribe ??= subscribeLines(source, (lines) => {
        const out = ecsLines(lines, host);
        for (const l of listeners) l(out);
      });
      return src;
    },
    off(_event: 'lines', fn: (lines: LineBatch) => void) {
      listeners.delete(fn);
      if (listeners.size === 0 && unsubscribe) {
        unsubscribe();
        unsubscribe = null;
      }
      return src;
    },
  };
  return src;
}
