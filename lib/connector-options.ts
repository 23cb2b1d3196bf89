// The options of a ProcConnector, and their checks: what the native reader is started with.
import { eventMask, parseEventList } from './events';
import { compileFilter, patternError, type EventFilter, type FilterKey } from './filter';
import type { NativeStartOptions } from './native';
import { boolOption, intOption } from './options';

export interface ProcConnectorOptions {
  /** Events to report: names or a comma list ("exec,fork,exit", "all"). Default fork, exec, exit. */
  events?: string | readonly string[];
  /** Report threads (non-leader tasks) too. Default false. */
  threads?: boolean;
  /** Socket receive buffer, bytes (SO_RCVBUFFORCE when privileged, else SO_RCVBUF). Default 8 MiB. */
  rcvbuf?: number;
  /** Let the kernel filter events (Linux 6.6+) when not all are wanted. Default true. */
  kernelFilter?: boolean;
  /** Events buffered between the reader thread and JS at most. Default 65536. */
  queueMax?: number;
  /** Processes remembered (for exit enrichment) at most. Default 65536. */
  tableMax?: number;
  /** Milliseconds to wait for the kernel's acknowledgement of the subscription. Default 1000. */
  ackTimeout?: number;
  /**
   * Nice value of the reader thread, applied where permitted (CAP_SYS_NICE), so that it reads
   * /proc before short-lived processes are gone. 0 leaves it alone. Default -10.
   */
  nice?: number;
  /**
   * Learn the processes already running from /proc at start, so that their exits carry
   * command, user, parent and lifetime too. Default true.
   */
  seed?: boolean;
  /**
   * Milliseconds the reader may hold events before waking JS with them (it reads and enriches
   * at once regardless): fewer, larger batches cost less per event. 0 wakes JS for every read.
   * Default 1.
   */
  batchInterval?: number;
  /**
   * Milliseconds (0-100) the reader leaves the socket alone after a read in a burst (one that
   * came within an interval of the previous read): events that arrive meanwhile wait there and
   * are read together, so a burst wakes the reader at most about once per interval. A lone
   * event is read at once and costs one wake-up. Every wake-up of the reader interrupts one of
   * the host's busy processes, which on a virtual machine costs them more than the reader's
   * own work. The price: what /proc tells of a process is gone when it has ended, so a process
   * that execs and ends within a rest has no argv, exe, cwd or cgroup (its exec says so in
   * `missing`), and with `cost: 'proc'` (or without taskstats) one that ends and is reaped
   * within a rest has no cost. 0 (the default): the reader reads as events come.
   */
  readInterval?: number;
  /**
   * Events that carry `ancestors` (the chain of parents up to init): event names, a comma
   * list, "all" or "none". Default "exec".
   */
  ancestors?: string | readonly string[];
  /** Ancestors listed at most per event (1-1024). Default 16. */
  ancestorDepth?: number;
  /** `cgroup` and `container_id` on every event (one read of /proc/PID/cgroup per exec). Default true. */
  cgroups?: boolean;
  /** `cwd`, the working directory at its process's last exec, on every event (one readlink of /proc/PID/cwd per exec). Default true. */
  cwd?: boolean;
  /**
   * `auid` (the login uid: the user who logged in, kept across `su` and `sudo`; absent when
   * the process has none, as daemons started at boot), its `login_user`, and `sessionid`
   * (the audit session; absent when none), on fork, exec and exit (reads of
   * /proc/PID/loginuid and sessionid per exec). Default true.
   */
  login?: boolean;
  /** `tty`, the controlling terminal ("pts/3"; null when none), on fork, exec and exit (one read of /proc/PID/stat per exec). Default true. */
  tty?: boolean;
  /**
   * `pidns`, `mntns` and `netns` (the namespaces' inode numbers, as `ls -l /proc/PID/ns`
   * shows them) and `nspid` (the pid inside its own pid namespace), on fork, exec and exit
   * (three readlinks and /proc/PID/status per exec, and per fork). Default false.
   */
  namespaces?: boolean;
  /**
   * Environment variables to report, by name (at most 64): `env` on fork, exec and exit, an
   * object of those the program was started with (/proc/PID/environ at exec; a variable it
   * lacks is left out). Read where permitted (root, or the process's own user); where not,
   * `env` is absent and named in `missing`. Default none.
   */
  env?: readonly string[];
  /**
   * Secrets (passwords, tokens) that must never leave in an event or a snapshot record: every
   * occurrence in any process's argv (and so in `cmdline` and `argv_base64`) shows as `*****`.
   * At most 64, each 1 to 4096 bytes. Default none.
   */
  redact?: readonly string[];
  /**
   * Patterns (globs, or regular expressions between slashes, as in `filter`), at most 64:
   * in each argument of any process (and each `NAME=value` of `env`) that matches one, what
   * follows the first `=` shows as `***` (`--db-pass=***`), or all of it when there is no
   * `=`. Default none.
   */
  redactPatterns?: readonly string[];
  /**
   * Hide the secrets command lines carry in practice: values of arguments named like one
   * (`--password=`, `--token VALUE`, `--api-key=`, ...), `-pSECRET` to the MySQL clients,
   * `Authorization:` headers, `NAME=value` assignments whose name says secret
   * (`AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, `DB_PASSWORD`, ...) and passwords in URLs
   * (`scheme://user:***@host`); in `env` values too. Default false.
   */
  redactDefaults?: boolean;
  /**
   * What each process cost, on its `exit` event (not threads'): `cost` with CPU user and
   * system time, peak RSS, bytes read and written, context switches. `true`: from the
   * kernel's taskstats exit records where permitted (CAP_NET_ADMIN), else from /proc of the
   * zombie; `'proc'`: /proc only. A field not learned is absent and named in `missing`
   * (`cost.FIELD`), never guessed. `stats().costSource` says which is used. Default false.
   */
  cost?: boolean | 'proc';
  /**
   * Follow only these processes (pids, at most 1024, each running at start()) and their
   * descendants, by fork lineage: a child forked by one followed is followed, wherever it is
   * reparented, until it exits. Nothing of the rest of the host is read from /proc, kept or
   * reported, so the cost follows the subtree's activity, not the host's. With `seed`, the
   * descendants running at start are followed too; else only those forked from then on. A
   * child forked while events were lost (a `lost` event says so) is not followed. Default:
   * the whole host.
   */
  subtree?: number | readonly number[];
  /**
   * Which events are passed on (docs/library.md, "Filters"): `{ match: {...},
   * exclude: {...} }`, checked at once (a TypeError naming the rule at fault) and run by the
   * reader before an event is serialised: one filtered out costs no JavaScript.
   * `stats().filtered` counts them. Default: every event.
   */
  filter?: EventFilter;
}

/** The options checked (a TypeError or RangeError naming the bad one), as the addon takes them (all but `events`). */
export function nativeOptions(options: ProcConnectorOptions): Omit<NativeStartOptions, 'events'> {
  return {
    threads: boolOption(options.threads, 'threads', false),
    rcvbuf: intOption(options.rcvbuf, 'rcvbuf', 8 << 20, 0),
    kernelFilter: boolOption(options.kernelFilter, 'kernelFilter', true),
    queueMax: intOption(options.queueMax, 'queueMax', 65536, 1),
    tableMax: intOption(options.tableMax, 'tableMax', 65536, 1),
    ackTimeout: intOption(options.ackTimeout, 'ackTimeout', 1000, 1),
    nice: niceValue(options.nice),
    seed: boolOption(options.seed, 'seed', true),
    batchInterval: interval(options.batchInterval, 'batchInterval', 1, 1000),
    readInterval: interval(options.readInterval, 'readInterval', 0, 100),
    ancestorEvents: ancestorMask(options.ancestors),
    ancestorDepth: intOption(options.ancestorDepth, 'ancestorDepth', 16, 1, 1024),
    cgroups: boolOption(options.cgroups, 'cgroups', true),
    cwd: boolOption(options.cwd, 'cwd', true),
    context:
      (boolOption(options.login, 'login', true) ? CONTEXT.login : 0) |
      (boolOption(options.tty, 'tty', true) ? CONTEXT.tty : 0) |
      (boolOption(options.namespaces, 'namespaces', false) ? CONTEXT.namespaces : 0),
    env: envList(options.env),
    redact: redactList(options.redact),
    redactPatterns: redactPatterns(options.redactPatterns),
    redactDefaults: boolOption(options.redactDefaults, 'redactDefaults', false),
    cost: costMode(options.cost),
    ...filterOptions(options),
  };
}

/**
 * The filter reads what an event says: a key on a field the events do not carry (its option
 * off) is refused, rather than match nothing (or, in exclude, exclude nothing).
 */
export function checkFilterFields(keys: ReadonlySet<FilterKey>, on: { login: boolean; cwd: boolean; cgroups: boolean }): void {
  if (!on.login && (keys.has('auid') || keys.has('login_user'))) throw new TypeError('filter: auid and login_user need the login option');
  if (!on.cwd && keys.has('cwd')) throw new TypeError('filter: cwd needs the cwd option');
  if (!on.cgroups && (keys.has('container') || keys.has('cgroup'))) throw new TypeError('filter: container and cgroup need the cgroups option');
}

// The filter's rules; its subtree joins the connector's own.
function filterOptions(options: ProcConnectorOptions): { filter: string[]; subtree: number[] } {
  const f = compileFilter(options.filter);
  if (f.runs.length > 0) {
    throw new TypeError("filter: subtree by exec id is for a running stream (connector.events({ filter }), a client's request line); the connector's own filter takes pids");
  }
  checkFilterFields(f.keys, { login: options.login !== false, cwd: options.cwd !== false, cgroups: options.cgroups !== false });
  const subtree = subtreeList(options.subtree);
  if (f.subtree.length > 0) subtree.push(...f.subtree.filter((p) => !subtree.includes(p)));
  if (subtree.length > 1024) throw new TypeError("subtree: at most 1024 pids, the filter's included");
  return { filter: f.rules, subtree };
}

/** The addon's context groups (ContextGroup, native/events.h). */
const CONTEXT = { login: 1, tty: 2, namespaces: 4 } as const;
/** The login group's bit in NativeStartOptions.context. */
export const CONTEXT_LOGIN = CONTEXT.login;

function envList(v: readonly string[] | undefined): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 64) throw new TypeError('env must be an array of at most 64 variable names');
  for (const x of v) {
    if (typeof x !== 'string' || !/^[^=\0]{1,256}$/.test(x)) throw new TypeError(`env: each name must be 1 to 256 characters without "=", got ${JSON.stringify(x) ?? typeof x}`);
  }
  return [...new Set(v as string[])];
}

function redactPatterns(v: readonly string[] | undefined): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 64) throw new TypeError('redactPatterns must be an array of at most 64 patterns');
  for (const p of v) {
    if (typeof p !== 'string' || p === '' || Buffer.byteLength(p) > 1024)
      throw new TypeError(`redactPatterns: each must be a pattern of 1 to 1024 bytes, got ${JSON.stringify(p) ?? typeof p}`);
    const why = patternError(p); // (the filter's engine: native/pattern.h)
    if (why !== null) throw new TypeError(`redactPatterns: ${p}: ${why}`);
  }
  return [...(v as string[])];
}

function interval(v: number | undefined, name: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v >= 0 && v <= max)) throw new RangeError(`${name} must be a number of milliseconds from 0 to ${max}, got ${String(v)}`);
  return v;
}

function niceValue(v: number | undefined): number {
  if (v === undefined) return -10;
  if (!Number.isInteger(v) || v < -20 || v > 19) throw new RangeError(`nice must be an integer from -20 to 19, got ${String(v)}`);
  return v;
}

function redactList(v: readonly string[] | undefined): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 64) throw new TypeError('redact must be an array of at most 64 strings');
  for (const x of v) {
    if (typeof x !== 'string' || x.length === 0 || Buffer.byteLength(x) > 4096) throw new TypeError('each redact entry must be a string of 1 to 4096 bytes');
  }
  return [...(v as string[])];
}

function ancestorMask(v: string | readonly string[] | undefined): number {
  if (v === undefined) return eventMask(['exec']);
  if (v === 'none' || (Array.isArray(v) && v.length === 0)) return 0;
  try {
    return eventMask(parseEventList(v));
  } catch (err) {
    throw new RangeError(`ancestors: ${(err as Error).message}, or none`);
  }
}

function costMode(v: unknown): number {
  if (v === undefined || v === false) return 0;
  if (v === true) return 1;
  if (v === 'proc') return 2;
  throw new TypeError(`cost must be true, false or 'proc', not ${JSON.stringify(v) ?? typeof v}`);
}

function subtreeList(v: number | readonly number[] | undefined): number[] {
  if (v === undefined) return [];
  const list: readonly unknown[] = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 1024)
    throw new TypeError(`subtree must be a pid or an array of 1 to 1024 pids, got ${JSON.stringify(v) ?? typeof v}`);
  const pids: number[] = [];
  for (let i = 0; i < list.length; i++) {
    const pid: unknown = list[i]; // (a hole in a sparse array is undefined: refused too)
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1 || pid > 0x3fffff)
      throw new RangeError(`subtree: each pid must be an integer from 1 to 4194303, got ${String(pid)}`);
    pids.push(pid);
  }
  return [...new Set(pids)];
}
