/**
 * Core NATS publishing: a PING after what was published; its PONG confirms all of it. What
 * the server had not confirmed when a connection broke is published again on the next.
 */
import type { Msg, Outbox, OutboxContext } from './nats-buffer';
import type { NcConnection } from './nats-link';

/** Watermarks of what was published (and of what was confirmed), in messages, events and bytes. */
interface Mark {
  units: number;
  events: number;
  bytes: number;
  msgs: number;
}

const ZERO: Mark = { units: 0, events: 0, bytes: 0, msgs: 0 };

export class CoreOutbox implements Outbox {
  published = 0;
  confirmed = 0;
  readonly unconfirmed = 0;
  private pub: Mark = ZERO;
  private settled: Mark = ZERO;
  /** Flushes (PINGs) awaiting their PONG on this connection. */
  private flushesOut = 0;
  private lastMarkBytes = 0;
  /** The messages published on this connection and not yet confirmed (from sentHead on). */
  private readonly sent: Msg[] = [];
  private sentHead = 0;

  constructor(
    private readonly ctx: OutboxContext,
    private readonly maxPending: number,
  ) {}

  pendingBytes(): number {
    return this.pub.bytes - this.settled.bytes;
  }

  send(nc: NcConnection, m: Msg): void {
    try {
      nc.publish(m.subject, m.data);
    } catch (err) {
      this.ctx.buffer.drop(m);
      this.ctx.failed(err);
      return;
    }
    this.published++;
    this.sent.push(m);
    this.pub = { units: this.pub.units + m.units, events: this.pub.events + m.events, bytes: this.pub.bytes + m.data.length, msgs: this.pub.msgs + 1 };
  }

  opened(): void {}

  setup(): null {
    return null;
  }

  /** A PING after what was published, unless enough are out already. */
  flush(): void {
    const { link } = this.ctx;
    const nc = link.nc;
    if (!nc || this.pub.bytes === this.lastMarkBytes) return;
    if (this.flushesOut > 0 && this.pub.bytes - this.lastMarkBytes < this.maxPending / 8) return;
    if (this.flushesOut >= 4) return;
    const mark = this.pub;
    const gen = link.gen;
    this.lastMarkBytes = mark.bytes;
    this.flushesOut++;
    // A flush of a connection that broke since settles nothing: what it covered was put back
    // in the queue. One that fails on a live connection settles nothing either: a later
    // PONG confirms everything before it, or the break puts it back.
    const done = (ok: boolean) => {
      if (gen !== link.gen) return;
      this.flushesOut--;
      if (!ok) return;
      this.confirmTo(mark);
      if (link.ready && link.nc === nc) {
        this.flush();
        this.ctx.buffer.caughtUp();
      }
    };
    nc.flush().then(
      () => done(true),
      () => done(false),
    );
  }

  /**
   * What the server had not confirmed goes back to the front of the queue, to be published
   * again on the next connection (the server may have had some of it: a subscriber can see
   * such an event twice, never miss it uncounted).
   */
  broke(): void {
    const back = this.sent.length - this.sentHead;
    this.flushesOut = 0; // those of the old connection no longer count (see flush)
    if (back === 0) return;
    this.ctx.buffer.requeue(this.sent.slice(this.sentHead), this.pub.bytes - this.settled.bytes);
    this.sent.length = 0;
    this.sentHead = 0;
    if (this.ctx.link.state !== 'closed')
      this.ctx.log(`${this.pub.events - this.settled.events} published event(s) not confirmed before the connection broke: publishing them again once reconnected`);
    this.settled = this.pub;
    this.lastMarkBytes = this.pub.bytes;
  }

  /** One PING after everything: its PONG confirms it all. */
  settle(nc: NcConnection): Promise<void> {
    const mark = this.pub;
    return nc.flush().then(
      () => this.confirmTo(mark),
      () => {},
    );
  }

  closed(): void {
    this.sent.length = 0;
    this.sentHead = 0;
  }

  /** The server confirmed everything published up to `mark`. */
  private confirmTo(mark: Mark): void {
    const d = mark.msgs - this.settled.msgs;
    if (d <= 0) return;
    this.confirmed += d;
    this.sentHead += d;
    if (this.sentHead >= this.sent.length) {
      this.sent.length = 0;
      this.sentHead = 0;
    } else if (this.sentHead > 4096 && this.sentHead * 2 > this.sent.length) {
      this.sent.splice(0, this.sentHead);
      this.sentHead = 0;
    }
    this.settled = mark;
    this.lastMarkBytes = Math.max(this.lastMarkBytes, mark.bytes);
  }
}
