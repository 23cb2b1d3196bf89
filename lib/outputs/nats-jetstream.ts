/**
 * JetStream publishing with asynchronous acks: each message is published with a reply
 * subject (`INBOX.seq`, one subscription per connection), and is confirmed, refused or timed
 * out from there. The stream is made (or given the subjects) before publishing.
 */
import type { Msg, Outbox, OutboxContext } from './nats-buffer';
import type { NatsModule, NcConnection, NcMsg, NcStreamInfo } from './nats-link';

/** Whether subject pattern `p` matches every subject that `s` (possibly with wildcards) matches. */
function covers(p: string, s: string): boolean {
  const a = p.split('.');
  const b = s.split('.');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '>') return b.length > i;
    if (i >= b.length || b[i] === '>') return false;
    if (a[i] === '*') continue;
    if (a[i] !== b[i] || b[i] === '*') return false;
  }
  return a.length === b.length;
}

export interface JetStreamConfig {
  stream: string;
  subjectPrefix: string;
  host: string;
  ackTimeoutMs: number;
}

export class JetStreamOutbox implements Outbox {
  published = 0;
  confirmed = 0;
  unconfirmed = 0;
  /** The subject prefix acks come back on (`INBOX.seq`), subscribed per connection. */
  private ackInbox = '';
  // Published, waiting for the ack (by sequence, so in order of deadline).
  private ackSeq = 0;
  private readonly acks = new Map<number, { m: Msg; deadline: number }>();
  private ackTimer: NodeJS.Timeout | null = null;
  private inflight = 0;
  private inflightBytes = 0;
  private idleWaiters: Array<() => void> = [];
  private otherStreamLogged = false;

  constructor(
    private readonly ctx: OutboxContext,
    private readonly cfg: JetStreamConfig,
  ) {}

  pendingBytes(): number {
    return this.inflightBytes;
  }

  /** Acks come back as replies: one subscription for all, no request object per message. */
  opened(nc: NcConnection, nats: NatsModule): void {
    this.ackInbox = nats.createInbox();
    nc.subscribe(`${this.ackInbox}.*`, { callback: (err, msg) => (err ? undefined : this.onAck(msg)) });
  }

  setup(): { what: string; run(nc: NcConnection): Promise<void> } {
    return { what: `JetStream stream ${this.cfg.stream}`, run: (nc) => this.ensureStream(nc) };
  }

  send(nc: NcConnection, m: Msg): void {
    const seq = ++this.ackSeq;
    try {
      nc.publish(m.subject, m.data, { reply: `${this.ackInbox}.${seq}` });
    } catch (err) {
      this.ctx.buffer.drop(m);
      this.failed(err);
      return;
    }
    this.published++;
    this.inflight++;
    this.inflightBytes += m.data.length;
    this.acks.set(seq, { m, deadline: Date.now() + this.cfg.ackTimeoutMs });
    if (!this.ackTimer) {
      this.ackTimer = setInterval(() => this.expireAcks(), Math.min(250, this.cfg.ackTimeoutMs));
      this.ackTimer.unref();
    }
  }

  flush(): void {}

  /** Acks for the old connection never arrive on a new one: written off. */
  broke(): void {
    this.writeOffAcks();
  }

  /** Resolves once every ack has come (or failed). */
  settle(): Promise<void> {
    return new Promise<void>((resolve) => (this.inflight === 0 ? resolve() : this.idleWaiters.push(resolve)));
  }

  closed(): void {
    this.writeOffAcks();
  }

  /** The stream, created capturing `PREFIX.>` if missing, or given that subject if it lacks it. */
  private async ensureStream(nc: NcConnection): Promise<void> {
    const { stream: name, subjectPrefix, host } = this.cfg;
    const want = `${subjectPrefix}.>`;
    const jsm = await nc.jetstreamManager({ timeout: this.cfg.ackTimeoutMs });
    let info: NcStreamInfo;
    try {
      info = await jsm.streams.info(name);
    } catch (err) {
      const e = err as { code?: unknown; api_error?: { err_code?: number } };
      if (e.code !== '404' && e.api_error?.err_code !== 10059) throw err;
      await jsm.streams.add({ name, subjects: [want] });
      this.ctx.log(`JetStream stream ${name} created (subjects ${want})`);
      return;
    }
    const subjects = info.config.subjects ?? [];
    if (subjects.some((p) => covers(p, `${subjectPrefix}.${host}.*`))) {
      this.ctx.log(`JetStream stream ${name} ready (subjects ${subjects.join(' ')})`);
      return;
    }
    await jsm.streams.update(name, { subjects: [...subjects, want] });
    this.ctx.log(`JetStream stream ${name}: subject ${want} added`);
  }

  /** No responders: the stream is gone (deleted, or a server without its storage): make it again. */
  private failed(err: unknown): void {
    if ((err as { code?: unknown }).code === '503') this.ctx.link.redoSetup();
    this.ctx.failed(err);
  }

  /** A JetStream ack (or error, or "no responders"), on `INBOX.seq`. */
  private onAck(msg: NcMsg): void {
    const seq = Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
    const e = this.acks.get(seq);
    if (!e) return;
    this.acks.delete(seq);
    let failure: (Error & { code?: string }) | null = null;
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      failure = Object.assign(new Error('no JetStream stream answered (503)'), { code: '503' });
    } else {
      try {
        const r = JSON.parse(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).toString('utf8')) as {
          stream?: string;
          error?: { code?: number; description?: string };
        };
        if (r.error) failure = Object.assign(new Error(`JetStream: ${r.error.description ?? 'error'}`), { code: String(r.error.code ?? '') });
        else if (r.stream !== this.cfg.stream && !this.otherStreamLogged) {
          this.otherStreamLogged = true;
          this.ctx.log(`JetStream stream ${String(r.stream)} stored an event, not ${this.cfg.stream}`);
        }
      } catch {
        failure = new Error('JetStream: unreadable acknowledgement');
      }
    }
    this.ackDone(e.m, failure);
  }

  private ackDone(m: Msg, failure: Error | null): void {
    if (failure) {
      this.unconfirmed += m.events;
      this.ctx.buffer.lose(m);
    } else {
      this.confirmed++;
    }
    // A failure first (it may take the publisher out of service), then the accounting.
    if (failure) this.failed(failure);
    this.settleOne(m);
  }

  /** Acks past their deadline are failures (the event may or may not be stored). */
  private expireAcks(): void {
    const now = Date.now();
    for (const [seq, e] of this.acks) {
      if (e.deadline > now) break;
      this.acks.delete(seq);
      this.ackDone(e.m, Object.assign(new Error(`no JetStream acknowledgement within ${this.cfg.ackTimeoutMs} ms`), { code: 'TIMEOUT' }));
    }
    if (this.acks.size === 0 && this.ackTimer) {
      clearInterval(this.ackTimer);
      this.ackTimer = null;
    }
  }

  /** The connection is gone: acks still awaited will never come. */
  private writeOffAcks(): void {
    if (this.acks.size === 0) return;
    let events = 0;
    for (const e of this.acks.values()) {
      events += e.m.events;
      this.unconfirmed += e.m.events;
      this.ctx.buffer.lose(e.m);
      this.settleOne(e.m);
    }
    this.acks.clear();
    if (this.ackTimer) {
      clearInterval(this.ackTimer);
      this.ackTimer = null;
    }
    if (events > 0 && this.ctx.link.state !== 'closed') this.ctx.log(`${events} published event(s) not acknowledged before the connection broke (counted as lost)`);
  }

  private settleOne(m: Msg): void {
    this.inflight--;
    this.inflightBytes -= m.data.length;
    if (this.inflight === 0 && this.idleWaiters.length) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
    this.ctx.buffer.caughtUp();
  }
}
