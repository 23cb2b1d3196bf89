// What one job ran: its processes followed by fork lineage from a root, each with every
// program it ran and how it ended. Fed events (pure: no kernel, no clock of its own), so that
// the lineage rules are tested directly; trace.ts feeds it from a ProcConnector.
import type { ExecEvent, ExitEvent, ForkEvent, ProcEvent, ProcessCost } from '../events';

/** One program a process ran (each exec). */
export interface TracedExec {
  exec_id: string | null;
  /** Exact argv; empty (with 'argv' in `missing`) when the process was gone before it could be read. */
  argv: string[];
  exe: string | null;
  /**
   * The working directory at that exec (a forked child's: its parent's at its exec); null
   * where it could not be read (then 'cwd' is in `missing`) or the connector's `cwd` is off.
   */
  cwd: string | null;
  time: string;
  missing: string[];
  /** The parent's program, which a forked child runs until its first exec (replaced by it). */
  inherited?: true;
}

/** One process of the job, from its fork (or from when the job began, for the root of traceProcess) to its exit. */
export interface TracedProcess {
  pid: number;
  ppid: number;
  /** The run it started as (its fork), then one per exec. */
  exec_id: string | null;
  /** Every program it ran, in order. */
  execs: TracedExec[];
  comm: string;
  user: string | null;
  uid: number | null;
  /** Fork time (kernel clock, RFC 3339); the root of traceProcess: when tracing began. */
  start: string;
  /** Exit time; null while it runs. */
  end: string | null;
  /** Fork to exit, ms (the kernel's own figure where it knows the fork); null while it runs. */
  duration_ms: number | null;
  /** Exit status; null when killed by a signal or still running. */
  code: number | null;
  signal: string | null;
  core: boolean;
  /**
   * What it cost (CPU, peak RSS, I/O, context switches: the kernel's taskstats where
   * permitted, else /proc of the zombie); null while it runs or when its exit was not seen.
   * A field that could not be learned is absent and named in `missing`.
   */
  cost: ProcessCost | null;
  /** What could not be learned of it at its exit (e.g. `cost.max_rss_kb`). */
  missing: string[];
  /** Pids of its children in the job, in fork order (each a record of its own). */
  children: number[];
  /** Index of this record in the job's `processes`. */
  index: number;
  /** Indexes of its children's records (pids can be reused within a job). */
  childIndexes: number[];
}

/** The events a job emits: its own processes' events, as they come. */
export interface JobTrackerEvents {
  event: [ProcEvent];
  /** A process joined the job (its fork was seen). */
  process: [TracedProcess];
  /** A process of the job ended. */
  exit: [TracedProcess];
}

/** Whether a process failed: a non-zero exit status, or killed by a signal. */
export function failed(p: TracedProcess): boolean {
  return p.end !== null && (p.signal !== null || (p.code !== null && p.code !== 0));
}

/**
 * Follows a job by fork lineage: a fork whose parent is in the job brings its child in; an
 * exec or exit of a process in the job is recorded; everything else is ignored at the cost of
 * one map lookup. Threads are not processes (their forks and exits are skipped). A process
 * that double-forks stays in the job (its child joined at the fork, whoever reaps it later).
 */
export class JobTracker {
  /** Every process the job ran, in the order they joined. */
  readonly processes: TracedProcess[] = [];
  /** Events of the job's processes, counted. */
  events = 0;
  /** Events the kernel or the reader dropped while the job ran (the tree may be incomplete). */
  lost = 0;
  /** The job's processes still running, by pid. */
  private readonly alive = new Map<number, TracedProcess>();
  /** The root, until its own fork event (if it comes: trace() starts it) has set its start. */
  private rootAwaitingFork: TracedProcess | null = null;

  constructor(private readonly emit: <K extends keyof JobTrackerEvents>(name: K, ...args: JobTrackerEvents[K]) => void = () => {}) {}

  /**
   * Starts the job at `pid`, whose parent `ppid` is not in the job. `start` is when it began as
   * far as the caller knows; with `forkToCome`, its own fork event (the caller just started it)
   * sets its start and run id when it comes. `argv`: what it was asked to run, until its exec
   * is seen; `cwd`: where it was started, as far as the caller knows.
   */
  root(pid: number, ppid: number, start: string, comm: string, argv: string[], forkToCome: boolean, cwd: string | null = null): TracedProcess {
    const p = this.add(pid, ppid, start, null, comm, null, null);
    if (argv.length > 0) p.execs.push({ exec_id: null, argv, exe: null, cwd, time: start, missing: [], inherited: true });
    if (forkToCome) this.rootAwaitingFork = p;
    return p;
  }

  /** Whether `pid` is a running process of the job. */
  has(pid: number): boolean {
    return this.alive.has(pid);
  }

  /** The job's processes still running. */
  running(): TracedProcess[] {
    return [...this.alive.values()];
  }

  /** Takes one event of the host; true when it was the job's. */
  take(ev: ProcEvent): boolean {
    switch (ev.event) {
      case 'fork':
        return this.fork(ev);
      case 'exec':
        return this.exec(ev);
      case 'exit':
        return this.exit(ev);
      case 'lost':
        // Not the job's own, but the job may have lost events with it.
        if (ev.source === 'kernel' || ev.source === 'queue') this.lost += ev.count;
        return false;
      default:
        return false;
    }
  }

  private fork(ev: ForkEvent): boolean {
    if (ev.thread) return false;
    const root = this.rootAwaitingFork;
    if (root && ev.child_pid === root.pid && ev.parent_pid === root.ppid) {
      this.rootAwaitingFork = null;
      root.start = ev.time;
      root.exec_id = ev.exec_id ?? null;
      root.user = ev.user;
      root.uid = ev.uid;
      this.seen(ev);
      return true;
    }
    if (!this.alive.has(ev.parent_pid)) return false;
    const parent = this.alive.get(ev.parent_pid) as TracedProcess;
    const p = this.add(ev.child_pid, ev.parent_pid, ev.time, ev.exec_id ?? null, ev.comm, ev.user, ev.uid);
    // Until it execs, a child runs its parent's program.
    const last = parent.execs.at(-1);
    if (last) p.execs.push({ ...last, missing: [...last.missing], inherited: true });
    parent.children.push(p.pid);
    parent.childIndexes.push(p.index);
    this.seen(ev);
    this.emit('process', p);
    return true;
  }

  private exec(ev: ExecEvent): boolean {
    const p = this.alive.get(ev.pid);
    if (!p) return false;
    // A fork's copy of its parent's program is replaced by its first exec.
    if (p.execs.length === 1 && p.execs[0]?.inherited) p.execs.length = 0;
    p.execs.push({ exec_id: ev.exec_id ?? null, argv: ev.argv, exe: ev.exe || null, cwd: ev.cwd ?? null, time: ev.time, missing: [...(ev.missing ?? [])] });
    p.exec_id = ev.exec_id ?? p.exec_id;
    // The name from before the exec is not this program's: unknown stays unknown (as in the native table).
    p.comm = ev.comm;
    if (ev.user) p.user = ev.user;
    if (ev.uid !== null) p.uid = ev.uid;
    this.seen(ev);
    return true;
  }

  private exit(ev: ExitEvent): boolean {
    if ((ev as { thread?: true }).thread) return false;
    const p = this.alive.get(ev.pid);
    if (!p) return false;
    this.alive.delete(ev.pid);
    p.end = ev.time;
    p.duration_ms = ev.duration_ms ?? Date.parse(ev.time) - Date.parse(p.start);
    p.code = ev.code;
    p.signal = ev.signal;
    p.core = ev.core;
    p.cost = ev.cost ?? null;
    p.missing = (ev.missing ?? []).filter((m) => m.startsWith('cost.'));
    if (ev.comm) p.comm = ev.comm;
    this.seen(ev);
    this.emit('exit', p);
    return true;
  }

  private seen(ev: ProcEvent): void {
    this.events++;
    this.emit('event', ev);
  }

  private add(pid: number, ppid: number, start: string, execId: string | null, comm: string, user: string | null, uid: number | null): TracedProcess {
    const p: TracedProcess = {
      pid,
      ppid,
      exec_id: execId,
      execs: [],
      comm,
      user,
      uid,
      start,
      end: null,
      duration_ms: null,
      code: null,
      signal: null,
      core: false,
      cost: null,
      missing: [],
      children: [],
      index: this.processes.length,
      childIndexes: [],
    };
    this.processes.push(p);
    this.alive.set(pid, p);
    return p;
  }
}
