/**
 * The connection to NATS and its life: connecting (forever, with backoff and jitter), the
 * client's own reconnections, and what must be in place before publishing (JetStream: the
 * stream). The `nats` client (v2) is loaded only when a publisher starts.
 */
import { loadPeer } from '../peers';
import type { Pem } from '../pem';
import { NatsPublisherError, type NatsConfig } from './nats-config';

// ---------------------------------------------------------------------------------------------
// The part of the `nats` client (v2) used here. Its own typings need the DOM library, which
// this package does not compile against, and public types here never mention it.
// ---------------------------------------------------------------------------------------------

interface NcStatus {
  type: string;
  data: unknown;
}
export interface NcMsg {
  subject: string;
  data: Uint8Array;
  headers?: { code: number; description: string };
}
export interface NcStreamInfo {
  config: { name: string; subjects?: string[] };
}
interface NcJetStreamManager {
  streams: {
    info(name: string): Promise<NcStreamInfo>;
    add(cfg: { name: string; subjects: string[] }): Promise<NcStreamInfo>;
    update(name: string, cfg: { subjects: string[] }): Promise<NcStreamInfo>;
  };
}
export interface NcConnection {
  publish(subject: string, data: Uint8Array, opts?: { reply: string }): void;
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: NcMsg) => void }): unknown;
  flush(): Promise<void>;
  close(): Promise<void>;
  closed(): Promise<void | Error>;
  isClosed(): boolean;
  getServer(): string;
  status(): AsyncIterable<NcStatus>;
  jetstreamManager(opts: { timeout: number }): Promise<NcJetStreamManager>;
}
interface NcConnectOptions {
  servers: string[];
  name: string;
  user?: string;
  pass?: string;
  token?: string;
  authenticator?: unknown;
  tls?: { ca?: Pem; cert?: Pem; key?: Pem };
  reconnect: boolean;
  maxReconnectAttempts: number;
  waitOnFirstConnect: boolean;
  reconnectDelayHandler: () => number;
  pingInterval: number;
  maxPingOut: number;
  timeout: number;
  noEcho: boolean;
}
export interface NatsModule {
  connect(opts: NcConnectOptions): Promise<NcConnection>;
  createInbox(): string;
  credsAuthenticator(creds: Uint8Array): unknown;
  nkeyAuthenticator(seed: Uint8Array): unknown;
}

/** `idle` (before start()), `connecting` (no connection yet), `connected` (publishing), `disconnected` (reconnecting), `closed`. */
export type NatsPublisherState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

/** An error as one line: its message, and its code if the message does not say it. */
export function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const msg = err.message || (typeof code === 'string' || typeof code === 'number' ? String(code) : err.name);
    return typeof code === 'string' && code !== '' && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  return String(err);
}

export const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

let natsModule: NatsModule | null = null;
export function loadNats(): NatsModule {
  if (natsModule) return natsModule;
  natsModule = loadPeer<NatsModule>('nats', 'NATS', (message, cause) => new NatsPublisherError('ENOCLIENT', message, { cause }));
  return natsModule;
}

/** What must be in place on a connection before publishing (JetStream: the stream); retried until it is. */
export interface LinkSetup {
  /** Names it in the log: `WHAT: error; retrying`. */
  what: string;
  run(nc: NcConnection): Promise<void>;
}

/** What the link tells the publisher. */
export interface LinkHooks {
  log: (line: string) => void;
  /** A failure worth knowing (connection refused, JetStream errors). */
  fail(err: Error): void;
  /** A connection was made (not yet ready): JetStream subscribes to its acks. */
  opened(nc: NcConnection, nats: NatsModule): void;
  setup(): LinkSetup | null;
  /** Ready to publish (first time or again). */
  connected(server: string): void;
  /** The connection broke: what it had not confirmed is dealt with. */
  broke(): void;
  disconnected(server: string): void;
  reconnecting(server: string, attempt: number): void;
}

/**
 * The connection: `nc` and whether messages may go out on it (`ready`). `gen` is bumped on
 * every (re)connection and disconnection: stale async work checks it.
 */
export class Link {
  state: NatsPublisherState = 'idle';
  nc: NcConnection | null = null;
  /** Connected and (JetStream) the stream is in place: messages go out. */
  ready = false;
  gen = 0;
  server: string | null = null;
  /** Successful reconnections. */
  reconnects = 0;
  private stopped = false;
  private sleeper: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  private reconnectAttempt = 0;
  private jitter = { attempt: -1, factor: 1 };

  constructor(
    private readonly cfg: NatsConfig,
    private readonly hooks: LinkHooks,
  ) {}

  /** Connects in the background until stop(). */
  start(nats: NatsModule): void {
    this.state = 'connecting';
    this.run(nats).catch((err: unknown) => this.hooks.log(`stopped: ${errText(err)}`));
  }

  /** No more connecting or waiting (a pending retry ends now). */
  stop(): void {
    this.stopped = true;
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer);
      this.sleeper.resolve();
      this.sleeper = null;
    }
  }

  /** After stop(): closes `nc` (the connection stop() found). */
  async end(nc: NcConnection | null): Promise<void> {
    this.ready = false;
    this.state = 'closed';
    this.gen++;
    this.nc = null;
    if (nc) await nc.close().catch(() => {});
  }

  /** Not ready until the setup is done again (JetStream: the stream is gone). */
  redoSetup(): void {
    if (!this.ready || !this.nc) return;
    this.ready = false;
    this.becomeReady(this.nc, ++this.gen).catch((e: unknown) => this.hooks.log(`${errText(e)}`));
  }

  private delayFor(attempt: number): number {
    if (this.jitter.attempt !== attempt) this.jitter = { attempt, factor: 0.8 + Math.random() * 0.4 };
    const base = Math.min(this.cfg.maxDelay, this.cfg.minDelay * 2 ** Math.min(30, Math.max(0, attempt - 1)));
    return Math.round(Math.min(this.cfg.maxDelay, base * this.jitter.factor));
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = null;
        resolve();
      }, ms);
      this.sleeper = { timer, resolve };
    });
  }

  private connect(nats: NatsModule): Promise<NcConnection> {
    const { creds } = this.cfg;
    return nats.connect({
      servers: this.cfg.addrs.map((a) => a.hostport),
      name: this.cfg.clientName,
      ...(creds.user !== undefined ? { user: creds.user } : {}),
      ...(creds.pass !== undefined ? { pass: creds.pass } : {}),
      ...(creds.token !== undefined ? { token: creds.token } : {}),
      ...(creds.creds ? { authenticator: nats.credsAuthenticator(creds.creds) } : {}),
      ...(creds.nkeySeed ? { authenticator: nats.nkeyAuthenticator(creds.nkeySeed) } : {}),
      ...(creds.tls ? { tls: { ...creds.tlsOptions } } : {}),
      reconnect: true,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: false,
      reconnectDelayHandler: () => this.delayFor(this.reconnectAttempt),
      pingInterval: 20000,
      maxPingOut: 3,
      timeout: 10000,
      noEcho: true,
    });
  }

  /** Connects, and connects again whenever the client gives up on a connection; until stop(). */
  private async run(nats: NatsModule): Promise<void> {
    const servers = this.cfg.servers;
    let attempt = 0;
    while (!this.stopped) {
      let nc: NcConnection;
      try {
        nc = await this.connect(nats);
      } catch (err) {
        attempt++;
        const wait = this.delayFor(attempt);
        if (isPow2(attempt)) this.hooks.log(`cannot connect to ${servers.join(', ')}: ${errText(err)}; retrying in ${(wait / 1000).toFixed(1)} s (attempt ${attempt})`);
        this.hooks.fail(err instanceof Error ? err : new Error(String(err)));
        this.hooks.reconnecting(servers.join(','), attempt);
        await this.sleep(wait);
        continue;
      }
      if (this.stopped) {
        await nc.close().catch(() => {});
        return;
      }
      attempt = 0;
      this.nc = nc;
      this.server = nc.getServer();
      this.hooks.opened(nc, nats);
      void this.watch(nc);
      this.hooks.log(`connected to ${this.server}`);
      this.becomeReady(nc, ++this.gen).catch((err: unknown) => this.hooks.log(`${errText(err)}`));
      const why = await nc.closed();
      if (this.nc === nc) this.nc = null;
      if (this.stopped) return;
      this.lost();
      this.hooks.log(`connection closed${why instanceof Error ? `: ${errText(why)}` : ''}; connecting again`);
      this.state = 'connecting';
    }
  }

  /** Follows the client's status: disconnect, reconnecting, reconnect, server errors. */
  private async watch(nc: NcConnection): Promise<void> {
    const log = this.hooks.log;
    try {
      for await (const s of nc.status()) {
        if (this.stopped) continue;
        const data = typeof s.data === 'string' ? s.data : String(s.data);
        switch (s.type) {
          case 'disconnect':
            log(`disconnected from ${data}; holding up to ${this.cfg.maxPending} bytes of events meanwhile`);
            this.lost();
            this.state = 'disconnected';
            this.hooks.disconnected(data);
            break;
          case 'reconnecting':
            this.reconnectAttempt++;
            if (isPow2(this.reconnectAttempt)) log(`reconnecting to ${data} (attempt ${this.reconnectAttempt})`);
            this.hooks.reconnecting(data, this.reconnectAttempt);
            break;
          case 'reconnect':
            this.reconnectAttempt = 0;
            this.reconnects++;
            this.server = nc.getServer();
            log(`reconnected to ${this.server}`);
            this.becomeReady(nc, ++this.gen).catch((err: unknown) => log(`${errText(err)}`));
            break;
          case 'error':
            log(`server error: ${data}`);
            break;
          case 'ldm':
            log(`${data} is shutting down (lame duck mode)`);
            break;
          default:
            break;
        }
      }
    } catch (err) {
      log(`status: ${errText(err)}`);
    }
  }

  /** The connection is gone: not ready; the publisher deals with what it had not confirmed. */
  private lost(): void {
    this.gen++;
    this.ready = false;
    if (this.state === 'connected') this.state = 'disconnected';
    this.hooks.broke();
  }

  /** On (re)connection: the setup (JetStream: the stream), retried until done; then ready. */
  private async becomeReady(nc: NcConnection, gen: number): Promise<void> {
    const setup = this.hooks.setup();
    if (setup) {
      let attempt = 0;
      for (;;) {
        if (this.stopped || gen !== this.gen || nc.isClosed()) return;
        try {
          await setup.run(nc);
          break;
        } catch (err) {
          attempt++;
          if (this.stopped || gen !== this.gen) return;
          if (isPow2(attempt)) this.hooks.log(`${setup.what}: ${errText(err)}; retrying (attempt ${attempt})`);
          this.hooks.fail(err instanceof Error ? err : new Error(String(err)));
          await this.sleep(this.delayFor(attempt));
        }
      }
      if (this.stopped || gen !== this.gen) return;
    }
    this.ready = true;
    this.state = 'connected';
    this.hooks.connected(this.server ?? '');
  }
}
