/**
 * Prometheus metrics of the procMonitor daemon (`--metrics HOST:PORT`), served as text at
 * `/metrics`. prom-client is loaded only when metrics are asked for, so neither
 * `require('procmonitor')` nor a daemon without `--metrics` pays for it.
 *
 * Everything is computed from public APIs: the connector's `'batch'` events and `stats()`,
 * the broadcast server's `stats()` and `'clientClose'` events, the syslog sender's `stats()`.
 * Per-source counters are read when Prometheus scrapes, so serving events costs one counter
 * increment per event and nothing else.
 */
import * as http from 'node:http';
import type * as PromClient from 'prom-client';
import { loadPeer } from '../peers';
import type { ProcConnector } from '../connector';
import { CodedError, KIND_NAMES, type LineBatch, type LostEvent } from '../events';
import { REJECT_REASONS, type BroadcastServer, type Transport } from '../server';

export interface MetricsAddress {
  /** Address to bind; `0.0.0.0` when the flag said `:PORT`. */
  host: string;
  /** 0 picks a free port (logged, and in `MetricsServer.url`). */
  port: number;
}

/** Counters of something else the daemon feeds (the syslog sender). */
export interface SyslogCounters {
  sent: number;
  dropped: number;
  queuedBytes: number;
}

export interface MetricsOptions extends MetricsAddress {
  connector: ProcConnector;
  /** The broadcast server, when the daemon serves clients. */
  server?: BroadcastServer | null;
  /** The syslog sender, when `--syslog` is on. */
  syslog?: { stats(): SyslogCounters } | null;
  /** The journald output, when `--journald` is on. */
  journald?: { stats(): JournaldCounters } | null;
}

/** Counters of the journald output. */
export interface JournaldCounters {
  entries: number;
  lost: number;
  queuedBytes: number;
}

export interface MetricsServer {
  /** Where the metrics are, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** Stops serving (open scrapes are cut). Idempotent. */
  close(): Promise<void>;
}

/** A metrics endpoint that cannot be served: `EADDRINUSE`, `EADDRNOTAVAIL`, `ENOTFOUND`, `ENOPROMCLIENT`, ... */
export class MetricsError extends CodedError {}

const TRANSPORTS: readonly Transport[] = ['unix', 'tcp'];

function loadPromClient(): typeof PromClient {
  // Loaded here, on demand: see the file comment.
  return loadPeer<typeof PromClient>('prom-client', 'metrics', (message, cause) => new MetricsError('ENOPROMCLIENT', message, { cause }));
}

/**
 * Starts counting (call before `connector.start()` so that no event goes uncounted) and
 * serves the metrics over HTTP. Rejects with a MetricsError when the address cannot be bound.
 */
export async function startMetrics(options: MetricsOptions): Promise<MetricsServer> {
  const prom = loadPromClient();
  const { connector: conn } = options;
  const server = options.server ?? null;
  const register = new prom.Registry();
  prom.collectDefaultMetrics({ register });

  // ---- what the daemon received: counted as it arrives, published on scrape
  const byEvent = new Map<string, number>(conn.subscribed.map((e) => [e, 0]));
  let seenFromQueue = 0; // events taken off the reader thread's queue (its own `lost` reports are not queued)
  // Counted from the reader's lines by their kinds: no event object is made for this; the
  // connector parses only (rare) lost lines for 'lost', whose source tells what was queued.
  const lostKind = KIND_NAMES.indexOf('lost');
  const onLines = (lines: LineBatch): void => {
    for (const kind of lines.kinds) {
      if (kind === lostKind) continue;
      seenFromQueue++;
      const name = KIND_NAMES[kind];
      if (name !== undefined) byEvent.set(name, (byEvent.get(name) ?? 0) + 1);
    }
  };
  const onLost = (ev: LostEvent): void => {
    if (ev.source !== 'queue') seenFromQueue++;
  };
  conn.on('lines', onLines);
  conn.on('lost', onLost);

  // ---- drops per client, bounded: a new id per connection would make a label without bound
  // (one series per client ever connected), so drops are summed per transport: the live
  // clients' from stats(), the departed ones' from their 'clientClose'.
  const departedDrops: Record<Transport, number> = { unix: 0, tcp: 0 };
  const liveDrops = new Map<number, { transport: Transport; dropped: number }>();
  const onClientClose = (c: { id: number; transport: Transport; dropped: number }): void => {
    departedDrops[c.transport] += c.dropped;
    liveDrops.delete(c.id);
  };
  server?.on('clientClose', onClientClose);

  const mirror = (name: string, help: string, read: () => number): void => {
    new prom.Counter({
      name,
      help,
      registers: [register],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  const gauge = (name: string, help: string, read: () => number): void => {
    new prom.Gauge({
      name,
      help,
      registers: [register],
      collect() {
        this.set(read());
      },
    });
  };
  const cstats = () => conn.stats();
  const sstats = () => server?.stats() ?? null;

  new prom.Counter({
    name: 'procmonitor_events_total',
    help: 'Process events received from the kernel connector, by type (loss reports are in procmonitor_lost_events_total)',
    labelNames: ['event'],
    registers: [register],
    collect() {
      this.reset();
      for (const [event, n] of byEvent) this.inc({ event }, n);
    },
  });
  new prom.Counter({
    name: 'procmonitor_lost_events_total',
    help: 'Events lost, by where: kernel (socket overflow or sequence gap), queue (the JS thread fell behind the reader thread), client (dropped for clients that read too slowly)',
    labelNames: ['source'],
    registers: [register],
    collect() {
      const c = cstats();
      this.reset();
      this.inc({ source: 'kernel' }, c?.lostKernel ?? 0);
      this.inc({ source: 'queue' }, c?.lostQueue ?? 0);
      this.inc({ source: 'client' }, sstats()?.droppedEvents ?? 0);
    },
  });

  // ---- the kernel side and the reader thread (ProcConnector.stats())
  mirror('procmonitor_kernel_events_received_total', 'Proc events read from the kernel (before filtering)', () => cstats()?.received ?? 0);
  mirror('procmonitor_kernel_enobufs_total', 'Receive buffer overflows (ENOBUFS) reported by the kernel', () => cstats()?.enobufs ?? 0);
  mirror('procmonitor_kernel_malformed_total', 'Unusable netlink messages', () => cstats()?.malformed ?? 0);
  gauge('procmonitor_kernel_rcvbuf_bytes', 'Socket receive buffer granted by the kernel, bytes', () => cstats()?.rcvbuf ?? 0);
  gauge('procmonitor_kernel_rcvbuf_forced', '1 if the receive buffer was forced (SO_RCVBUFFORCE, privileged), else 0', () => (cstats()?.rcvbufForced ? 1 : 0));
  gauge('procmonitor_kernel_filter', '1 if the kernel filters event kinds for the daemon (Linux 6.6+), else 0', () => (cstats()?.kernelFilter ? 1 : 0));
  mirror('procmonitor_queue_events_total', 'Events queued by the reader thread for the JS thread', () => cstats()?.delivered ?? 0);
  gauge('procmonitor_queue_depth', 'Events queued by the reader thread that the JS thread has not taken yet', () => Math.max(0, (cstats()?.delivered ?? 0) - seenFromQueue));
  gauge('procmonitor_process_table_size', 'Processes remembered so that their exits say what exited', () => cstats()?.tableSize ?? 0);
  mirror('procmonitor_process_table_full_total', 'Processes not remembered because the table was full', () => cstats()?.tableFull ?? 0);

  // ---- clients (BroadcastServer.stats())
  new prom.Gauge({
    name: 'procmonitor_clients',
    help: 'Clients streaming events now, by transport',
    labelNames: ['transport'],
    registers: [register],
    collect() {
      const count: Record<Transport, number> = { unix: 0, tcp: 0 };
      for (const c of sstats()?.perClient ?? []) count[c.transport]++;
      for (const t of TRANSPORTS) this.set({ transport: t }, count[t]);
    },
  });
  new prom.Gauge({
    name: 'procmonitor_client_backlog_bytes_max',
    help: 'Bytes waiting in the daemon for the most backlogged live client, by transport (a stalled client shows here)',
    labelNames: ['transport'],
    registers: [register],
    collect() {
      const max: Record<Transport, number> = { unix: 0, tcp: 0 };
      for (const c of sstats()?.perClient ?? []) max[c.transport] = Math.max(max[c.transport], c.buffered);
      for (const t of TRANSPORTS) this.set({ transport: t }, max[t]);
    },
  });
  new prom.Counter({
    name: 'procmonitor_client_dropped_events_total',
    help: 'Events dropped for clients that read too slowly (policy drop), summed per transport over every client',
    labelNames: ['transport'],
    registers: [register],
    collect() {
      for (const c of sstats()?.perClient ?? []) {
        const seen = liveDrops.get(c.id);
        liveDrops.set(c.id, { transport: c.transport, dropped: Math.max(seen?.dropped ?? 0, c.dropped) });
      }
      const sum: Record<Transport, number> = { ...departedDrops };
      for (const c of liveDrops.values()) sum[c.transport] += c.dropped;
      this.reset();
      for (const t of TRANSPORTS) this.inc({ transport: t }, sum[t]);
    },
  });
  gauge('procmonitor_pending_connections', 'TCP connections waiting to authenticate now', () => sstats()?.pending ?? 0);
  gauge('procmonitor_password_checks_waiting', 'Password lines waiting for their check (global failure budget, per-network delay)', () => sstats()?.passwordWaiting ?? 0);
  mirror('procmonitor_password_checks_total', 'TCP passwords checked', () => sstats()?.passwordChecks ?? 0);
  mirror('procmonitor_password_failures_total', 'TCP passwords wrong or too long', () => sstats()?.passwordFailures ?? 0);
  mirror('procmonitor_clients_accepted_total', 'Clients ever accepted for streaming', () => sstats()?.totalClients ?? 0);
  mirror('procmonitor_client_sent_events_total', 'Events written to clients, over every client', () => sstats()?.sentEvents ?? 0);
  mirror('procmonitor_client_sent_bytes_total', 'Bytes written to clients, over every client', () => sstats()?.sentBytes ?? 0);
  mirror('procmonitor_slow_client_disconnects_total', 'Clients disconnected for reading too slowly (policy disconnect)', () => sstats()?.slowDisconnects ?? 0);
  new prom.Counter({
    name: 'procmonitor_connections_rejected_total',
    help: 'Connections turned away before streaming, by reason',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      const r = sstats()?.rejected;
      this.reset();
      for (const reason of REJECT_REASONS) this.inc({ reason }, r?.[reason] ?? 0);
    },
  });

  // ---- syslog (--syslog)
  const syslog = options.syslog;
  if (syslog) {
    mirror('procmonitor_syslog_messages_total', 'Messages handed to syslog', () => syslog.stats().sent);
    mirror('procmonitor_syslog_dropped_total', 'Messages dropped because syslog was unreachable or too slow', () => syslog.stats().dropped);
    gauge('procmonitor_syslog_queued_bytes', 'Bytes waiting in the daemon for syslog', () => syslog.stats().queuedBytes);
  }

  // ---- journald (--journald)
  const journald = options.journald;
  if (journald) {
    mirror('procmonitor_journald_entries_total', 'Entries journald took (events, log lines, lost entries)', () => journald.stats().entries);
    mirror('procmonitor_journald_lost_total', 'Events dropped because journald was absent or too slow', () => journald.stats().lost);
    gauge('procmonitor_journald_queued_bytes', 'Bytes waiting in the daemon for journald', () => journald.stats().queuedBytes);
  }

  // ---- HTTP
  const httpServer = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('Method not allowed\n');
      return;
    }
    register.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': register.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`cannot collect metrics: ${err.message}\n`);
      },
    );
  });
  httpServer.maxConnections = 64;
  httpServer.requestTimeout = 10000;
  const detach = (): void => {
    conn.off('lines', onLines);
    conn.off('lost', onLost);
    server?.off('clientClose', onClientClose);
    register.clear();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen({ host: options.host, port: options.port }, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    detach();
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.message;
    throw new MetricsError(e.code ?? 'EIO', `--metrics: cannot serve on ${hostPort(options.host, options.port)}: ${why}`, { cause: err });
  }
  httpServer.on('error', () => undefined); // after listen(): per-connection errors are the clients'
  const bound = httpServer.address();
  const port = bound && typeof bound === 'object' ? bound.port : options.port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${hostPort(options.host, port)}/metrics`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        detach();
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
      return closing;
    },
  };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
