/**
 * Where the daemon's own lines go: stderr, and the log outputs (--syslog, --journald). Under
 * systemd, when stderr is the journal's stream (JOURNAL_STREAM names it), each line starts
 * with its priority as `<N>` (sd-daemon(3)), so that journald files errors as errors.
 */
import * as fs from 'node:fs';
import { SEVERITIES, type Severity } from '../outputs/syslog';
import { NAME } from './daemon-args';

/** A log output: syslog's sender, the journald output. */
export interface LogSink {
  log(line: string, level: Severity): void;
}

/** Whether `fd` is the stream JOURNAL_STREAM ("DEVICE:INODE", set by systemd) names. */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] as string) && st.ino === BigInt(m[2] as string);
  } catch {
    return false;
  }
}

export class DaemonLog {
  private readonly sinks: LogSink[] = [];
  private readonly prefixed: boolean;

  constructor(
    private readonly quiet: boolean,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.prefixed = isJournalStream(2, env);
  }

  /** Sends every line from now on to `sink` too. */
  add(sink: LogSink): void {
    this.sinks.push(sink);
  }

  /** A line about what the daemon does (not on stderr with --quiet). */
  readonly info = (line: string): void => this.say(line, 'info', !this.quiet);
  /** A warning about the daemon's own safety (always on stderr). */
  readonly warn = (line: string): void => this.say(line, 'warning', true);
  /** An error (always on stderr). */
  readonly error = (line: string): void => this.say(line, 'err', true);
  /** A problem of a log output itself: on stderr only, never to the outputs. */
  readonly report = (line: string): void => this.stderr(line, 'warning');

  private say(line: string, level: Severity, onStderr: boolean): void {
    if (onStderr) this.stderr(line, level);
    for (const s of this.sinks) s.log(line, level);
  }

  private stderr(line: string, level: Severity): void {
    process.stderr.write(`${this.prefixed ? `<${SEVERITIES[level]}>` : ''}${NAME}: ${line}\n`);
  }
}
