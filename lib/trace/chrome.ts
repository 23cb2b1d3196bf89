// A job as Chrome trace events (the JSON that Perfetto and chrome://tracing open): one lane
// per process, in tree order and named with its place in the tree; one slice per program it
// ran (fork to first exec, each exec to the next, the last to its exit), argv and exit status
// in each slice's args. Pure: a summary in, an object out.
import { outcome, shellLine, type JobSummary, type TreeNode } from './summary';

/** One trace event (the fields this format uses). */
export interface ChromeTraceEvent {
  name: string;
  ph: 'X' | 'M' | 'i';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  s?: 't';
  cat?: string;
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: 'ms';
  otherData: Record<string, unknown>;
}

/** The job as one trace: every lane under one "process" (the job), a lane (tid) per process of it. */
export function chromeTrace(s: JobSummary): ChromeTrace {
  const t0 = Date.parse(s.start);
  const end = Date.parse(s.end);
  const us = (iso: string) => Math.max(0, Math.round((Date.parse(iso) - t0) * 1000));
  const JOB = 1;
  const ev: ChromeTraceEvent[] = [{ name: 'process_name', ph: 'M', pid: JOB, tid: 0, args: { name: `trace: ${shellLine(s.command)}` } }];
  let lane = 0;
  const walk = (n: TreeNode, depth: number) => {
    const tid = ++lane;
    ev.push({ name: 'thread_name', ph: 'M', pid: JOB, tid, args: { name: `${'  '.repeat(depth)}${n.pid} ${n.argv[0] ?? n.comm}` } });
    ev.push({ name: 'thread_sort_index', ph: 'M', pid: JOB, tid, args: { sort_index: tid } });
    const stop = n.end !== null ? us(n.end) : Math.max(us(n.start), Math.round((end - t0) * 1000));
    // Its programs: what it ran from its fork (its parent's, until its first exec), then each exec.
    const runs = n.execs.length > 0 ? n.execs : [{ argv: n.argv, time: n.start, exe: null, cwd: n.cwd, exec_id: n.exec_id, missing: [] }];
    runs.forEach((r, i) => {
      const from = i === 0 ? us(n.start) : us(r.time);
      const next = runs[i + 1];
      const to = next ? us(next.time) : stop;
      ev.push({
        name: shellLine(r.argv.length > 0 ? r.argv : [`[${n.comm}]`]).slice(0, 120),
        cat: 'process',
        ph: 'X',
        pid: JOB,
        tid,
        ts: from,
        dur: Math.max(1, to - from),
        args: {
          pid: n.pid,
          ppid: n.ppid,
          argv: r.argv,
          exe: r.exe,
          cwd: r.cwd,
          exec_id: r.exec_id,
          ...(next ? {} : { status: outcome(n), code: n.code, signal: n.signal, duration_ms: n.duration_ms, ...(n.cost ? { cost: n.cost } : {}) }),
          ...(r.missing.length > 0 ? { missing: r.missing } : {}),
        },
      });
    });
    if (n.end !== null && n.failed) ev.push({ name: `failed: ${outcome(n)}`, cat: 'exit', ph: 'i', s: 't', pid: JOB, tid, ts: stop });
    for (const c of n.children) walk(c, depth + 1);
  };
  walk(s.tree, 0);
  return {
    traceEvents: ev,
    displayTimeUnit: 'ms',
    otherData: { command: s.command, status: s.status, processes: s.processes, failed: s.failed, lost: s.lost, complete: s.complete, leftovers: s.leftovers.length },
  };
}
