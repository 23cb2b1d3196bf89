// `procMonitor trace [options] -- COMMAND [ARGS...]`: runs a command, follows every process it
// starts, prints the tree on stderr and exits with the command's own status.
import * as fs from 'node:fs';
import { toLine } from '../events';
import { chromeTrace, htmlReport, summaryText, trace, TRACE_READ_INTERVAL_MS, type JobSummary, type LeftoverPolicy, type TraceOptions } from '../trace';
import { parseFlags, splitCommand, UsageError, wholeNumber, type FlagSpec } from './args';
import { useColor } from './direct';

const NAME = 'procMonitor trace';

export const TRACE_USAGE = `Usage: procMonitor trace [options] [--] COMMAND [ARGS...]

Runs COMMAND with the terminal's stdin, stdout and stderr, follows every process it starts
(by fork lineage: double-forked daemons stay in the job) and exits with its exit status
(128 + the signal's number when it was killed). Needs what the connector needs: root or
CAP_NET_ADMIN, or a kernel that admits unprivileged subscribers.

Options:
      --leftovers P      what to do with the job's processes still running when COMMAND
                         ends: report (default), wait (for them to end), kill (SIGTERM,
                         then SIGKILL after --kill-grace)
      --kill-grace MS    ms between SIGTERM and SIGKILL with --leftovers kill, 0-3600000
                         (default 2000)
      --ndjson FILE      write every event of the job to FILE (NDJSON, the wire format)
      --json FILE        write the summary to FILE as one JSON document (the tree, a record
                         per process, the leftovers)
      --chrome-trace FILE
                         write the job to FILE as Chrome trace events (open it in Perfetto
                         or chrome://tracing): a lane per process, nested by the tree
      --html FILE        write a self-contained HTML report to FILE: a zoomable timeline, the
                         tree with search, a process's details on click
      --read-interval MS ms (0-100, fractions allowed) the reader rests after a read of
                         the kernel's events in a burst: a busy job wakes it about once per
                         interval at most. Each wake-up interrupts one of the job's
                         processes; a process that execs and ends within a rest has no argv.
                         0: read as events come (default ${TRACE_READ_INTERVAL_MS})
  -q, --quiet            no summary on stderr
  -h, --help             this text`;

export interface TraceArgs {
  command: string[];
  leftovers: LeftoverPolicy;
  killGraceMs: number;
  /** undefined: the trace's default, TRACE_READ_INTERVAL_MS. */
  readInterval: number | undefined;
  ndjson: string | null;
  json: string | null;
  chrome: string | null;
  html: string | null;
  quiet: boolean;
}

const TRACE_FLAGS: FlagSpec = {
  string: ['leftovers', 'kill-grace', 'read-interval', 'ndjson', 'json', 'chrome-trace', 'html'],
  boolean: ['quiet', 'help'],
  short: { q: 'quiet', h: 'help' },
};

/** Parses `trace`'s arguments: options up to `--` or the first argument that is not one; the rest is the command. */
export function parseTraceArgs(argv: readonly string[]): TraceArgs | 'help' {
  const { options, command } = splitCommand(argv, TRACE_FLAGS);
  const flags = parseFlags(options, TRACE_FLAGS);
  if (flags.on('help')) return 'help';
  const leftovers = flags.str('leftovers') ?? 'report';
  if (leftovers !== 'report' && leftovers !== 'wait' && leftovers !== 'kill') throw new UsageError(`--leftovers must be report, wait or kill, got "${leftovers}"`);
  const grace = flags.str('kill-grace');
  const rest = flags.str('read-interval');
  const o: TraceArgs = {
    command,
    leftovers,
    killGraceMs: grace === undefined ? 2000 : wholeNumber(grace, 'kill-grace', 0, 3600000),
    readInterval: rest === undefined ? undefined : wholeNumber(rest, 'read-interval', 0, 100, { fractions: true }),
    ndjson: flags.str('ndjson') ?? null,
    json: flags.str('json') ?? null,
    chrome: flags.str('chrome-trace') ?? null,
    html: flags.str('html') ?? null,
    quiet: flags.on('quiet'),
  };
  if (command.length === 0) throw new UsageError('give the command to trace: procMonitor trace [options] -- COMMAND [ARGS...]');
  return o;
}

/** Opens an output file at once, so that a bad path is an error before the command runs. */
function openOut(file: string): number {
  try {
    return fs.openSync(file, 'w', 0o644);
  } catch (err) {
    throw new Error(`cannot write ${file}: ${(err as Error).message}`);
  }
}

export async function traceMain(argv: readonly string[]): Promise<number> {
  let o: TraceArgs | 'help';
  let ndjson: fs.WriteStream | null = null;
  let jsonFd: number | null = null;
  let chromeFd: number | null = null;
  let htmlFd: number | null = null;
  try {
    o = parseTraceArgs(argv);
    if (o === 'help') {
      process.stdout.write(`${TRACE_USAGE}\n`);
      return 0;
    }
    if (o.ndjson) ndjson = fs.createWriteStream('', { fd: openOut(o.ndjson) });
    if (o.json) jsonFd = openOut(o.json);
    if (o.chrome) chromeFd = openOut(o.chrome);
    if (o.html) htmlFd = openOut(o.html);
  } catch (err) {
    process.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    return 2;
  }
  const options: TraceOptions = { leftovers: o.leftovers, killGraceMs: o.killGraceMs, connector: { readInterval: o.readInterval } };
  const [command, ...args] = o.command as [string, ...string[]];
  let summary: JobSummary;
  // The terminal's ^C and ^\ reach the command itself (same process group): the tracer waits
  // for it to end; a SIGTERM or SIGHUP sent to the tracer alone is passed on to it.
  const ignore = () => {};
  const passOn: Partial<Record<NodeJS.Signals, () => void>> = {};
  try {
    const job = trace(command, args, options);
    if (ndjson) {
      const out = ndjson;
      job.on('event', (ev) => out.write(toLine(ev)));
    }
    process.on('SIGINT', ignore).on('SIGQUIT', ignore);
    for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
      const fn = () => job.processes[0] && process.kill(job.processes[0].pid, sig);
      passOn[sig] = fn;
      process.on(sig, fn);
    }
    summary = await job.done;
  } catch (err) {
    process.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    // As a shell says it: 127 for a command not found, 126 for one that cannot be run.
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return cause === 'ENOENT' ? 127 : cause === 'EACCES' ? 126 : 1;
  } finally {
    process.off('SIGINT', ignore).off('SIGQUIT', ignore);
    for (const [sig, fn] of Object.entries(passOn)) process.off(sig, fn);
  }
  const events = ndjson;
  if (events) await new Promise<void>((resolve) => events.end(resolve));
  for (const [fd, text] of [
    [jsonFd, () => JSON.stringify(summary, null, 2)],
    [chromeFd, () => JSON.stringify(chromeTrace(summary))],
    [htmlFd, () => htmlReport(summary)],
  ] as const) {
    if (fd === null) continue;
    fs.writeSync(fd, `${text()}\n`);
    fs.closeSync(fd);
  }
  if (!o.quiet) process.stderr.write(summaryText(summary, { width: process.stderr.columns || 100, color: useColor(process.stderr.isTTY === true) }));
  return summary.status;
}
