/**
 * The event stream's lines as a client reads them: events, the answers to its request (a
 * `hello`, the process table as `process` lines closed by a `snapshot` line), and plain-text
 * lines from the server. Holds the process table while it comes in.
 */
import type { ProcessRecord, ProcEvent } from '../events';
import { ProcMonitorClientError, type HelloInfo } from './types';

/** Where the lines go. */
export interface StreamSink {
  hello(info: HelloInfo): void;
  snapshot(procs: ProcessRecord[]): void;
  event(ev: ProcEvent): void;
  /** A line that is not JSON: a refusal, or something unexpected. */
  serverLine(line: string): void;
  /** Something wrong that does not end the connection (a line that does not parse). */
  nonFatal(err: Error): void;
  /** False once the connection is over: no more lines are read. */
  reading(): boolean;
}

export class StreamReader {
  /** The process table of a snapshot, until its `snapshot` line. */
  private procs: ProcessRecord[] | null = null;

  constructor(private readonly sink: StreamSink) {}

  /**
   * Reads the whole lines of `text`: returns where the rest (a line not yet ended) starts, or
   * -1 when the sink stopped reading.
   */
  read(text: string): number {
    const sink = this.sink;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) return start;
      const line = text.slice(start, nl);
      start = nl + 1;
      if (line.length === 0) continue;
      if (line.charCodeAt(0) !== 0x7b /* { */) {
        sink.serverLine(line);
        if (!sink.reading()) return -1;
        continue;
      }
      let ev: ProcEvent;
      try {
        ev = JSON.parse(line) as ProcEvent;
      } catch {
        sink.nonFatal(new ProcMonitorClientError('EPROTO', `unparsable line from the server: ${line.slice(0, 200)}`));
        continue;
      }
      if (this.answer(ev)) continue;
      sink.event(ev);
      if (!sink.reading()) return -1;
    }
  }

  /** The answers to a request, which are not events of the stream: true when `ev` was one. */
  private answer(ev: ProcEvent): boolean {
    const kind = (ev as { event: string }).event;
    if (kind === 'hello') {
      const h = ev as unknown as HelloInfo;
      this.sink.hello({ stream: h.stream, last_seq: h.last_seq, time: h.time });
      return true;
    }
    if (kind === 'process') {
      const rec: Partial<ProcessRecord & { event: string }> = { ...(ev as unknown as ProcessRecord & { event: string }) };
      delete rec.event;
      (this.procs ??= []).push(rec as ProcessRecord);
      return true;
    }
    if (kind === 'snapshot') {
      const procs = this.procs ?? [];
      this.procs = null;
      this.sink.snapshot(procs);
      return true;
    }
    return false;
  }
}
