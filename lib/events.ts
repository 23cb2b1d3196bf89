/**
 * Event objects, exactly as they travel on the wire (one JSON object per line, "event"
 * first). Seed fields (child_pid, parent_pid, pid, user, cmdline, exit_code) keep their
 * names and meaning; everything else is an addition.
 */

/** Fields that could not be learned (the process was gone, or /proc refused). */
export type MissingField =
  | 'argv'
  | 'cmdline'
  | 'comm'
  | 'exe'
  | 'user'
  | 'ppid'
  | 'duration_ms'
  | 'exec_id'
  | 'parent_exec_id'
  | 'ancestors'
  | 'cgroup'
  | `cost.${Exclude<keyof ProcessCost, 'source'>}`
  | 'cwd'
  | 'auid'
  | 'sessionid'
  | 'tty'
  | 'pidns'
  | 'mntns'
  | 'netns'
  | 'nspid'
  | 'env';

/**
 * Who a process is beyond its uid, and where (options `login`, `tty`, `namespaces`, `env`):
 * read from /proc at its exec, its parent's from its fork until then (but nspid, its own).
 * A field asked for that could not be read is absent and named in `missing`.
 */
export interface ProcessContext {
  /** The login uid (audit): the user who logged in, kept across su and sudo. Absent when unset (a daemon started at boot). */
  auid?: number;
  /** The user name of `auid` ("unknown" when the user database has none, as `user`). */
  login_user?: string;
  /** The audit session. Absent when unset. */
  sessionid?: number;
  /** The controlling terminal, "pts/3", "tty1", "ttyS0"; null when the process has none. */
  tty?: string | null;
  /** Inode numbers of its pid, mount and network namespaces (`ls -l /proc/PID/ns`: "pid:[4026531836]"). */
  pidns?: number;
  mntns?: number;
  netns?: number;
  /** Its pid inside its own pid namespace (a container's view of it). */
  nspid?: number;
  /** The variables of option `env` its program was started with (those it lacks left out). */
  env?: Record<string, string>;
}

/**
 * What a process cost, on its exit event (ProcConnector option `cost`). A field that could
 * not be learned is absent, and named in the event's `missing` as `cost.FIELD`.
 */
export interface ProcessCost {
  /** CPU time in user mode, ms (taskstats: to the microsecond; /proc: clock ticks). */
  user_ms?: number;
  /** CPU time in the kernel, ms. */
  system_ms?: number;
  /** Peak resident set size, KiB (/proc: gone once the zombie's memory is released). */
  max_rss_kb?: number;
  /** Bytes the process caused to be read from storage (/proc/PID/io read_bytes). */
  read_bytes?: number;
  /** Bytes the process caused to be written to storage (write_bytes). */
  write_bytes?: number;
  voluntary_ctxt_switches?: number;
  involuntary_ctxt_switches?: number;
  /** 'taskstats': the kernel's exit records; 'proc': /proc of the zombie. */
  source: 'taskstats' | 'proc';
}

/** A parent, grandparent, ... of the process an event is about. */
export interface Ancestor {
  pid: number;
  exec_id?: string;
  comm: string;
  /** Absent for kernel threads and where /proc/PID/exe could not be read. */
  exe?: string;
}

interface Base extends ProcessContext {
  /** The kernel's timestamp of the event, RFC 3339 UTC with milliseconds. */
  time: string;
  /**
   * The program run the event is about: "BOOT:PID:NS" (the boot id's first 8 hex digits,
   * the pid, the kernel's monotonic time in ns when the run began: its fork, its exec, or
   * for a process running before the connector started, its start). A new exec is a new
   * run; a reused pid never gets the same id. Compare as an opaque string.
   */
  exec_id?: string;
  /** The run of the parent process, as the table knows it now. */
  parent_exec_id?: string;
  /** The process's cgroup (v2 path), on every event about a process (option `cgroups`). */
  cgroup?: string;
  /** Docker, containerd, CRI-O, Podman or Kubernetes container id, from the cgroup path. */
  container_id?: string;
  /**
   * The working directory the process had at its exec (or, for a process that has not
   * exec'd, its parent's as last read: at the parent's own exec), on every event about a
   * process (option `cwd`). A later chdir() is not
   * seen: no event tells of it. Absent, and named in `missing`, where it could not be read.
   */
  cwd?: string;
  /** Parents up to init, nearest first (on exec by default; option `ancestors`). */
  ancestors?: Ancestor[];
  /** The process was running before the connector started (learned from /proc). */
  learned?: true;
  /** Daemon-wide sequence number, on lines from a broadcast server (`seq` option). */
  seq?: number;
  /** Present when some fields could not be learned; those fields hold "" / null / "unknown". */
  missing?: MissingField[];
}

/** One process of the live table: `connector.snapshot()`, `connector.ancestry(pid)`. */
export interface ProcessRecord extends ProcessContext {
  pid: number;
  ppid: number;
  exec_id?: string;
  parent_exec_id?: string;
  /** null where not known (the process was gone, or /proc refused). */
  comm: string | null;
  exe: string | null;
  cmdline: string | null;
  user: string | null;
  uid: number | null;
  /** When the process started (fork, or /proc's start time). */
  start_time: string | null;
  /** When its current program started (its last exec; its start if not seen). */
  exec_time: string | null;
  cgroup?: string;
  container_id?: string;
  /** The working directory at its last exec, as read then (option `cwd`). */
  cwd?: string;
  /** Live threads besides the main one, as far as seen (with `threads` or not). */
  threads: number;
  /** Running before the connector started: learned from /proc, not from its events. */
  learned: boolean;
}

export interface ForkEvent extends Base {
  event: 'fork';
  /** The new process (for a thread: the new thread's id). */
  child_pid: number;
  /** The parent process. */
  parent_pid: number;
  user: string;
  /** null where the user is not known (`missing` names "user"). */
  uid: number | null;
  comm: string;
  /** The child's command line at fork time (its parent's program). */
  cmdline: string;
  /** Its program, its parent's ("" and `missing: ["exe"]` when not known). */
  exe: string;
  /** Only for threads (with `threads: true`). */
  thread?: true;
  child_tgid?: number;
}

export interface ExecEvent extends Base {
  event: 'exec';
  pid: number;
  user: string;
  /** argv joined by single spaces. */
  cmdline: string;
  ppid: number;
  /** null where the user is not known (`missing` names "user"). */
  uid: number | null;
  /**
   * The argument vector, each argument decoded as UTF-8 (bytes that are not UTF-8 read as
   * U+FFFD: see argv_base64).
   */
  argv: string[];
  /**
   * Only when an argument is not valid UTF-8: the exact bytes of every argument, base64,
   * index for index with argv (`Buffer.from(s, 'base64')`).
   */
  argv_base64?: string[];
  comm: string;
  /** Path of the executable ("" and `missing: ["exe"]` when it cannot be read). */
  exe: string;
}

export interface ExitEvent extends Base {
  event: 'exit';
  pid: number;
  /** Raw wait status, as in the seed: exit 3 is 768. */
  exit_code: number;
  user: string;
  /** Exit status, or null when killed by a signal. */
  code: number | null;
  /** Name of the killing signal, e.g. "SIGKILL", or null. */
  signal: string | null;
  /** A core dump was written. */
  core: boolean;
  comm: string;
  cmdline: string;
  /** Its program ("" and `missing: ["exe"]` when not known). */
  exe: string;
  ppid: number;
  /** The process's (real) uid, null where the user is not known. */
  uid: number | null;
  /** Lifetime from fork to exit by the kernel's clock, or null when the fork was not seen. */
  duration_ms: number | null;
  thread?: true;
  tgid?: number;
  /** What the process cost (option `cost`; process exits only). */
  cost?: ProcessCost;
}

/**
 * The events but fork, exec and exit: who the process is and what it runs, as the table knows
 * it then (since issue 18; absent on lines from older servers and the seed daemon).
 */
interface ThreadTagged extends Base {
  pid: number;
  user?: string;
  /** null where the user is not known (`missing` names "user"); after a `uid` event, the new real uid. */
  uid?: number | null;
  /** Its name (a `comm` event: the new one). */
  comm?: string;
  cmdline?: string;
  exe?: string;
  /** Set when the event is about a non-leader thread (only with `threads: true`). */
  thread?: true;
  tid?: number;
}

export interface UidEvent extends ThreadTagged {
  event: 'uid';
  ruid: number;
  euid: number;
}

export interface GidEvent extends ThreadTagged {
  event: 'gid';
  rgid: number;
  egid: number;
}

export interface SidEvent extends ThreadTagged {
  event: 'sid';
}

export interface PtraceEvent extends ThreadTagged {
  event: 'ptrace';
  /** The tracer process (0 on detach). */
  tracer_pid: number;
  tracer_tid: number;
  /** true on attach, false on detach. */
  attach: boolean;
}

export interface CommEvent extends ThreadTagged {
  event: 'comm';
  comm: string;
}

export interface CoredumpEvent extends ThreadTagged {
  event: 'coredump';
  parent_pid?: number;
}

export interface LostEvent {
  event: 'lost';
  time: string;
  /** On lines from a broadcast server, except a client's own ("source": "client"). */
  seq?: number;
  /** How many events were lost. */
  count: number;
  /**
   * "kernel": the kernel dropped them (socket overflow); "queue": this process's JS thread
   * fell too far behind the reader; "client": this client read too slowly; "nats": the NATS
   * publisher could not deliver them (server down or too slow; see createNatsPublisher);
   * "file": the file output could not write them (a full disk, a failing or slow one; in the
   * file itself, where they are missing); "journald": the journald output could not send them
   * (journald down, or too slow for its buffer; in the journal, where they are missing).
   */
  source: 'kernel' | 'queue' | 'client' | 'nats' | 'file' | 'journald';
}

/** A `lost` event: `count` events from `source` will never come (time: now unless given). */
export function lostEvent(count: number, source: LostEvent['source'], time: string = new Date().toISOString()): LostEvent {
  return { event: 'lost', time, count, source };
}

export type ProcEvent = ForkEvent | ExecEvent | ExitEvent | UidEvent | GidEvent | SidEvent | PtraceEvent | CommEvent | CoredumpEvent | LostEvent;

export type EventName = Exclude<ProcEvent['event'], 'lost'>;

/** Each event kind with its listener arguments (for typed EventEmitters). */
export interface ProcEventMap {
  fork: [ForkEvent];
  exec: [ExecEvent];
  exit: [ExitEvent];
  uid: [UidEvent];
  gid: [GidEvent];
  sid: [SidEvent];
  ptrace: [PtraceEvent];
  comm: [CommEvent];
  coredump: [CoredumpEvent];
  lost: [LostEvent];
}

/** An error with a machine-readable `code`; the base of every error this package throws. */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Kernel bit of each event kind (linux/cn_proc.h). */
export const EVENT_BITS: Readonly<Record<EventName, number>> = Object.freeze({
  fork: 0x1,
  exec: 0x2,
  uid: 0x4,
  gid: 0x40,
  sid: 0x80,
  ptrace: 0x100,
  comm: 0x200,
  coredump: 0x40000000,
  exit: 0x80000000,
});

export const EVENT_NAMES: readonly EventName[] = Object.freeze(Object.keys(EVENT_BITS) as EventName[]);

/**
 * Parses an event list ("exec,fork,exit", "all", or an array of names) into names.
 * Throws a RangeError naming the bad entry.
 */
export function parseEventList(list: string | readonly string[]): EventName[] {
  const items = (typeof list === 'string' ? list.split(',') : [...list]).map((s) => s.trim().toLowerCase());
  const names = new Set<EventName>();
  for (const item of items) {
    if (item === '') continue;
    if (item === 'all') {
      EVENT_NAMES.forEach((n) => names.add(n));
    } else if ((EVENT_NAMES as readonly string[]).includes(item)) {
      names.add(item as EventName);
    } else {
      throw new RangeError(`unknown event "${item}" (known: ${EVENT_NAMES.join(', ')}, all)`);
    }
  }
  if (names.size === 0) throw new RangeError(`empty event list (known: ${EVENT_NAMES.join(', ')}, all)`);
  return [...names];
}

/** The kernel mask of a set of event names. */
export function eventMask(names: readonly EventName[]): number {
  let mask = 0;
  for (const n of names) mask = (mask | EVENT_BITS[n]) >>> 0;
  return mask;
}

/** The NDJSON line of an event: its JSON form and "\n". */
export function toLine(ev: ProcEvent): string {
  return JSON.stringify(ev) + '\n';
}

/** Every kind of line in a stream: the event names, then "lost". */
export const KIND_NAMES: readonly (EventName | 'lost')[] = Object.freeze([...EVENT_NAMES, 'lost' as const]);
const KIND_CODE = new Map<string, number>(KIND_NAMES.map((k, i) => [k, i]));
/** Kind code of a line whose event this version does not know. */
export const OTHER_KIND = 31;
/** Kind code of a `lost` line. */
export const LOST_KIND = KIND_NAMES.indexOf('lost');

/**
 * A batch of events as NDJSON bytes: `toLine(ev)` of each event, in order (what `'batch'`
 * carries, already serialised), with what routes each line without parsing it.
 */
export interface LineBatch {
  /** The lines, each "\n"-terminated. */
  buf: Buffer;
  /** End offset (after the "\n") of each line. */
  ends: Uint32Array;
  /** Kind of each line: its index in KIND_NAMES (OTHER_KIND if unknown). */
  kinds: Uint8Array;
  /** uid of the process of each line, -1 where the event carries none. */
  uids: Int32Array;
}

/** The LineBatch of events given as objects. */
export function linesOf(batch: readonly ProcEvent[]): LineBatch {
  const n = batch.length;
  const kinds = new Uint8Array(n);
  const uids = new Int32Array(n);
  let text = '';
  for (let i = 0; i < n; i++) {
    const ev = batch[i] as ProcEvent;
    text += toLine(ev);
    kinds[i] = KIND_CODE.get(ev.event) ?? OTHER_KIND;
    const uid = (ev as { uid?: unknown }).uid;
    uids[i] = typeof uid === 'number' && Number.isInteger(uid) && uid >= 0 && uid <= 0x7fffffff ? uid : -1;
  }
  const buf = Buffer.from(text, 'utf8');
  const ends = new Uint32Array(n);
  // JSON escapes every newline inside strings: a 0x0a byte ends a line.
  let pos = 0;
  for (let i = 0; i < n; i++) {
    pos = buf.indexOf(0x0a, pos) + 1;
    ends[i] = pos;
  }
  return { buf, ends, kinds, uids };
}

/** The events of NDJSON lines (each "\n"-terminated). */
export function parseLines(buf: Buffer): ProcEvent[] {
  if (buf.length === 0) return [];
  // A raw newline only ever ends a line (JSON escapes those in strings).
  return JSON.parse(`[${buf.toString('utf8', 0, buf.length - 1).replaceAll('\n', ',')}]`) as ProcEvent[];
}
