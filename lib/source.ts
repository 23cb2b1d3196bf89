/**
 * Where the outputs (the broadcast server, NATS) take events from: bytes, not objects. A
 * `LineSource` (a `ProcConnector`) hands over the reader's NDJSON lines as they are, with the
 * kind and uid of each line, so that nothing is parsed or serialised again on the way out. Any
 * other emitter of `'batch'` (arrays of event objects: a test's fake, an app's own events) is a
 * `BatchSource`; its batches are serialised once, here.
 */
import { linesOf, toLine, type LineBatch, type ProcessRecord, type ProcEvent } from './events';

/** Emits `'lines'` (a LineBatch per batch, in order); says so with `emitsLines: true`. */
export interface LineSource {
  readonly emitsLines: true;
  on(event: 'lines', listener: (lines: LineBatch) => void): unknown;
  off(event: 'lines', listener: (lines: LineBatch) => void): unknown;
  /** The live process table, for clients that ask for it (`{"snapshot": true}`). */
  snapshot?(): ProcessRecord[];
  /** How its lines write an event (for an output's own `lost` line): the wire format unless given. */
  lineOf?(ev: ProcEvent): string;
}

/** Anything that emits `'batch'` with an array of events in order; a `ProcConnector` fits. */
export interface BatchSource {
  on(event: 'batch', listener: (batch: ProcEvent[]) => void): unknown;
  off(event: 'batch', listener: (batch: ProcEvent[]) => void): unknown;
  /** The live process table, for clients that ask for it (`{"snapshot": true}`). */
  snapshot?(): ProcessRecord[];
}

export type EventSource = LineSource | BatchSource;

/** Whether `v` can be a source at all (has on/off). */
export function isEventSource(v: unknown): v is EventSource {
  const s = v as Partial<BatchSource> | null | undefined;
  return !!s && typeof s.on === 'function' && typeof s.off === 'function';
}

/**
 * Calls `fn` with each batch of `src` as lines (and, from a `BatchSource`, the events they were
 * made of); returns what stops it.
 */
export function subscribeLines(src: EventSource, fn: (lines: LineBatch, events?: readonly ProcEvent[]) => void): () => void {
  if ((src as Partial<LineSource>).emitsLines === true) {
    const s = src as LineSource;
    s.on('lines', fn);
    return () => s.off('lines', fn);
  }
  const s = src as BatchSource;
  const onBatch = (batch: ProcEvent[]) => fn(linesOf(batch), batch);
  s.on('batch', onBatch);
  return () => s.off('batch', onBatch);
}

/** How `src`'s lines write an event: an output writes its own `lost` line the same way. */
export function lineWriter(src: EventSource): (ev: ProcEvent) => string {
  const s = src as Partial<LineSource>;
  return s.emitsLines === true && typeof s.lineOf === 'function' ? s.lineOf.bind(s) : toLine;
}
