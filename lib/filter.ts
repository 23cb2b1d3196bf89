// The one filter model: which events a ProcConnector passes on, and so what every output of
// the daemon built on it sends (stdout, the socket, TCP, NATS, syslog). Checked here, where a
// mistake is a clear error at once; run by the reader (native/filter.h), before an event is
// serialised: an event filtered out costs no JavaScript at all.
import type { ProcessRecord } from './events';
import { loadBinding, type NativeLineFilter } from './native';

/** The keys a filter can name. */
export const FILTER_KEYS = ['event', 'user', 'uid', 'login_user', 'auid', 'comm', 'exe', 'argv', 'cwd', 'container', 'cgroup', 'failed', 'subtree'] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];
export type FilterValue = string | number | boolean;
/** Keys and their values: every key given must match (AND), each by any of its values (OR). */
export type FilterTerms = { readonly [K in FilterKey]?: FilterValue | readonly FilterValue[] };

/**
 * Which events pass: those that match every key of `match` and do not match every key of
 * `exclude`. Text keys (user, login_user, comm, exe, argv: the command line, cwd, container,
 * cgroup) take globs (`"/usr/bin/*"`: the whole text) or regular expressions between slashes
 * (`"/^python[0-9.]*$/"`, `"/ssh/i"`: anywhere in it), matched in linear time; a container id
 * or cgroup path given plainly also matches as a prefix (a short id; a cgroup and those below
 * it). `event`: kinds; `uid`, `auid`: numbers; `failed`: true for exits with a non-zero status
 * or a signal; `subtree`: pids (or, on a running stream, exec ids) whose descendants (by fork
 * lineage) alone are followed (match only; the connector's `subtree`). Loss reports always pass.
 */
export interface EventFilter {
  match?: FilterTerms;
  exclude?: FilterTerms;
}

/** The filter as the addon takes it: [side, key, value] flattened, and the subtree's pids and exec ids. */
export interface CompiledFilter {
  rules: string[];
  subtree: number[];
  /** Exec ids in subtree (a program run: "8 hex digits:pid:ns"), resolved on a running stream. */
  runs: string[];
  keys: Set<FilterKey>;
}

/** An exec id (a program run), as events carry it. */
const EXEC_ID = /^[0-9a-f]{8}:([1-9][0-9]{0,6}):[0-9]{1,20}$/;

const MAX_RULES = 1024;

/** Why `pattern` is not a pattern (a glob, or a regular expression between slashes), or null. */
export function patternError(pattern: string): string | null {
  const binding = loadBinding();
  const why = binding instanceof Error ? null : binding.filterError('match', 'argv', pattern);
  return why === null ? null : why.replace(/^match argv=.*?: /s, '');
}

/** Checks a filter (a TypeError naming the rule at fault) and compiles it for the addon. */
export function compileFilter(filter: EventFilter | undefined): CompiledFilter {
  const out: CompiledFilter = { rules: [], subtree: [], runs: [], keys: new Set() };
  if (filter === undefined) return out;
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw new TypeError('filter must be an object: { match?: {...}, exclude?: {...} }');
  for (const side of Object.keys(filter)) {
    if (side !== 'match' && side !== 'exclude') throw new TypeError(`filter: "${side}" is neither match nor exclude`);
  }
  const binding = loadBinding();
  for (const side of ['match', 'exclude'] as const) {
    const terms = filter[side];
    if (terms === undefined) continue;
    if (typeof terms !== 'object' || terms === null || Array.isArray(terms)) throw new TypeError(`filter.${side} must be an object of keys and values`);
    for (const [key, given] of Object.entries(terms) as [string, unknown][]) {
      if (!(FILTER_KEYS as readonly string[]).includes(key)) throw new TypeError(`filter: unknown key "${key}" (${FILTER_KEYS.join(', ')})`);
      const values: unknown[] = Array.isArray(given) ? given : [given];
      if (values.length === 0) throw new TypeError(`filter.${side}.${key}: no value`);
      for (const v of values) {
        const text = valueText(side, key as FilterKey, v);
        if (key === 'subtree') {
          if (EXEC_ID.test(text)) out.runs.push(text);
          else out.subtree.push(Number(text));
        } else {
          const why = binding instanceof Error ? null : binding.filterError(side, key, text);
          if (why !== null) throw new TypeError(`filter: ${why}`);
          out.rules.push(side, key, text);
        }
        out.keys.add(key as FilterKey);
      }
    }
  }
  if (out.rules.length / 3 + out.subtree.length + out.runs.length > MAX_RULES) throw new TypeError(`filter: more than ${MAX_RULES} values`);
  return out;
}

// A value as the addon takes it, checked for its key.
function valueText(side: string, key: FilterKey, v: unknown): string {
  const where = `filter.${side}.${key}`;
  switch (key) {
    case 'uid':
    case 'auid':
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 4294967294)
        throw new TypeError(`${where}: a uid is a whole number from 0 to 4294967294, got ${JSON.stringify(v)}`);
      return String(v);
    case 'failed':
      if (typeof v !== 'boolean') throw new TypeError(`${where}: true or false, got ${JSON.stringify(v)}`);
      return String(v);
    case 'subtree':
      if (side === 'exclude') throw new TypeError('filter: subtree can be matched, not excluded');
      if (typeof v === 'string' && EXEC_ID.test(v)) return v;
      if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 0x3fffff) {
        throw new TypeError(`${where}: a pid from 1 to 4194303 or an exec id, got ${JSON.stringify(v)}`);
      }
      return String(v);
    default:
      if (typeof v !== 'string' || v === '' || Buffer.byteLength(v) > 1024) throw new TypeError(`${where}: a pattern of 1 to 1024 bytes, got ${JSON.stringify(v)}`);
      return v;
  }
}

/**
 * The processes a subtree follows from now: its pids, the processes of its exec ids (each must
 * be running that program run), and what they started that runs (`records`: the live table).
 * Empty when the filter has no subtree. Throws an Error saying which exec id runs no more,
 * unless `ended` (a client that resumes: its backlog may hold that run): then its pid.
 * Descendants are found by their parent now (a process reparented to init is not found).
 */
export function followedNow(f: CompiledFilter, records: readonly ProcessRecord[], ended = false): number[] {
  if (f.subtree.length === 0 && f.runs.length === 0) return [];
  const roots = new Set(f.subtree);
  const byRun = new Map(records.map((r) => [r.exec_id, r.pid]));
  for (const run of f.runs) {
    const pid = byRun.get(run) ?? (ended ? Number(EXEC_ID.exec(run)?.[1]) : undefined);
    if (pid === undefined) throw new Error(`filter: subtree ${run}: no process runs that program run now (it ended or ran another program)`);
    roots.add(pid);
  }
  const children = new Map<number, number[]>();
  for (const r of records) {
    const list = children.get(r.ppid);
    if (list) list.push(r.pid);
    else children.set(r.ppid, [r.pid]);
  }
  const followed = [...roots];
  for (let i = 0; i < followed.length; i++) {
    for (const c of children.get(followed[i] as number) ?? []) {
      if (roots.has(c)) continue;
      roots.add(c);
      followed.push(c);
    }
  }
  return followed;
}

/**
 * A stream's own filter on its lines (a client's request, connector.events({filter})): the
 * same rules the reader runs, on what each line says; null when it filters nothing. `records`:
 * the live table, for a subtree (called only when there is one).
 */
export function lineFilter(f: CompiledFilter, records: () => readonly ProcessRecord[], ended = false): NativeLineFilter | null {
  if (f.rules.length === 0 && f.subtree.length === 0 && f.runs.length === 0) return null;
  const binding = loadBinding();
  if (binding instanceof Error) throw binding;
  const followed = f.subtree.length > 0 || f.runs.length > 0 ? followedNow(f, records(), ended) : [];
  return new binding.LineFilter(f.rules, followed);
}

/**
 * The lines of `buf` (ending at `ends`) from index `from` on for which `pass(i)` holds, as
 * one buffer (no copy when all of them do), and how many.
 */
export function pickLines(buf: Buffer, ends: Uint32Array, from: number, pass: (i: number) => boolean): { buf: Buffer; count: number } {
  const n = ends.length;
  const start = from === 0 ? 0 : (ends[from - 1] as number);
  const parts: Buffer[] = [];
  let count = 0;
  let runStart = -1; // byte offset where the current run of passing lines began
  let lineStart = start;
  for (let i = from; i < n; i++) {
    const end = ends[i] as number;
    if (pass(i)) {
      if (runStart < 0) runStart = lineStart;
      count++;
    } else if (runStart >= 0) {
      parts.push(buf.subarray(runStart, lineStart));
      runStart = -1;
    }
    lineStart = end;
  }
  if (runStart >= 0) parts.push(buf.subarray(runStart, lineStart));
  return { buf: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts), count };
}
