/**
 * The procMonitor daemon: ProcConnector wired to a broadcast server (Unix socket, TCP) or to
 * stdout. Logs go to stderr, never into an event stream.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ProcConnector, ProcConnectorError } from '../connector';
import { subscribeLines } from '../source';
import { EVENT_NAMES, parseEventList, toLine, type ProcEvent } from '../events';
import { BroadcastServerError, createBroadcastServer, type BroadcastServer, type BroadcastServerOptions, type TcpTlsOptions } from '../server';
import { formatEvent } from './format';
import { parseFlags, readTlsFlags, UsageError, wholeNumber, type FlagSpec } from './args';
import { startMetrics, type MetricsAddress, type MetricsServer } from '../outputs/metrics';
import { parseMetricsAddress } from './metrics';
import { SyslogSender, targetText } from '../outputs/syslog';
import { syslogConfig, type SyslogConfig } from './syslog';
import { createNatsPublisher, type NatsPublisher } from '../outputs/nats';
import { natsCliOptions, NATS_FLAGS, NATS_USAGE, type NatsCliOptions } from './nats';
import { readSecretFile, type SecretFile } from '../secret';

const NAME = 'procMonitor';
export const DEFAULT_SOCKET = '/var/run/procMonitor.sock';
const DEFAULT_EVENTS = 'fork,exec,exit';
/**
 * After SIGINT/SIGTERM the whole shutdown (clients, socket file, metrics, NATS, and syslog's
 * last flush) takes at most this long: the process exits well within a second.
 */
export const SHUTDOWN_MS = 800;
/** The end of SHUTDOWN_MS that is syslog's, after everything else has closed and logged. */
const SYSLOG_CLOSE_MS = 200;
/** How long NATS may take to confirm what is pending at shutdown. */
const NATS_CLOSE_MS = 300;

/** Columns of --help: no line is wider; option texts start at OPTION_TEXT. */
export const USAGE_WIDTH = 100;
const OPTION_TEXT = 25;

/** An option's text, wrapped at USAGE_WIDTH, its first line after `label`. */
function option(label: string, text: string): string {
  const lines: string[] = [];
  let line = `  ${label}`.padEnd(OPTION_TEXT - 1);
  for (const word of text.split(' ')) {
    if (line.length + 1 + word.length > USAGE_WIDTH) {
      lines.push(line);
      line = ' '.repeat(OPTION_TEXT - 1);
    }
    line += ` ${word}`;
  }
  return [...lines, line].join('\n');
}

export const USAGE = `Usage: ${NAME} [options]

Linux process events (fork, exec, exit, ...) from the kernel's proc connector, served to
clients as JSON lines over a Unix socket (the default), over TCP with a password, or
printed on stdout.

Options:
${option('-e, --events LIST', `events to report, comma-separated: ${EVENT_NAMES.join(', ')}, or all (default: ${DEFAULT_EVENTS})`)}
  -c, --clients N        clients served at once, at most (default: 10)
      --clients-per-user N
                         Unix-socket clients one local user other than root and the
                         daemon's own may have at once; such users together always leave
                         2 of --clients to root (default: --clients / 4, rounded up)
  -s, --socket PATH      serve a Unix domain socket at PATH (default: ${DEFAULT_SOCKET};
                         served when none of --tcp, --direct, --nats is given, or when given)
      --socket-mode MODE file mode of the socket, octal (default: 0666)
      --socket-group GRP group of the socket file (name or gid; default: unchanged)
      --peer-visibility V
                         what a socket client other than root and the daemon's user sees:
                         host, what /proc lets it see (only its own processes where /proc
                         has hidepid), own, only its own processes, or all (default: host)
  -t, --tcp PORT         serve TCP on PORT (1-65535); clients must send the password
                         (default: off)
  -a, --auth PASSWORD    the TCP password (default: none). Visible to every user in \`ps\`:
                         prefer --auth-file or the PROCMONITOR_AUTH environment variable
      --auth-file FILE   read the TCP password from FILE (one trailing newline ignored;
                         default: none): a regular file of at most 4 KiB that only its
                         owner may write; a warning if others may read it
      --bind HOST        TCP address to bind, an IP address or a host name of this host
                         (default: 0.0.0.0, every IPv4 interface)
      --tls-cert FILE    with --tcp: serve TLS with this certificate (PEM; may be followed
                         by intermediate CA certificates); the password handshake runs inside
                         (default: none, plain TCP)
      --tls-key FILE     the certificate's private key (PEM, unencrypted; default: none)
      --tls-ca FILE      require client certificates signed by this CA (PEM; default: none,
                         no client certificate asked for)
  -d, --direct           print events on stdout instead of serving them (default: off)
      --format FMT       with --direct: json, one object a line, or text, aligned columns
                         (colour on a terminal, see NO_COLOR; default: json)
      --threads          report threads too (clone/exit of non-leader tasks; default: off)
      --slow-client POL  a client that reads too slowly: drop (it catches up from the
                         replay ring; what the ring let go is one "lost" line with the
                         count) or disconnect (default: drop)
      --stall-timeout S  close a client that has taken none of the bytes waiting for it
                         for S seconds (e.g. its host vanished); 0: never (default: 60)
      --rcvbuf BYTES     kernel socket receive buffer (default: 8388608)
      --ancestors LIST   events that carry their ancestors (parents up to init, each
                         with pid, exec_id, comm, exe), or none (default: exec)
      --ancestor-depth N ancestors listed at most per event, 1-1024 (default: 16)
      --cgroups yes|no   cgroup and container_id on fork, exec, exit (default: yes)
      --replay N         events kept for clients that resume ({"resume_from": N}) or fall
                         behind (default: 65536); 0 turns request lines off
      --metrics HOST:PORT
                         serve Prometheus metrics at http://HOST:PORT/metrics (e.g.
                         127.0.0.1:9464; :PORT for every interface; default: off)
      --syslog           send the log lines to syslog too, as RFC 5424 (daemon.info,
                         errors daemon.err; --quiet or not; default: off)
      --syslog-socket PATH
                         the local syslog socket, datagram or stream (default: /dev/log)
      --syslog-target T  send to unix:PATH, udp://HOST:PORT or tcp://HOST:PORT instead
                         (default: none, the local socket)
      --syslog-events    send every event to syslog too, one JSON line each
                         (local0.info; lost events local0.warning; default: off)
      --syslog-facility F
                         facility of --syslog-events (default: local0)
${NATS_USAGE}
  -q, --quiet            no log lines on stderr (errors are still printed; default: off)
  -v, --version          print the version and exit
  -h, --help             print this help and exit

Environment:
  PROCMONITOR_AUTH       the TCP password, when neither --auth nor --auth-file is given
  NO_COLOR               set and not empty: no colour in --format text (https://no-color.org)
  FORCE_COLOR            1, 2, 3 or true: colour in --format text even when not on a
                         terminal; 0 or false: never (decides over NO_COLOR, as in Node.js)

Examples:
  ${NAME} --clients 20 --socket /tmp/procMonitor.sock -e exec,fork,exit
  ${NAME} --tcp 8080 --auth mysecretpassword --clients 50 -e exec,fork,exit
  ${NAME} --direct -e exec,fork,exit

Exit status: 0 after SIGINT/SIGTERM, 2 on bad usage, 1 on runtime failures.`;

export interface DaemonOptions {
  events: string[];
  clients: number;
  /** Unix-socket clients per local user other than root and the daemon's own. */
  clientsPerUser: number;
  /** What such a client sees (--peer-visibility). */
  visibility: 'host' | 'all' | 'own';
  socket: string | null;
  socketMode: number;
  socketGroup?: string | number;
  tcp: { port: number; host: string; password?: string; passwordFile?: string; passwordEnv?: string; tls?: TcpTlsOptions } | null;
  direct: boolean;
  format: 'json' | 'text';
  threads: boolean;
  slowClient: 'drop' | 'disconnect';
  /** Seconds; 0: off. */
  stallTimeout: number;
  rcvbuf: number;
  quiet: boolean;
  metrics: MetricsAddress | null;
  syslog: SyslogConfig | null;
  nats: NatsCliOptions | null;
  replay: number;
  ancestors: string;
  ancestorDepth: number;
  cgroups: boolean;
  /** Said on stderr (and syslog) at start: e.g. a password file others may read. */
  warnings: string[];
}

const STRING_FLAGS = [
  'events',
  'clients',
  'clients-per-user',
  'peer-visibility',
  'socket',
  'tcp',
  'auth',
  'auth-file',
  'bind',
  'socket-mode',
  'socket-group',
  'slow-client',
  'stall-timeout',
  'rcvbuf',
  'format',
  'metrics',
  'syslog-socket',
  'syslog-target',
  'syslog-facility',
  'replay',
  'ancestors',
  'ancestor-depth',
  'cgroups',
  ...NATS_FLAGS,
];
const TLS_FLAGS = ['tls-cert', 'tls-key', 'tls-ca'];
const BOOLEAN_FLAGS = ['direct', 'threads', 'quiet', 'version', 'help', 'syslog', 'syslog-events'];
const SHORT: Record<string, string> = { e: 'events', c: 'clients', s: 'socket', t: 'tcp', a: 'auth', d: 'direct', h: 'help', q: 'quiet', v: 'version' };
/** Every flag the daemon knows (each documented in USAGE). */
export const DAEMON_FLAGS: FlagSpec = { string: [...STRING_FLAGS, ...TLS_FLAGS], boolean: BOOLEAN_FLAGS, short: SHORT };

/** Parses the daemon's arguments. Returns 'help' or 'version' for those flags; throws UsageError. */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonOptions | 'help' | 'version' {
  const flags = parseFlags(argv, DAEMON_FLAGS);
  if (flags.on('help')) return 'help';
  if (flags.on('version')) return 'version';
  const str = (name: string): string | undefined => flags.str(name);

  let events: string[];
  const eventsText = str('events') ?? DEFAULT_EVENTS;
  try {
    events = parseEventList(eventsText);
  } catch (err) {
    throw new UsageError(`--events: ${(err as Error).message}`);
  }
  const clientsText = str('clients');
  const clients = clientsText === undefined ? 10 : wholeNumber(clientsText, 'clients', 1, 100000);
  const visibility = str('peer-visibility') ?? 'host';
  if (visibility !== 'host' && visibility !== 'all' && visibility !== 'own') throw new UsageError(`--peer-visibility must be host, own or all, got "${visibility}"`);
  const perUserText = str('clients-per-user');
  const clientsPerUser = perUserText === undefined ? Math.ceil(clients / 4) : wholeNumber(perUserText, 'clients-per-user', 1, 100000);
  const direct = flags.on('direct');
  const tcpText = str('tcp');
  const socketText = str('socket');
  const formatText = str('format');
  if (formatText !== undefined && formatText !== 'json' && formatText !== 'text') {
    throw new UsageError(`--format must be json or text, got "${formatText}"`);
  }
  if (formatText !== undefined && !direct) throw new UsageError('--format applies to --direct output');
  const slowText = str('slow-client');
  if (slowText !== undefined && slowText !== 'drop' && slowText !== 'disconnect') {
    throw new UsageError(`--slow-client must be drop or disconnect, got "${slowText}"`);
  }
  const modeText = str('socket-mode');
  if (modeText !== undefined && !/^0?[0-7]{3}$/.test(modeText)) {
    throw new UsageError(`--socket-mode must be an octal mode such as 0660, got "${modeText}"`);
  }
  const groupText = str('socket-group');
  // (gid 4294967295 is -1 to chown(): "leave the group as it is", never a group.)
  if (groupText !== undefined && /^\d+$/.test(groupText) && Number(groupText) >= 0xffffffff) {
    throw new UsageError(`--socket-group must be a group name or a gid below 4294967295, got "${groupText}"`);
  }
  const stallText = str('stall-timeout');
  const stallTimeout = stallText === undefined ? 60 : wholeNumber(stallText, 'stall-timeout', 0, 86400);
  const rcvbufText = str('rcvbuf');
  const rcvbuf = rcvbufText === undefined ? 8 << 20 : wholeNumber(rcvbufText, 'rcvbuf', 1, 0x7fffffff);
  const replayText = str('replay');
  const replay = replayText === undefined ? 65536 : wholeNumber(replayText, 'replay', 0, 16 << 20);
  const ancestors = str('ancestors') ?? 'exec';
  if (ancestors !== 'none') {
    try {
      parseEventList(ancestors);
    } catch (err) {
      throw new UsageError(`--ancestors: ${(err as Error).message}, or none`);
    }
  }
  const depthText = str('ancestor-depth');
  const ancestorDepth = depthText === undefined ? 16 : wholeNumber(depthText, 'ancestor-depth', 1, 1024);
  const cgroupsText = str('cgroups');
  if (cgroupsText !== undefined && cgroupsText !== 'yes' && cgroupsText !== 'no') throw new UsageError(`--cgroups must be yes or no, got "${cgroupsText}"`);
  const metricsText = str('metrics');
  const metrics = metricsText === undefined ? null : parseMetricsAddress(metricsText);
  const syslog = syslogConfig(flags);

  const warnings: string[] = [];
  let tcp: DaemonOptions['tcp'] = null;
  const auth = str('auth');
  const authFile = str('auth-file');
  const bind = str('bind');
  if (bind !== undefined && net.isIP(bind) === 0 && (/^[\d.]+$/.test(bind) || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(bind))) {
    throw new UsageError(`--bind must be an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0) or a host name, got "${bind}"`);
  }
  if (tcpText !== undefined) {
    const port = wholeNumber(tcpText, 'tcp', 1, 65535);
    if (auth !== undefined && authFile !== undefined) throw new UsageError('give either --auth or --auth-file, not both');
    let filePassword: string | undefined;
    if (authFile !== undefined) {
      let f: SecretFile;
      try {
        f = readSecretFile(authFile, '--auth-file');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (f.text === '') throw new UsageError(`the password file ${authFile} is empty; refusing to serve events unauthenticated`);
      if (f.warning) warnings.push(f.warning);
      filePassword = f.text;
    }
    if (auth === undefined && authFile === undefined && !env.PROCMONITOR_AUTH) {
      throw new UsageError('--tcp needs a password: --auth PASSWORD, --auth-file FILE or PROCMONITOR_AUTH');
    }
    if (auth === '') throw new UsageError('--auth needs a value');
    const tls = readTlsFlags(flags);
    if (tls && (!tls.cert || !tls.key)) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
    // The password's strength, and whether it crosses a network in clear: said at every start.
    const password = auth ?? filePassword ?? env.PROCMONITOR_AUTH ?? '';
    if ([...password].length < 12) {
      warnings.push(
        `warning: the TCP password is ${[...password].length} characters long: at the 5 guesses a second an attacker gets at most, use 12 or more (see the README's threat model)`,
      );
    }
    if (!tls && !isLoopback(bind ?? '0.0.0.0')) {
      warnings.push(
        `warning: TCP on ${bind ?? '0.0.0.0'} without TLS: the password and the events cross the network in clear (give --tls-cert and --tls-key, or --bind 127.0.0.1)`,
      );
    }
    tcp = {
      port,
      host: bind ?? '0.0.0.0',
      ...(auth !== undefined ? { password: auth } : filePassword !== undefined ? { password: filePassword } : { passwordEnv: 'PROCMONITOR_AUTH' }),
      ...(tls?.cert && tls.key ? { tls: { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) } } : {}),
    };
  } else {
    const stray = [
      auth !== undefined && '--auth',
      authFile !== undefined && '--auth-file',
      bind !== undefined && '--bind',
      ...TLS_FLAGS.map((f) => flags.str(f) !== undefined && `--${f}`),
    ];
    const first = stray.find((f): f is string => typeof f === 'string');
    if (first) throw new UsageError(`${first} needs --tcp PORT`);
  }
  const nats = natsCliOptions(flags);
  // The Unix socket is served by default, or when asked for next to --tcp / --direct / --nats.
  const socket = socketText ?? (!direct && !tcp && !nats ? DEFAULT_SOCKET : null);
  if (!socket && (modeText !== undefined || groupText !== undefined)) {
    throw new UsageError('--socket-mode and --socket-group need a Unix socket (--socket PATH)');
  }
  return {
    events,
    clients,
    clientsPerUser,
    visibility,
    socket,
    socketMode: modeText === undefined ? 0o666 : parseInt(modeText, 8),
    ...(groupText !== undefined ? { socketGroup: /^\d+$/.test(groupText) ? Number(groupText) : groupText } : {}),
    tcp,
    direct,
    format: formatText === 'text' ? 'text' : 'json',
    threads: flags.on('threads'),
    slowClient: slowText === 'disconnect' ? 'disconnect' : 'drop',
    stallTimeout,
    rcvbuf,
    replay,
    ancestors,
    ancestorDepth,
    cgroups: cgroupsText !== 'no',
    quiet: flags.on('quiet'),
    metrics,
    syslog,
    nats,
    warnings,
  };
}

/**
 * The daemon's secrets, never to leave in an event or a snapshot record (its own argv holds
 * `--auth PASSWORD`; a NATS URL may hold a user's password or a token): the TCP password and
 * the credentials of each NATS URL.
 */
function secretsOf(o: DaemonOptions): string[] {
  const out = new Set<string>();
  const pw = o.tcp ? (o.tcp.password ?? (o.tcp.passwordEnv ? process.env[o.tcp.passwordEnv] : undefined)) : undefined;
  if (pw) out.add(pw);
  for (const server of o.nats?.servers ?? []) {
    const m = /^[a-z]+:\/\/([^@/]*)@/i.exec(server);
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

/** A loopback address or the name localhost: nothing bound there is reachable from the network. */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const COLORS: Record<string, string> = { fork: '\x1b[36m', exec: '\x1b[32m', exit: '\x1b[33m', lost: '\x1b[31;1m' };

/**
 * Whether `--format text` is coloured: on a terminal, unless NO_COLOR is set and not empty
 * (https://no-color.org). FORCE_COLOR, when set, decides as it does for Node.js itself: 1, 2,
 * 3, true or empty colour even when not on a terminal; anything else (0, false) never.
 */
export function useColor(isTTY: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined) return ['', '1', '2', '3', 'true'].includes(force);
  if (env.NO_COLOR) return false;
  return isTTY;
}

/**
 * Writes the connector's events on stdout, bounded: a stalled reader of stdout loses events,
 * never memory. JSON goes out as the reader's own lines, with no object made.
 */
function directWriter(conn: ProcConnector, format: 'json' | 'text', log: (line: string) => void): void {
  const out = process.stdout;
  const color = format === 'text' && useColor(out.isTTY === true);
  const limit = 16 << 20;
  let dropped = 0;
  const line = (ev: ProcEvent): string => {
    if (format === 'json') return toLine(ev);
    const text = formatEvent(ev);
    const c = color ? COLORS[ev.event] : undefined;
    return (c ? `${c}${text}\x1b[0m` : text) + '\n';
  };
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0); // the reader went away (e.g. `| head`)
    log(`stdout: ${err.message}`);
  });
  const write = (count: number, chunk: () => string | Buffer) => {
    if (out.writableLength > limit) {
      dropped += count;
      return;
    }
    if (dropped) {
      out.write(line({ event: 'lost', time: new Date().toISOString(), count: dropped, source: 'client' }));
      dropped = 0;
    }
    out.write(chunk());
  };
  if (format === 'json') {
    conn.on('lines', (lines) => write(lines.ends.length, () => lines.buf));
  } else {
    conn.on('batch', (batch) => write(batch.length, () => batch.map(line).join('')));
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
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${NAME}: ${(err as Error).message}\n`);
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
  let sys: SyslogSender | null = null;
  const log = (line: string): void => {
    if (!o.quiet) process.stderr.write(`${NAME}: ${line}\n`);
    sys?.log(line, 'info');
  };
  const fail = (line: string): void => {
    process.stderr.write(`${NAME}: ${line}\n`);
    sys?.log(line, 'err');
  };
  if (o.syslog) {
    try {
      sys = new SyslogSender({ ...o.syslog, report: (line) => process.stderr.write(`${NAME}: ${line}\n`) });
    } catch (err) {
      fail((err as Error).message);
      return 1;
    }
    log(`syslog: sending log lines${o.syslog.events ? ' and events' : ''} to ${targetText(o.syslog.target)}`);
  }
  const shutdown: Shutdown = { since: null };
  try {
    return await daemon(o, log, fail, sys, shutdown);
  } finally {
    if (sys) {
      // After a signal, what is left of the shutdown's time; otherwise syslog's usual grace.
      const grace = shutdown.since === null ? 250 : Math.max(20, shutdown.since + SHUTDOWN_MS - Date.now());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([sys.close(grace), new Promise<void>((resolve) => (timer = setTimeout(resolve, grace + 20)))]);
      clearTimeout(timer);
    }
  }
}

/** When the first SIGINT/SIGTERM came (Date.now()), or null. */
interface Shutdown {
  since: number | null;
}

/** The daemon proper, between parsing and the syslog sender's last flush. */
async function daemon(o: DaemonOptions, log: (line: string) => void, fail: (line: string) => void, sys: SyslogSender | null, shutdown: Shutdown): Promise<number> {
  // Signals are handled from the start: one that arrives while starting up stops the
  // daemon as soon as it is up; SIGHUP never kills it.
  let stopper: (() => void) | null = null;
  let pendingSignal = false;
  const onSignal = (sig: string) => {
    if (pendingSignal) return;
    pendingSignal = true;
    shutdown.since = Date.now();
    log(`${sig}: stopping`);
    stopper?.();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => log('SIGHUP ignored (SIGINT or SIGTERM stop the daemon)'));

  const conn = new ProcConnector({
    events: o.events,
    threads: o.threads,
    rcvbuf: o.rcvbuf,
    ancestors: o.ancestors,
    ancestorDepth: o.ancestorDepth,
    cgroups: o.cgroups,
    redact: secretsOf(o),
  });
  let server: BroadcastServer | null = null;
  if (o.socket || o.tcp) {
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
      server = createBroadcastServer(sopts);
      await server.listen();
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
  let metrics: MetricsServer | null = null;
  if (o.metrics) {
    try {
      metrics = await startMetrics({ ...o.metrics, connector: conn, server, syslog: sys });
    } catch (err) {
      fail((err as Error).message);
      await server?.close();
      return ['EADDRINUSE', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN'].includes((err as NodeJS.ErrnoException).code ?? '') ? 2 : 1;
    }
    log(`metrics at ${metrics.url}`);
  }
  if (sys && o.syslog?.events) subscribeLines(conn, sys.lines); // (the reader's lines as they are)
  if (o.direct) directWriter(conn, o.format, log);
  conn.on('lost', (ev) => log(`lost ${ev.count} events (${ev.source})`));
  // The reader thread failing (the socket broke under it) is fatal: say why, stop as on a
  // signal, exit 1.
  let status = 0;
  conn.on('error', (err) => {
    fail(err.message);
    status = 1;
    onSignal('reader failure');
  });
  try {
    conn.start();
  } catch (err) {
    fail(err instanceof ProcConnectorError ? err.message : `cannot subscribe: ${(err as Error).message}`);
    await Promise.all([server?.close(), metrics?.close()]);
    return 1;
  }
  // NATS never stops the daemon: a server that is down is retried forever (see lib/outputs/nats.ts).
  let nats: NatsPublisher | null = null;
  try {
    nats = o.nats ? createNatsPublisher({ source: conn, ...o.nats, log, closeTimeoutMs: NATS_CLOSE_MS }).start() : null;
  } catch (err) {
    fail((err as Error).message);
    conn.stop();
    await server?.close();
    return 1;
  }
  const where = [
    o.socket ? `unix:${o.socket}` : null,
    o.tcp ? `tcp${o.tcp.tls ? '+tls' : ''}:${o.tcp.host}:${server?.address().tcp?.port ?? o.tcp.port}` : null,
    o.direct ? 'stdout' : null,
    nats ? `nats:${nats.servers.join(',')}` : null,
  ].filter(Boolean);
  log(`watching ${o.events.join(',')}${o.threads ? ' (with threads)' : ''}, serving ${where.join(' and ')}${server ? `, ${o.clients} clients at most` : ''}`);
  // Warnings are said once it is up (a start that fails says only why), even with --quiet:
  // they are about the daemon's own safety.
  for (const w of o.warnings) {
    process.stderr.write(`${NAME}: ${w}\n`);
    sys?.log(w, 'warning');
  }

  return new Promise<number>((resolve) => {
    stopper = () => {
      // Never hang on shutdown: whatever is still open by then is abandoned (the process exits).
      // Syslog's last flush comes after, within SHUTDOWN_MS too. (A signal that came while
      // starting up still leaves the clients' grace to close cleanly.)
      const budget = SHUTDOWN_MS - (sys ? SYSLOG_CLOSE_MS : 50);
      const left = Math.max(300, (shutdown.since ?? Date.now()) + budget - Date.now());
      setTimeout(() => resolve(status), left).unref();
      conn.stop();
      void Promise.all([server?.close(), metrics?.close(), nats?.close()]).then(
        () => resolve(status),
        () => resolve(status),
      );
    };
    if (pendingSignal) stopper();
  });
}
