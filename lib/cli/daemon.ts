/**
 * The procMonitor daemon: ProcConnector wired to a broadcast server (Unix socket, TCP) or to
 * stdout. Logs go to stderr, never into an event stream. Its command line: daemon-args.ts;
 * --direct: direct.ts; how it stops: shutdown.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProcConnector, ProcConnectorError } from '../connector';
import { subscribeLines } from '../source';
import { ecsSource } from '../ecs';
import { BroadcastServerError, createBroadcastServer, type BroadcastServer, type BroadcastServerOptions } from '../server';
import { startMetrics, type MetricsServer } from '../outputs/metrics';
import { SyslogSender, targetText } from '../outputs/syslog';
import { createNatsPublisher, type NatsPublisher } from '../outputs/nats';
import { FileOutput } from '../outputs/file';
import { JournaldOutput } from '../outputs/journald';
import { NAME, parseArgs, USAGE, type DaemonOptions } from './daemon-args';
import { directWriter } from './direct';
import { DaemonLog } from './log';
import { Shutdown } from './shutdown';
import { TRACE_USAGE, traceMain } from './trace';
import { completionMain } from './completion';
import { CLIENT_USAGE } from './client';

export { DAEMON_FLAGS, DEFAULT_SOCKET, parseArgs, USAGE, USAGE_WIDTH, type DaemonOptions } from './daemon-args';
export { useColor } from './direct';
export { SHUTDOWN_MS } from './shutdown';

/** How long NATS may take to confirm what is pending at shutdown. */
const NATS_CLOSE_MS = 300;

/**
 * The daemon's secrets, never to leave in an event or a snapshot record (its own argv holds
 * `--auth PASSWORD`; a NATS URL may hold a user's password or a token): the TCP password, the
 * NATS password and token, and the credentials of each NATS URL.
 */
function secretsOf(o: DaemonOptions): string[] {
  const out = new Set<string>();
  const pw = o.tcp ? (o.tcp.password ?? (o.tcp.passwordEnv ? process.env[o.tcp.passwordEnv] : undefined)) : undefined;
  if (pw) out.add(pw);
  for (const v of [o.nats?.pass, o.nats?.token]) if (typeof v === 'string' && v !== '') out.add(v);
  const servers = [o.nats?.servers ?? []].flat().flatMap((s) => s.split(','));
  for (const server of servers) {
    // (nats://user:pass@host, or user:pass@host: the scheme is optional.)
    const m = /^(?:[a-z]+:\/\/)?([^@/]*)@/i.exec(server.trim());
    if (!m) continue;
    const userinfo = m[1] ?? '';
    const colon = userinfo.indexOf(':');
    // user:password, or a token alone
    const secret = colon >= 0 ? userinfo.slice(colon + 1) : userinfo;
    if (secret) {
      out.add(secret);
      try {
        out.add(decodeURIComponent(secret));
      } catch {
        /* not %-encoded */
      }
    }
  }
  return [...out].filter((x) => Buffer.byteLength(x) <= 4096 && !x.includes('\0')).slice(0, 64);
}

function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * What to do about a permission error while setting up the server (appended to its line), or
 * ''. The usual case: an unprivileged user and the default socket in /var/run.
 */
function remedy(e: BroadcastServerError, o: DaemonOptions, env: NodeJS.ProcessEnv = process.env): string {
  if (e.code !== 'EACCES' && e.code !== 'EPERM' && e.code !== 'EROFS') return '';
  if (o.socket && e.message.includes(path.dirname(o.socket))) {
    const example = env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, 'procMonitor.sock') : '$XDG_RUNTIME_DIR/procMonitor.sock';
    return `; use --socket PATH in a directory you can write (e.g. --socket ${example}), or --direct`;
  }
  if (o.tcp && o.tcp.port < 1024 && e.message.includes(`:${o.tcp.port}`)) {
    return '; a port below 1024 needs CAP_NET_BIND_SERVICE: use one from 1024 up';
  }
  return '';
}

/** Runs the daemon until SIGINT/SIGTERM; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'trace') return traceMain(argv.slice(1));
  if (argv[0] === 'completion') {
    const commands = [
      { name: NAME, help: USAGE, subcommands: { trace: TRACE_USAGE, completion: null } },
      { name: 'procMonitor-client', help: CLIENT_USAGE },
    ];
    return completionMain(argv.slice(1), commands);
  }
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    new DaemonLog(false).error((err as Error).message);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (opts === 'version') {
    process.stdout.write(`${NAME} ${version()}\n`);
    return 0;
  }
  const o = opts;
  const out = new DaemonLog(o.quiet);
  if (o.printConfig !== null) {
    for (const w of o.warnings) out.warn(w);
    process.stdout.write(o.printConfig);
    return 0;
  }
  const { info: log, error: fail } = out;
  let sys: SyslogSender | null = null;
  let journal: JournaldOutput | null = null;
  try {
    if (o.syslog) out.add((sys = new SyslogSender({ ...o.syslog, report: out.report })));
    if (o.journald) out.add((journal = new JournaldOutput({ socketPath: o.journald.socketPath, report: out.report })));
  } catch (err) {
    fail((err as Error).message);
    return 1;
  }
  if (o.syslog) log(`syslog: sending log lines${o.syslog.events ? ' and events' : ''} to ${targetText(o.syslog.target)}`);
  if (o.journald) log(`journald: sending log lines and events to ${o.journald.socketPath}`);
  const shutdown = new Shutdown(log);
  try {
    return await daemon(o, { log, fail, warn: out.warn, sys, journal }, shutdown);
  } finally {
    // After a signal, what is left of the shutdown's time; otherwise the log outputs' usual grace.
    const grace = shutdown.syslogGrace();
    let timer: NodeJS.Timeout | undefined;
    const closing = [sys?.close(grace), journal?.close(grace)].filter((p) => p !== undefined);
    if (closing.length > 0) await Promise.race([Promise.all(closing), new Promise<void>((resolve) => (timer = setTimeout(resolve, grace + 20)))]);
    clearTimeout(timer);
  }
}

/** Where the daemon's own lines go (see DaemonLog), and the log outputs that take events too. */
interface Logs {
  log: (line: string) => void;
  fail: (line: string) => void;
  warn: (line: string) => void;
  sys: SyslogSender | null;
  journal: JournaldOutput | null;
}

/** The daemon proper, between parsing and the syslog sender's last flush. */
async function daemon(o: DaemonOptions, logs: Logs, shutdown: Shutdown): Promise<number> {
  const { log, fail, sys, journal } = logs;
  // Signals are handled from the start: one that arrives while starting up stops the
  // daemon as soon as it is up; SIGHUP never kills it.
  shutdown.listen();

  const conn = new ProcConnector({
    events: o.events,
    threads: o.threads,
    rcvbuf: o.rcvbuf,
    ancestors: o.ancestors,
    ancestorDepth: o.ancestorDepth,
    cgroups: o.cgroups,
    cwd: o.cwd,
    login: o.login,
    tty: o.tty,
    namespaces: o.namespaces,
    env: o.env,
    ...(o.filter ? { filter: o.filter } : {}),
    redact: secretsOf(o),
    redactPatterns: o.redactPatterns,
    redactDefaults: o.redactDefaults,
  });
  const server = await serve(o, conn, logs);
  if (typeof server === 'number') return server;
  let metrics: MetricsServer | null = null;
  if (o.metrics) {
    try {
      metrics = await startMetrics({ ...o.metrics, connector: conn, server, syslog: sys, journald: journal });
    } catch (err) {
      fail((err as Error).message);
      await server?.close();
      return ['EADDRINUSE', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN'].includes((err as NodeJS.ErrnoException).code ?? '') ? 2 : 1;
    }
    log(`metrics at ${metrics.url}`);
  }
  // What the daemon writes itself: the reader's lines as they are, or as ECS (--schema ecs).
  const own = o.schema === 'ecs' ? ecsSource(conn) : conn;
  if (sys && o.syslog?.events) subscribeLines(own, sys.lines);
  if (journal) subscribeLines(conn, journal.lines);
  let file: FileOutput | null = null;
  if (o.output) {
    try {
      file = new FileOutput({ source: own, path: o.output.path, maxBytes: o.output.maxBytes, keep: o.output.keep, log }).start();
    } catch (err) {
      fail((err as Error).message);
      await Promise.all([server?.close(), metrics?.close()]);
      return 1;
    }
    const f = file;
    shutdown.onHangup = () => f.reopen();
  }
  if (o.direct) directWriter(conn, o.format, log, o.schema, own);
  conn.on('lost', (ev) => log(`lost ${ev.count} events (${ev.source})`));
  // The reader thread failing (the socket broke under it) is fatal: say why, stop as on a
  // signal, exit 1.
  conn.on('error', (err) => {
    fail(err.message);
    shutdown.status = 1;
    shutdown.stop('reader failure');
  });
  try {
    conn.start();
  } catch (err) {
    fail(err instanceof ProcConnectorError ? err.message : `cannot subscribe: ${(err as Error).message}`);
    await Promise.all([server?.close(), metrics?.close(), file?.close()]);
    return 1;
  }
  // NATS never stops the daemon: a server that is down is retried forever (see lib/outputs/nats.ts).
  let nats: NatsPublisher | null = null;
  try {
    nats = o.nats ? createNatsPublisher({ source: own, ...o.nats, log, closeTimeoutMs: NATS_CLOSE_MS }).start() : null;
  } catch (err) {
    fail((err as Error).message);
    conn.stop();
    await Promise.all([server?.close(), file?.close()]);
    return 1;
  }
  started(o, server, nats, logs);
  return shutdown.stopped(
    () => {
      shutdown.onHangup = null; // (no reopening while it closes)
      conn.stop();
      return Promise.all([server?.close(), metrics?.close(), nats?.close(), file?.close(300)]);
    },
    sys !== null || journal !== null,
  );
}

/** The broadcast server, listening (null with neither --socket nor --tcp), or the exit status of its failure. */
async function serve(o: DaemonOptions, conn: ProcConnector, { log, fail }: Logs): Promise<BroadcastServer | null | number> {
  if (!o.socket && !o.tcp) return null;
  const sopts: BroadcastServerOptions = {
    source: conn,
    maxClients: o.clients,
    maxClientsPerUser: o.clientsPerUser,
    peerVisibility: o.visibility,
    replayEvents: o.replay,
    slowClient: o.slowClient,
    stallTimeoutMs: o.stallTimeout * 1000,
    log,
    ...(o.socket ? { unix: { path: o.socket, mode: o.socketMode, ...(o.socketGroup !== undefined ? { group: o.socketGroup } : {}) } } : {}),
    ...(o.tcp ? { tcp: o.tcp } : {}),
  };
  try {
    const server = createBroadcastServer(sopts);
    await server.listen();
    return server;
  } catch (err) {
    const e = err as BroadcastServerError;
    fail(e.message + remedy(e, o));
    // A port in use or taken by another instance is a usage problem; other failures are runtime.
    const portTaken = e.code === 'EADDRINUSE' && /^cannot listen on tcp /.test(e.message);
    // So is a --bind address this host does not have, or a name that does not resolve.
    const badBind = (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') && /^cannot listen on tcp /.test(e.message);
    return portTaken || badBind || e.code === 'EINVAL' || e.code === 'ENOPASSWORD' ? 2 : 1;
  }
}

/** Says that the daemon is up, and what it serves; then the start's warnings. */
function started(o: DaemonOptions, server: BroadcastServer | null, nats: NatsPublisher | null, { log, warn }: Logs): void {
  const where = [
    o.socket ? `unix:${o.socket}` : null,
    o.tcp ? `tcp${o.tcp.tls ? '+tls' : ''}:${o.tcp.host}:${server?.address().tcp?.port ?? o.tcp.port}` : null,
    o.direct ? 'stdout' : null,
    nats ? `nats:${nats.servers.join(',')}` : null,
    o.output ? `file:${o.output.path}` : null,
    o.journald ? `journald:${o.journald.socketPath}` : null,
  ].filter(Boolean);
  log(`watching ${o.events.join(',')}${o.threads ? ' (with threads)' : ''}, serving ${where.join(' and ')}${server ? `, ${o.clients} clients at most` : ''}`);
  // Warnings are said once it is up (a start that fails says only why), even with --quiet:
  // they are about the daemon's own safety.
  for (const w of o.warnings) warn(w);
}
