/**
 * Publishes process events to NATS: subject `PREFIX.HOST.EVENT`, each message the event's
 * NDJSON line (from a `ProcConnector`, the reader's own bytes, the subject from the kind it
 * sends with each: never parsed). Core NATS, or JetStream with asynchronous acks. The `nats`
 * client is loaded only when a publisher starts, so `require('procmonitor')` stays light.
 *
 * Never slows the source: publishing is a memory copy; what the server has not yet confirmed
 * (or what waits for a connection) is bounded by `maxPendingBytes`, beyond which events are
 * dropped, counted, and reported in one `{"event":"lost","source":"nats"}` message once the
 * server has caught up.
 */
import { EventEmitter } from 'node:events';
import type { LineBatch, LostEvent, ProcEvent } from '../events';
import { lineWriter, subscribeLines, type EventSource } from '../source';
import { PendingBuffer, type Msg, type Outbox } from './nats-buffer';
import { natsConfig, SubjectNames, type NatsPublisherOptions } from './nats-config';
import { CoreOutbox } from './nats-core';
import { JetStreamOutbox } from './nats-jetstream';
import { errText, Link, loadNats, type NatsPublisherState } from './nats-link';

export {
  DEFAULT_NATS_PREFIX,
  natsToken,
  parseNatsServers,
  NatsPublisherError,
  type NatsJetStreamOptions,
  type NatsPublisherErrorCode,
  type NatsPublisherOptions,
  type NatsServerAddress,
} from './nats-config';
export type { NatsPublisherState } from './nats-link';

export interface NatsPublisherStats {
  state: NatsPublisherState;
  /** The server connected to (`host:port`), or null. */
  server: string | null;
  /** Messages handed to the connection (events and loss reports). */
  published: number;
  /** Of those, confirmed by the server (core: a PING/PONG after them; JetStream: acknowledged). */
  confirmed: number;
  /** Events never published: the pending buffer was full, or the event exceeded the server's max_payload. */
  dropped: number;
  /**
   * JetStream: events published whose acknowledgement failed or timed out, or never came
   * because the connection broke; some may have been stored. (Core NATS publishes what the
   * server had not confirmed when the connection broke again after reconnecting: never
   * counted here.)
   */
  unconfirmed: number;
  /** `lost` messages published. */
  lostReports: number;
  /** Events dropped or unconfirmed and not yet reported in a `lost` message. */
  unreported: number;
  /** Messages waiting for a connection. */
  queued: number;
  /** Bytes queued plus bytes published and not yet confirmed. */
  pendingBytes: number;
  /** Successful reconnections. */
  reconnects: number;
}

export interface NatsPublisherEvents {
  /** Connected (first time or again) and ready to publish; the server's `host:port`. */
  connect: [server: string];
  /** The connection broke; events are buffered (up to `maxPendingBytes`) meanwhile. */
  disconnect: [server: string];
  /** About to try a server again (attempt 1, 2, ... since the connection was lost). */
  reconnecting: [server: string, attempt: number];
  /** A `lost` message (`source: "nats"`) was published. */
  lost: [LostEvent];
  /** A failure worth knowing (connection refused, JetStream errors). Only emitted when listened to; always logged. */
  error: [Error];
  /** After `close()`. */
  close: [];
}

/**
 * Publishes the events of a source to NATS. `start()` begins connecting (in the background,
 * forever, with backoff); `close()` stops. Never throws on the event path.
 *
 * Its parts, each with its own state: `Link` (the connection), `PendingBuffer` (what waits,
 * bounded, and what was lost), an `Outbox` (core NATS or JetStream: what is published and
 * not yet confirmed), `SubjectNames`.
 */
export class NatsPublisher extends EventEmitter<NatsPublisherEvents> {
  /** The servers, without credentials. */
  readonly servers: readonly string[];
  readonly subjectPrefix: string;
  /** The host token in subjects (`natsToken(hostname)`). */
  readonly host: string;
  /** The JetStream stream, or null for core NATS. */
  readonly stream: string | null;

  private readonly source: EventSource;
  /** Stops taking the source's lines (set by start()). */
  private unsubscribe: (() => void) | null = null;
  private readonly closeTimeoutMs: number;
  private readonly logFn: (line: string) => void;
  private readonly names: SubjectNames;
  private readonly link: Link;
  private readonly buffer: PendingBuffer;
  private readonly outbox: Outbox;
  private closing: Promise<void> | null = null;
  private failedLogged = 0;

  constructor(options: NatsPublisherOptions) {
    super();
    const cfg = natsConfig(options);
    this.source = cfg.source;
    this.servers = cfg.servers;
    this.subjectPrefix = cfg.subjectPrefix;
    this.host = cfg.host;
    this.stream = cfg.stream;
    this.closeTimeoutMs = cfg.closeTimeoutMs;
    this.logFn = cfg.log;
    this.names = new SubjectNames(cfg.subjectPrefix, cfg.host);
    const log = (line: string) => this.log(line);
    this.link = new Link(cfg, {
      log,
      fail: (err) => this.fail(err),
      opened: (nc, nats) => this.outbox.opened(nc, nats),
      setup: () => this.outbox.setup(),
      connected: (server) => {
        this.tell('connect', server);
        this.drain();
      },
      broke: () => this.outbox.broke(),
      disconnected: (server) => this.tell('disconnect', server),
      reconnecting: (server, attempt) => this.tell('reconnecting', server, attempt),
    });
    this.buffer = new PendingBuffer(
      cfg.maxPending,
      this.names.of('lost'),
      {
        ready: () => this.link.ready,
        unconfirmedBytes: () => this.outbox.pendingBytes(),
        send: (m) => this.send(m),
        log,
        reported: (ev) => this.tell('lost', ev),
      },
      lineWriter(options.source),
    );
    const ctx = { link: this.link, buffer: this.buffer, log, failed: (err: unknown) => this.publishFailed(err) };
    this.outbox = cfg.stream ? new JetStreamOutbox(ctx, { ...cfg, stream: cfg.stream }) : new CoreOutbox(ctx, cfg.maxPending);
  }

  /** The subject of an event kind: `PREFIX.HOST.EVENT`. */
  subject(event: string): string {
    return this.names.of(event);
  }

  /**
   * Starts taking events from the source and connecting (in the background: a server that is
   * down is retried forever, events meanwhile held up to `maxPendingBytes`). Throws a
   * NatsPublisherError (`ENOCLIENT`) only if the `nats` client cannot be loaded.
   */
  start(): this {
    if (this.link.state !== 'idle') return this;
    const nats = loadNats();
    this.unsubscribe = subscribeLines(this.source, (lines, events) => this.take(lines, events));
    this.log(`connecting to ${this.servers.join(', ')} (subjects ${this.subjectPrefix}.${this.host}.<event>${this.stream ? `, JetStream stream ${this.stream}` : ''})`);
    this.link.start(nats);
    return this;
  }

  /**
   * Stops taking events, waits up to `closeTimeoutMs` for the server to confirm what is
   * pending, and closes the connection. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose();
    return this.closing;
  }

  /** Counters and state. */
  stats(): NatsPublisherStats {
    const { link, buffer, outbox } = this;
    return {
      state: link.state,
      server: link.ready ? link.server : null,
      published: outbox.published,
      confirmed: outbox.confirmed,
      dropped: buffer.dropped,
      unconfirmed: outbox.unconfirmed,
      lostReports: buffer.lostReports,
      unreported: buffer.unreported,
      queued: buffer.queued,
      pendingBytes: buffer.pendingBytes(),
      reconnects: link.reconnects,
    };
  }

  private log(line: string): void {
    try {
      this.logFn(`nats: ${line}`);
    } catch {
      /* a failing logger must not break publishing */
    }
  }

  private fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.tell('error', err);
  }

  /** Emits to the user's listeners; one that throws is logged and never breaks the publisher. */
  private tell<K extends keyof NatsPublisherEvents>(name: K, ...args: NatsPublisherEvents[K]): void {
    try {
      (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args);
    } catch (err) {
      this.log(`a '${name}' listener threw: ${errText(err)}`);
    }
  }

  /** publish() threw (closed connection, or a message larger than the server's max_payload), or JetStream refused. */
  private publishFailed(err: unknown): void {
    const now = Date.now();
    if (now - this.failedLogged > 10000) {
      this.failedLogged = now;
      this.log(`publish failed: ${errText(err)} (counted as lost)`);
    }
  }

  /** Each line of a batch becomes one message, its subject from the line's kind: no parsing. */
  private take(lines: LineBatch, events: readonly ProcEvent[] | undefined): void {
    const n = lines.ends.length;
    let start = 0;
    for (let i = 0; i < n; i++) {
      const end = lines.ends[i] as number;
      const from = start;
      start = end;
      if (this.buffer.shedding()) {
        this.buffer.dropEvent();
        continue;
      }
      // A copy: a queued message must not keep the whole batch's buffer alive.
      const data = Buffer.from(lines.buf.subarray(from, end));
      this.buffer.offer({ subject: this.names.ofLine(lines.kinds[i] as number, events?.[i]), data, units: 1, events: 1 });
    }
    if (this.link.ready) this.outbox.flush();
  }

  /** Publishes what waited for the connection (and the `lost` message owed). */
  private drain(): void {
    this.buffer.drain();
    if (this.link.ready) this.outbox.flush();
  }

  private send(m: Msg): void {
    const nc = this.link.nc;
    if (nc) this.outbox.send(nc, m);
    else this.buffer.drop(m);
  }

  private async doClose(): Promise<void> {
    const { link, outbox } = this;
    const wasStarted = link.state !== 'idle';
    this.unsubscribe?.();
    this.unsubscribe = null;
    link.stop();
    const nc = link.nc;
    if (nc && link.ready && this.closeTimeoutMs > 0) {
      // Give the server a moment to confirm (core: one PING after everything; JetStream: acks).
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeTimeoutMs)));
      await Promise.race([outbox.settle(nc), timeout]);
      clearTimeout(timer);
    }
    await link.end(nc);
    outbox.closed();
    this.buffer.clear();
    if (wasStarted) this.log('closed');
    this.tell('close');
  }
}

/**
 * Creates a publisher of `options.source`'s events to NATS (subject `PREFIX.HOST.EVENT`, the
 * event's JSON line as the message). Call `start()`. Throws a NatsPublisherError (`EINVAL`)
 * for bad options, e.g. a server that is not `nats://host[:port]`.
 */
export function createNatsPublisher(options: NatsPublisherOptions): NatsPublisher {
  return new NatsPublisher(options);
}
