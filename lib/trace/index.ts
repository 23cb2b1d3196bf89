// trace(): run a command and follow every process it starts; traceProcess(): follow a process
// already running. The connector is subscribed before the command starts, so nothing it runs is
// missed; only the job's processes are kept (JobTracker), everything else is dropped on arrival.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProcConnector, type ProcConnectorOptions } from '../connector';
import { CodedError, type ProcEvent } from '../events';
import { JobTracker, type TracedProcess } from './job';
import { argvOf, summarize, type JobSummary, type Leftover } from './summary';

export { failed, type TracedExec, type TracedProcess } from './job';
export { chromeTrace, type ChromeTrace, type ChromeTraceEvent } from './chrome';
export { htmlReport } from './html';
export { formatDuration, shellLine, summaryText, type JobSummary, type Leftover, type TextOptions, type TreeNode } from './summary';

export type LeftoverPolicy = 'report' | 'wait' | 'kill';

export interface TraceOptions {
  /** The command's stdin, stdout and stderr (child_process `stdio`). Default 'inherit': the terminal's, untouched. */
  stdio?: StdioOptions;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Processes of the job still running when the command ends: `report` them (default), `wait`
   * for them to end, or `kill` them (SIGTERM, then SIGKILL after `killGraceMs`).
   */
  leftovers?: LeftoverPolicy;
  /** With `leftovers: 'kill'`: ms between SIGTERM and SIGKILL. Default 2000. */
  killGraceMs?: number;
  /** Options of the ProcConnector that reads the events (events, ancestors, seed and subtree are the trace's own; readInterval defaults to TRACE_READ_INTERVAL_MS here). */
  connector?: Omit<ProcConnectorOptions, 'events' | 'ancestors' | 'seed' | 'subtree'>;
}

export type TraceErrorCode = 'EINVAL' | 'ESPAWN' | 'ENOPROC';

export class TraceError extends CodedError<TraceErrorCode> {
  override name = 'TraceError';
}

export interface JobEvents {
  /** Each event of the job's processes, as it comes (the wire format: `toLine(ev)`). */
  event: [ProcEvent];
  /** A process joined the job. */
  process: [TracedProcess];
  /** A process of the job ended. */
  exit: [TracedProcess];
}

/** How long to wait for the kernel's word on the command's end once Node has reaped it. */
const ROOT_EXIT_WAIT_MS = 2000;

/** A running job: its events as they come, and `done`, its summary once it has ended. */
export class Job extends EventEmitter<JobEvents> {
  /** Resolves with the summary once the command (and, as asked, what it left running) has ended; rejects if it could not start. */
  readonly done: Promise<JobSummary>;
  /** The job's processes so far, in the order they joined. */
  readonly processes: readonly TracedProcess[];
  private readonly tracker: JobTracker;
  /** Who waits for the end of which process record (by index). */
  private readonly exitWaiters = new Map<number, Set<() => void>>();

  /** @internal Use trace() or traceProcess(): `run` starts the job (synchronously, up to its first await) and resolves with its summary. */
  constructor(
    readonly command: string[],
    private readonly connector: ProcConnector,
    run: (job: Job) => Promise<JobSummary>,
  ) {
    super();
    this.tracker = new JobTracker((name, ...args) => (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args));
    this.processes = this.tracker.processes;
    this.on('exit', (p) => {
      const waiting = this.exitWaiters.get(p.index);
      this.exitWaiters.delete(p.index);
      for (const wake of waiting ?? []) wake();
    });
    connector.on('batch', (batch) => {
      for (const ev of batch) this.tracker.take(ev);
    });
    this.done = run(this).finally(() => connector.stop());
  }

  /** @internal */
  track(): JobTracker {
    return this.tracker;
  }

  /**
   * @internal Resolves once the kernel's exit event of the root has been taken (or after `ms`:
   * false). `reaped`: its parent has reaped it, so the event is already on its way (the kernel
   * sends it before the parent can reap): the reader's queue is taken every 2 ms meanwhile
   * rather than at its next wake-up (the trace's batches are 50 ms apart).
   */
  async rootEnded(ms: number, reaped = false): Promise<boolean> {
    const root = this.processes[0];
    if (!root) return false;
    if (!reaped) return this.ended(root, ms);
    this.connector.flush();
    const poll = setInterval(() => this.connector.flush(), 2);
    try {
      return await this.ended(root, ms);
    } finally {
      clearInterval(poll);
    }
  }

  /** @internal Resolves once process record `p` has ended (true), or after `ms` (false). */
  ended(p: TracedProcess, ms: number): Promise<boolean> {
    if (p.end !== null) return Promise.resolve(true);
    return new Promise((resolve) => {
      let waiting = this.exitWaiters.get(p.index);
      if (!waiting) this.exitWaiters.set(p.index, (waiting = new Set()));
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        waiting.delete(wake);
        resolve(false);
      }, ms);
      waiting.add(wake);
    });
  }
}

/**
 * The root's working directory as the kernel names it (symbolic links resolved): where trace()
 * starts the command, or where traceProcess()'s process is when tracing begins; null with the
 * connector's `cwd` off, or where it cannot be read.
 */
function rootDir(o: TraceOptions, pid: number | null): string | null {
  if (o.connector?.cwd === false) return null;
  try {
    return pid === null ? fs.realpathSync(o.cwd ?? '.') : fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** A process's name, state letter and parent from /proc/PID/stat; null if there is no such process. */
function procStat(pid: number): { comm: string; state: string; ppid: number } | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // The name may hold anything, ')' included: the fields after it count from the last ')'.
  const close = stat.lastIndexOf(')');
  const [state = '', ppid = '0'] = stat.slice(close + 2).split(' ', 2);
  return { comm: stat.slice(stat.indexOf('(') + 1, close), state, ppid: Number(ppid) };
}

/** Whether a process is alive, and not a zombie (a zombie has ended; its exit event is on its way). */
function running(pid: number): boolean {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z';
}

/** What becomes of the job's processes still running when the command has ended. */
async function settleLeftovers(job: Job, policy: LeftoverPolicy, graceMs: number, endedAt: number): Promise<Leftover[]> {
  const tracker = job.track();
  const left = tracker.running().filter((p) => p.index !== 0 && running(p.pid));
  const out: Leftover[] = left.map((p) => ({ pid: p.pid, ppid: p.ppid, argv: argvOf(p), age_ms: Math.max(0, endedAt - Date.parse(p.start)), fate: 'running' }));
  if (policy === 'report' || left.length === 0) return out;
  if (policy === 'kill') {
    for (const p of left) signal(p.pid, 'SIGTERM');
    const ends = await Promise.all(left.map((p) => job.ended(p, graceMs)));
    left.forEach((p, i) => {
      if (!ends[i]) signal(p.pid, 'SIGKILL');
    });
  }
  // Wait for every one to end (after SIGKILL, promptly); a process whose exit event never
  // comes (lost) is looked at in /proc.
  for (const [i, p] of left.entries()) {
    while (!(await job.ended(p, 1000)) && running(p.pid));
    const l = out[i] as Leftover;
    l.fate = policy === 'kill' && p.signal !== null ? 'killed' : 'exited';
    l.argv = argvOf(p); // (it may have exec'd since the command ended)
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone already */
  }
}

/** 128 + the signal's number, as a shell reports a command killed by it. */
export function statusOf(code: number | null, sig: string | null): number {
  if (code !== null) return code;
  const n = sig ? os.constants.signals[sig as NodeJS.Signals] : undefined;
  return 128 + (n ?? 0);
}

/**
 * The rest of a trace's reader after each read in a burst (the connector's `readInterval`), ms. Each
 * wake-up of the reader interrupts one of the job's processes (BENCHMARKS.md); at 1 ms a make
 * -j2 wakes it about a fifth less often, and a shell loop's tiny processes keep their argv as
 * often as at 0 (at 2 ms, 6 in 10 of them: a process that execs and ends within a rest has none).
 */
export const TRACE_READ_INTERVAL_MS = 1;

function connectorFor(o: TraceOptions, root: number): ProcConnector {
  // What a trace does not use is not read: no ancestors (the tree is the job's own), no cgroups.
  // Only the root's subtree is followed: no /proc read for the rest of the host, however busy.
  // What each process cost comes with its exit (taskstats where permitted, else /proc).
  // Batches of 50 ms: nobody waits on a trace's events but its own end, which is flushed (a
  // wake-up of JS per event would cost more than everything else the trace does). In a burst,
  // the reader rests TRACE_READ_INTERVAL_MS after each read unless told otherwise.
  return new ProcConnector({
    cgroups: false,
    cost: true,
    batchInterval: 50,
    ...o.connector,
    readInterval: o.connector?.readInterval ?? TRACE_READ_INTERVAL_MS,
    events: 'fork,exec,exit',
    ancestors: 'none',
    seed: false,
    subtree: root,
  });
}

function checkPolicy(o: TraceOptions): { policy: LeftoverPolicy; grace: number } {
  const policy = o.leftovers ?? 'report';
  if (policy !== 'report' && policy !== 'wait' && policy !== 'kill') throw new TraceError('EINVAL', `leftovers must be "report", "wait" or "kill", got ${String(policy)}`);
  const grace = o.killGraceMs ?? 2000;
  if (!Number.isInteger(grace) || grace < 0) throw new TraceError('EINVAL', `killGraceMs must be a whole number of ms, got ${String(grace)}`);
  return { policy, grace };
}

/**
 * Runs `command` with `args` and follows every process it starts, by fork lineage (double-forked
 * daemons included). The connector is subscribed first: throws a ProcConnectorError when the
 * kernel refuses (root or CAP_NET_ADMIN, or a kernel that admits unprivileged subscribers).
 */
export function trace(command: string, args: readonly string[] = [], options: TraceOptions = {}): Job {
  if (typeof command !== 'string' || command === '') throw new TraceError('EINVAL', 'trace() needs a command');
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new TraceError('EINVAL', 'trace() args must be an array of strings');
  const { policy, grace } = checkPolicy(options);
  // This process is the subtree's root: the command's fork is seen before its pid is known here.
  const connector = connectorFor(options, process.pid).start();
  const argv = [command, ...args];
  return new Job(argv, connector, (job) => {
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: options.stdio ?? 'inherit', cwd: options.cwd, env: options.env });
    } catch (err) {
      return Promise.reject(new TraceError('ESPAWN', `cannot run ${command}: ${(err as Error).message}`, { cause: err }));
    }
    if (child.pid !== undefined) job.track().root(child.pid, process.pid, new Date().toISOString(), path.basename(command), argv, true, rootDir(options, null));
    return new Promise<JobSummary>((resolve, reject) => {
      child.once('error', (err) => {
        if (child.pid !== undefined) return; // it runs: its exit comes
        reject(new TraceError('ESPAWN', `cannot run ${command}: ${err.message}`, { cause: err }));
      });
      child.once('exit', (code, sig) => {
        const endedAt = Date.now();
        // Node reaped it: the kernel's exit event (with its children's before it) is on its way.
        job
          .rootEnded(ROOT_EXIT_WAIT_MS, true)
          .then(() => settleLeftovers(job, policy, grace, endedAt))
          .then((leftovers) => {
            const tracker = job.track();
            const end = new Date(endedAt).toISOString();
            resolve(summarize({ command: argv, processes: tracker.processes, code, signal: sig, status: statusOf(code, sig), end, lost: tracker.lost, leftovers }));
          }, reject);
      });
    });
  });
}

/** Follows a process already running and its descendants from now on, until it ends. */
export function traceProcess(pid: number, options: TraceOptions = {}): Job {
  if (!Number.isInteger(pid) || pid <= 0) throw new TraceError('EINVAL', `traceProcess(pid) needs a pid, got ${String(pid)}`);
  const { policy, grace } = checkPolicy(options);
  const stat = procStat(pid);
  let argv: string[];
  try {
    if (stat === null) throw new Error('gone');
    argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    throw new TraceError('ENOPROC', `no process ${pid}`);
  }
  const { comm, ppid } = stat;
  let connector: ProcConnector;
  try {
    connector = connectorFor(options, pid).start();
  } catch (err) {
    // (Gone since, or the id of a thread rather than a process.)
    if ((err as { code?: string }).code === 'ESRCH') throw new TraceError('ENOPROC', `no process ${pid}`, { cause: err });
    throw err;
  }
  return new Job(argv, connector, async (job) => {
    const root = job.track().root(pid, ppid, new Date().toISOString(), comm, argv, false, rootDir(options, pid));
    while (!(await job.rootEnded(1000)) && running(pid));
    const endedAt = root.end ? Date.parse(root.end) : Date.now();
    const leftovers = await settleLeftovers(job, policy, grace, endedAt);
    const tracker = job.track();
    const end = new Date(endedAt).toISOString();
    return summarize({
      command: argv,
      processes: tracker.processes,
      code: root.code,
      signal: root.signal,
      status: statusOf(root.code, root.signal),
      end,
      lost: tracker.lost,
      leftovers,
    });
  });
}
