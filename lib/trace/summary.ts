// A job's summary: the tree of its processes, totals, the slowest, what was left running; and
// the same as text a person reads at a glance. Pure: records in, a summary or text out.
import { failed, type TracedExec, type TracedProcess } from './job';

/** A process still running when the command ended. */
export interface Leftover {
  pid: number;
  ppid: number;
  argv: string[];
  /** How long it had run when the command ended, ms. */
  age_ms: number;
  /** What became of it: still running when the trace ended (`report`), exited on its own (`wait`), or killed (`kill`). */
  fate: 'running' | 'exited' | 'killed';
}

/** A process in the summary's tree. */
export interface TreeNode extends Omit<TracedProcess, 'children' | 'childIndexes' | 'index'> {
  /** Its argv as last run (its last exec, else its parent's program). */
  argv: string[];
  /** The working directory of that run (see TracedExec.cwd). */
  cwd: string | null;
  failed: boolean;
  children: TreeNode[];
}

export interface JobSummary {
  /** The command as given. */
  command: string[];
  pid: number;
  /** The command's own exit status and signal. */
  code: number | null;
  signal: string | null;
  /** What a shell would report: the exit status, or 128 + the signal's number. */
  status: number;
  start: string;
  end: string;
  duration_ms: number;
  /** Processes the job ran (the command's included). */
  processes: number;
  /** CPU time of all of them, user and system, ms (of those whose cost is known: `cost_known`). */
  cpu_ms: number;
  /** Processes whose CPU time is known. */
  cost_known: number;
  /** Of those, ended with a non-zero status or a signal. */
  failed: number;
  /** Events lost while the job ran: the tree may lack processes then (`complete` false). */
  lost: number;
  complete: boolean;
  leftovers: Leftover[];
  /** The slowest processes, longest first (at most 5). */
  slowest: { pid: number; argv: string[]; duration_ms: number }[];
  tree: TreeNode;
}

/** The argv a process last ran. */
export function argvOf(p: { execs: TracedExec[]; comm: string }): string[] {
  const last = p.execs.at(-1);
  return last && last.argv.length > 0 ? last.argv : p.comm ? [`[${p.comm}]`] : [];
}

/** The tree under `processes[0]` (the root), built from the records' child indexes. */
export function treeOf(processes: readonly TracedProcess[], at = 0): TreeNode {
  const p = processes[at] as TracedProcess;
  const node: TreeNode & { childIndexes?: number[]; index?: number } = {
    ...p,
    argv: argvOf(p),
    cwd: p.execs.at(-1)?.cwd ?? null,
    failed: failed(p),
    children: p.childIndexes.map((i) => treeOf(processes, i)),
  };
  delete node.childIndexes;
  delete node.index;
  return node;
}

export interface SummaryInput {
  command: string[];
  processes: readonly TracedProcess[];
  code: number | null;
  signal: string | null;
  status: number;
  end: string;
  lost: number;
  leftovers: Leftover[];
}

export function summarize(o: SummaryInput): JobSummary {
  const root = o.processes[0] as TracedProcess;
  const slowest = o.processes
    .filter((p) => p.duration_ms !== null)
    .sort((a, b) => (b.duration_ms as number) - (a.duration_ms as number))
    .slice(0, 5)
    .map((p) => ({ pid: p.pid, argv: argvOf(p), duration_ms: p.duration_ms as number }));
  const known = o.processes.filter((p) => p.cost?.user_ms !== undefined && p.cost?.system_ms !== undefined);
  return {
    command: o.command,
    pid: root.pid,
    code: o.code,
    signal: o.signal,
    status: o.status,
    start: root.start,
    end: o.end,
    duration_ms: Date.parse(o.end) - Date.parse(root.start),
    processes: o.processes.length,
    cpu_ms: Math.round(known.reduce((n, p) => n + cpuOf(p), 0)),
    cost_known: known.length,
    failed: o.processes.filter(failed).length,
    lost: o.lost,
    complete: o.lost === 0,
    leftovers: o.leftovers,
    slowest,
    tree: treeOf(o.processes),
  };
}

/** CPU time of a process, user and system, ms; null when unknown. */
export function cpuOf(p: { cost: { user_ms?: number; system_ms?: number } | null }): number {
  return (p.cost?.user_ms ?? 0) + (p.cost?.system_ms ?? 0);
}

function cpuText(p: { cost: { user_ms?: number; system_ms?: number } | null; end: string | null }): string {
  if (p.end === null) return '';
  return p.cost && p.cost.user_ms !== undefined && p.cost.system_ms !== undefined ? `cpu ${formatDuration(cpuOf(p))}` : 'cpu ?';
}

/** A duration as people read it: 850 ms, 1.23 s, 2 min 5 s. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return 'running';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** How a process ended, in a word or two. */
export function outcome(p: { end: string | null; code: number | null; signal: string | null; core: boolean }): string {
  if (p.end === null) return 'running';
  if (p.signal) return `${p.signal}${p.core ? ' (core)' : ''}`;
  return `exit ${p.code ?? '?'}`;
}

/**
 * An argv as one line a shell would take back (arguments with spaces or quotes quoted). A lone
 * `[comm]`, what argvOf() gives for a process whose argv could not be read, is shown as it is,
 * as ps shows one.
 */
export function shellLine(argv: readonly string[]): string {
  if (argv.length === 1 && /^\[[\w@%+=:,./ -]*\]$/.test(argv[0] as string)) return argv[0] as string;
  return argv.map((a) => (a === '' ? "''" : /[^\w@%+=:,./-]/.test(a) ? `'${a.replace(/'/g, `'\\''`)}'` : a)).join(' ');
}

export interface TextOptions {
  /** Columns to fit each line in (argv shortened). Default 100. */
  width?: number;
  /** ANSI red for failed processes. */
  color?: boolean;
}

/** The summary as text: a headline, the tree (one line per process), the slowest, what was left running. */
export function summaryText(s: JobSummary, o: TextOptions = {}): string {
  const width = Math.max(40, o.width ?? 100);
  const red = (t: string) => (o.color ? `\x1b[31m${t}\x1b[0m` : t);
  const lines: string[] = [];
  const head =
    `trace: ${shellLine(s.command)}: ${outcome({ end: s.end, code: s.code, signal: s.signal, core: false })} after ${formatDuration(s.duration_ms)}; ` +
    `${s.processes} process${s.processes === 1 ? '' : 'es'}, ${s.failed} failed, ${s.leftovers.length} left running, ${s.lost} events lost; ` +
    `CPU ${formatDuration(s.cpu_ms)}${s.cost_known < s.processes - s.leftovers.length ? ` (known for ${s.cost_known})` : ''}`;
  lines.push(head);
  if (!s.complete) lines.push(red(`trace: ${s.lost} events were lost while the job ran (dropped by the kernel or the reader): this tree may be incomplete`));
  const walk = (n: TreeNode, depth: number) => {
    const left = `${formatDuration(n.duration_ms).padStart(10)}  ${cpuText(n).padEnd(14)}${outcome(n).padEnd(12)} ${String(n.pid).padStart(7)} ${'  '.repeat(depth)}`;
    let cmd = shellLine(n.argv);
    const room = width - left.length;
    if (cmd.length > room) cmd = `${cmd.slice(0, Math.max(1, room - 1))}…`;
    const line = left + cmd;
    lines.push(n.failed ? red(line) : line);
    for (const c of n.children) walk(c, depth + 1);
  };
  walk(s.tree, 0);
  if (s.slowest.length > 1) {
    lines.push('slowest:');
    for (const p of s.slowest) {
      const left = `${formatDuration(p.duration_ms).padStart(10)}  ${String(p.pid).padStart(7)} `;
      const cmd = shellLine(p.argv);
      lines.push(left + (cmd.length > width - left.length ? `${cmd.slice(0, width - left.length - 1)}…` : cmd));
    }
  }
  if (s.leftovers.length > 0) {
    lines.push(`left running when the command ended (${s.leftovers.length}):`);
    for (const l of s.leftovers) lines.push(`${String(l.pid).padStart(17)}  ${formatDuration(l.age_ms)} old, ${l.fate}: ${shellLine(l.argv)}`.slice(0, width));
  }
  return `${lines.join('\n')}\n`;
}
