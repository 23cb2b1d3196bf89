/**
 * What waits to be published, bounded, and the exact count of what was lost: events dropped
 * (the bound was reached, or publishing failed) and owed in one `lost` message, published
 * once the server has caught up. Also the interface of what publishes (nats-core.ts, nats-jetstream.ts).
 */
import { lostEvent, toLine, type LostEvent } from '../events';
import type { Link, NatsModule, NcConnection } from './nats-link';

export interface Msg {
  subject: string;
  data: Buffer;
  /** Events this message stands for if lost: 1 for an event, `count` for a loss report. */
  units: number;
  /** 1 for an event, 0 for a loss report. */
  events: number;
}

/** Where the buffer's messages go: the publisher. */
export interface BufferSink {
  /** Whether messages go out now (connected, and the stream in place). */
  ready(): boolean;
  /** Bytes published and not yet confirmed. */
  unconfirmedBytes(): number;
  send(m: Msg): void;
  log(line: string): void;
  /** A `lost` message was published. */
  reported(ev: LostEvent): void;
}

/** Publishes messages on a connection, and keeps what is not yet confirmed: core NATS or JetStream. */
export interface Outbox {
  published: number;
  confirmed: number;
  unconfirmed: number;
  /** Bytes published and not yet confirmed. */
  pendingBytes(): number;
  send(nc: NcConnection, m: Msg): void;
  /** After a batch (or the queue) went out. */
  flush(): void;
  /** A connection was made. */
  opened(nc: NcConnection, nats: NatsModule): void;
  /** What must be in place before publishing on a connection, or null. */
  setup(): { what: string; run(nc: NcConnection): Promise<void> } | null;
  /** The connection broke. */
  broke(): void;
  /** On close: resolves once the server has confirmed what was published (or never). */
  settle(nc: NcConnection): Promise<void>;
  /** Closed: nothing more will be confirmed. */
  closed(): void;
}

/** What an outbox works with. */
export interface OutboxContext {
  readonly link: Link;
  readonly buffer: PendingBuffer;
  log(line: string): void;
  /** publish() failed, or the server refused a message: logged (at most every 10 s). */
  failed(err: unknown): void;
}

/**
 * The bounded buffer: messages waiting for a connection; beyond `maxPending` bytes (queued
 * plus unconfirmed), events are dropped until the server is back and has caught up.
 */
export class PendingBuffer {
  private readonly queue: Msg[] = [];
  private head = 0;
  private bytes = 0;
  /** Dropping until the server catches up (pending at most half the bound). */
  private dropping = false;
  /** Events to report in the next `lost` message. */
  unreported = 0;
  /** Events never published. */
  dropped = 0;
  /** `lost` messages published. */
  lostReports = 0;

  constructor(
    private readonly maxPending: number,
    private readonly lostSubject: string,
    private readonly sink: BufferSink,
    /** How the stream's lines write an event (its `lost` message goes the same way). */
    private readonly lineOf: (ev: LostEvent) => string = toLine,
  ) {}

  /** Messages waiting for a connection. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Bytes queued plus bytes published and not yet confirmed. */
  pendingBytes(): number {
    return this.bytes + this.sink.unconfirmedBytes();
  }

  /** Whether events are being dropped (not even copied: an outage costs next to nothing per event). */
  shedding(): boolean {
    return this.dropping && !this.recovered();
  }

  /** An event dropped without a message made of it. */
  dropEvent(): void {
    this.unreported++;
    this.dropped++;
  }

  drop(m: Msg): void {
    this.unreported += m.units;
    this.dropped += m.events;
  }

  /** Published, never confirmed (JetStream): reported as lost, not counted as dropped. */
  lose(m: Msg): void {
    this.unreported += m.units;
  }

  /** Publishes `m` when connected, else queues it; drops it beyond the bound. */
  offer(m: Msg): void {
    if (this.shedding()) {
      this.drop(m);
      return;
    }
    if (this.pendingBytes() + m.data.length > this.maxPending) {
      this.dropping = true;
      this.sink.log(
        `${this.sink.ready() ? 'the server is not keeping up' : 'not connected'} and ${this.pendingBytes()} bytes are pending: dropping events until it is back and caught up`,
      );
      this.drop(m);
      return;
    }
    if (this.sink.ready()) {
      this.report();
      this.sink.send(m);
    } else {
      this.queue.push(m);
      this.bytes += m.data.length;
    }
  }

  /** Publishes what is queued while ready; then the `lost` message owed, if caught up. */
  drain(): void {
    while (this.sink.ready() && this.head < this.queue.length) {
      const m = this.queue[this.head] as Msg;
      this.queue[this.head++] = undefined as unknown as Msg;
      this.bytes -= m.data.length;
      this.sink.send(m);
    }
    if (this.head >= this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    if (this.sink.ready()) this.caughtUp();
  }

  /** Something was confirmed: the `lost` message owed goes out if the server has caught up. */
  caughtUp(): void {
    if (this.recovered()) this.report();
  }

  /** Puts messages published and not confirmed back in front of the queue (`bytes` of them). */
  requeue(back: readonly Msg[], bytes: number): void {
    const rest = this.queue.length - this.head;
    const merged: Msg[] = new Array<Msg>(back.length + rest);
    for (let i = 0; i < back.length; i++) merged[i] = back[i] as Msg;
    for (let i = 0; i < rest; i++) merged[back.length + i] = this.queue[this.head + i] as Msg;
    this.queue.length = 0;
    for (const m of merged) this.queue.push(m);
    this.head = 0;
    this.bytes += bytes;
  }

  clear(): void {
    this.queue.length = 0;
    this.head = 0;
    this.bytes = 0;
  }

  /** Ends a dropping episode once connected, nothing queued and at most half the bound pending. */
  private recovered(): boolean {
    if (!this.dropping) return true;
    if (!this.sink.ready() || this.head < this.queue.length || this.pendingBytes() > this.maxPending / 2) return false;
    this.dropping = false;
    return true;
  }

  /** Publishes the `lost` message owed, if any, when connected and caught up. */
  private report(): void {
    if (this.unreported === 0 || !this.sink.ready() || this.dropping || this.head < this.queue.length) return;
    const ev = lostEvent(this.unreported, 'nats');
    this.unreported = 0;
    this.lostReports++;
    this.sink.log(`reporting ${ev.count} lost events`);
    this.sink.send({ subject: this.lostSubject, data: Buffer.from(this.lineOf(ev)), units: ev.count, events: 0 });
    this.sink.reported(ev);
  }
}
