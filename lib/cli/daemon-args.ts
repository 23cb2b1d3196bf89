/**
 * The procMonitor daemon's command line: its --help text and the parser of its flags into
 * DaemonOptions (checked in full before anything starts: a mistake is exit status 2).
 */
import { EVENT_NAMES, parseEventList } from '../events';
import { SCHEMAS, type Schema } from '../ecs';
import * as fs from 'node:fs';
import { UsageError, wholeNumber, type FlagSpec, type Flags } from './args';
import { layeredFlags, printConfig, withOrigin, type ConfigSpec, type Layered } from './config';
import { tcpFlags, TLS_FLAGS, type TcpCliOptions } from './daemon-tcp';
import type { MetricsAddress } from '../outputs/metrics';
import { parseMetricsAddress } from './metrics';
import { syslogConfig, type SyslogConfig } from './syslog';
import { outputConfig, OUTPUT_FLAGS, OUTPUT_USAGE, type OutputConfig } from './output';
import { journaldConfig, JOURNALD_BOOLEAN_FLAGS, JOURNALD_STRING_FLAGS, JOURNALD_USAGE, type JournaldConfig } from './journald';
import { natsCliOptions, NATS_FLAGS, NATS_USAGE, type NatsCliOptions } from './nats';
import { patternError, type EventFilter } from '../filter';
import { filterFlags, filterUsage, FILTER_BOOLEAN_FLAGS, FILTER_STRING_FLAGS } from './filter-flags';

export const NAME = 'procMonitor';
export const DEFAULT_SOCKET = '/var/run/procMonitor.sock';
const DEFAULT_EVENTS = 'fork,exec,exit';

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
       ${NAME} trace [options] -- COMMAND [ARGS...]   (see ${NAME} trace --help)
       ${NAME} completion bash|zsh                 (a shell completion script)

Linux process events (fork, exec, exit, ...) from the kernel's proc connector, served to
clients as JSON lines over a Unix socket (the default), over TCP with a password, or
printed on stdout. \`trace\` runs a command and reports every process it ran.

Options:
${option('-e, --events LIST', `events to report, comma-separated: ${EVENT_NAMES.join(', ')}, or all (default: ${DEFAULT_EVENTS})`)}
  -c, --clients N        clients served at once, at most (default: 10)
      --clients-per-user N
                         Unix-socket clients one local user other than root and the
                         daemon's own may have at once; such users together always leave
                         2 of --clients to root (default: --clients / 4, rounded up)
  -s, --socket PATH      serve a Unix domain socket at PATH (default: ${DEFAULT_SOCKET};
                         served when none of --tcp, --direct, --nats, --output, --journald
                         is given, or when given)
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
      --schema S         the fields of the JSON events the daemon writes itself (--direct,
                         --output, --nats, --syslog-events): default, or ecs (Elastic Common
                         Schema: @timestamp, event.action, process.pid, ...; socket and TCP
                         clients ask for it in their request) (default: default)
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
      --cgroups yes|no   cgroup and container_id on every event (default: yes)
      --cwd yes|no       cwd, the working directory at its last exec, on every event
                         (default: yes)
      --login yes|no     auid, login_user (the user who logged in, kept across su and
                         sudo) and sessionid on every event (default: yes)
      --tty yes|no       tty, the controlling terminal (pts/3; null: none) on every event
                         (default: yes)
      --namespaces yes|no
                         pidns, mntns, netns (namespace inode numbers) and nspid (the pid
                         in its own pid namespace) on every event (default: no)
      --env LIST         environment variables, by name, to report as env on every event,
                         e.g. CI_JOB_ID,KUBERNETES_SERVICE_HOST (default: none)
${filterUsage(false)}
      --redact PATTERN   in each argument (and env value) that matches, show what follows
                         '=' (or all of it) as *** (repeatable; default: none)
      --redact-defaults  hide the secrets command lines carry in practice: --password=,
                         --token VALUE, mysql -pSECRET, Authorization:, *_TOKEN=,
                         AWS_SECRET_ACCESS_KEY=, URL passwords (default: off)
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
${OUTPUT_USAGE}
${JOURNALD_USAGE}
      --config FILE      read options from FILE, YAML, one key per long option (e.g.
                         "clients: 20", "direct: true", "match: [comm=sshd]"); the command
                         line and PROCMONITOR_* decide over it (default: none)
      --print-config     print the options in effect, as YAML with secrets masked, and exit
  -q, --quiet            no log lines on stderr (errors are still printed; default: off)
  -v, --version          print the version and exit
  -h, --help             print this help and exit

Environment:
  PROCMONITOR_<OPTION>   every long option, upper case, - as _ (PROCMONITOR_CLIENTS=20,
                         PROCMONITOR_DIRECT=true, PROCMONITOR_CONFIG=FILE; a repeatable
                         option's values one per line); the command line decides over them,
                         they over --config
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
  tcp: TcpCliOptions | null;
  direct: boolean;
  format: 'json' | 'text';
  /** --schema: the fields of the events the daemon writes itself. */
  schema: Schema;
  threads: boolean;
  slowClient: 'drop' | 'disconnect';
  /** Seconds; 0: off. */
  stallTimeout: number;
  rcvbuf: number;
  quiet: boolean;
  metrics: MetricsAddress | null;
  syslog: SyslogConfig | null;
  nats: NatsCliOptions | null;
  /** --output, --output-max-size, --output-keep; null: no file. */
  output: OutputConfig | null;
  /** --journald, --journald-socket; null: not to journald. */
  journald: JournaldConfig | null;
  replay: number;
  ancestors: string;
  ancestorDepth: number;
  cgroups: boolean;
  cwd: boolean;
  login: boolean;
  tty: boolean;
  namespaces: boolean;
  env: string[];
  /** --match, --exclude, --subtree, --failed; null: every event. */
  filter: EventFilter | null;
  /** --redact (each checked when the connector is made), --redact-defaults. */
  redactPatterns: string[];
  redactDefaults: boolean;
  /** --print-config: the options in effect, to print (then exit); null: run. */
  printConfig: string | null;
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
  'schema',
  'metrics',
  'syslog-socket',
  'syslog-target',
  'syslog-facility',
  'replay',
  'ancestors',
  'ancestor-depth',
  'cgroups',
  'cwd',
  'login',
  'tty',
  'namespaces',
  'env',
  'redact',
  ...FILTER_STRING_FLAGS,
  ...NATS_FLAGS,
  ...OUTPUT_FLAGS,
  ...JOURNALD_STRING_FLAGS,
  'config',
];
const BOOLEAN_FLAGS = [
  'direct',
  'threads',
  'quiet',
  'version',
  'help',
  'print-config',
  'syslog',
  'syslog-events',
  'redact-defaults',
  ...FILTER_BOOLEAN_FLAGS,
  ...JOURNALD_BOOLEAN_FLAGS,
];
const SHORT: Record<string, string> = { e: 'events', c: 'clients', s: 'socket', t: 'tcp', a: 'auth', d: 'direct', h: 'help', q: 'quiet', v: 'version' };
/** Every flag the daemon knows (each documented in USAGE). */
export const DAEMON_FLAGS: FlagSpec = { string: [...STRING_FLAGS, ...TLS_FLAGS], boolean: BOOLEAN_FLAGS, short: SHORT };
/** How they layer: command line, PROCMONITOR_*, --config FILE (lib/cli/config.ts). */
export const DAEMON_CONFIG: ConfigSpec = {
  ...DAEMON_FLAGS,
  repeatable: ['match', 'exclude', 'subtree', 'redact', 'nats'],
  commaLists: ['events', 'ancestors', 'env'],
  groups: [
    ['auth', 'auth-file'],
    ['syslog-socket', 'syslog-target'],
  ],
  commandLineOnly: ['help', 'version', 'config', 'print-config'],
  secrets: ['auth'],
  urls: ['nats'],
  onlyWith: { auth: 'tcp' },
};

/**
 * Parses the daemon's options (command line, PROCMONITOR_*, --config FILE). Returns 'help'
 * or 'version' for those flags; throws UsageError, saying where a value at fault came from.
 */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonOptions | 'help' | 'version' {
  const warnings: string[] = [];
  let layered: Layered | null = null;
  try {
    layered = layeredFlags(argv, DAEMON_CONFIG, env, warnings);
    return options(layered, env, warnings);
  } catch (err) {
    throw err instanceof UsageError ? withOrigin(err, layered?.flags ?? null) : err;
  }
}

function options(layered: Layered, env: NodeJS.ProcessEnv, warnings: string[]): DaemonOptions | 'help' | 'version' {
  const { flags } = layered;
  if (flags.on('help')) return 'help';
  if (flags.on('version')) return 'version';
  // A config file holding a password (--auth, or one in a NATS URL) that others may read.
  const inFile = (flag: string): boolean => layered.file !== null && (flags.origin(flag)?.startsWith(`${layered.file}:`) ?? false);
  const holds = [inFile('auth') && 'the TCP password', inFile('nats') && flags.list('nats').some((u) => u.includes('@')) && 'a NATS password'].filter(Boolean);
  if (holds.length > 0 && layered.file && (fs.statSync(layered.file).mode & 0o077) !== 0) {
    warnings.push(`warning: ${layered.file} holds ${holds.join(' and ')} and others may read it: chmod 600 it, or use --auth-file and --nats-password-file`);
  }
  // (Each piece checks its flags in turn: the first mistake is the one said.)
  const serving = servingFlags(flags);
  const reader = readerFlags(flags);
  const metricsText = flags.str('metrics');
  const metrics = metricsText === undefined ? null : parseMetricsAddress(metricsText);
  const syslog = syslogConfig(flags);
  const tcp = tcpFlags(flags, env, warnings);
  const nats = natsCliOptions(flags, env, warnings);
  const output = outputConfig(flags);
  const journald = journaldConfig(flags);
  const { direct, modeText, groupText } = serving;
  // The Unix socket is served by default, or when asked for next to --tcp / --direct / --nats / --output / --journald.
  const socket = flags.str('socket') ?? (!direct && !tcp && !nats && !output && !journald ? DEFAULT_SOCKET : null);
  if (!socket && (modeText !== undefined || groupText !== undefined)) {
    throw new UsageError('--socket-mode and --socket-group need a Unix socket (--socket PATH)');
  }
  return {
    events: serving.events,
    clients: serving.clients,
    clientsPerUser: serving.clientsPerUser,
    visibility: serving.visibility,
    socket,
    socketMode: modeText === undefined ? 0o666 : parseInt(modeText, 8),
    ...(groupText !== undefined ? { socketGroup: /^\d+$/.test(groupText) ? Number(groupText) : groupText } : {}),
    tcp,
    direct,
    format: serving.format,
    schema: schemaFlag(flags, { direct, format: serving.format, output, nats, syslogEvents: syslog?.events === true }),
    threads: flags.on('threads'),
    slowClient: serving.slowClient,
    ...reader,
    filter: filterFlags(flags),
    redactPatterns: redactFlags(flags),
    redactDefaults: flags.on('redact-defaults'),
    quiet: flags.on('quiet'),
    metrics,
    syslog,
    nats,
    output,
    journald,
    printConfig: flags.on('print-config') ? printConfig(layered, DAEMON_CONFIG) : null,
    warnings,
  };
}

/** --schema: default, or ecs where something writes JSON events itself. Throws a UsageError. */
function schemaFlag(flags: Flags, o: { direct: boolean; format: 'json' | 'text'; output: unknown; nats: unknown; syslogEvents: boolean }): Schema {
  const text = flags.str('schema');
  if (text === undefined) return 'default';
  if (!(SCHEMAS as readonly string[]).includes(text)) throw new UsageError(`--schema must be ${SCHEMAS.join(' or ')}, got "${text}"`);
  if (text === 'ecs' && o.direct && o.format === 'text') throw new UsageError('--schema ecs is for JSON: not with --format text');
  if (text === 'ecs' && !o.direct && !o.output && !o.nats && !o.syslogEvents) {
    throw new UsageError('--schema ecs applies to --direct, --output, --nats and --syslog-events (socket and TCP clients ask for it in their request: {"schema":"ecs"})');
  }
  return text as Schema;
}

type ServingFlags = Pick<DaemonOptions, 'events' | 'clients' | 'clientsPerUser' | 'visibility' | 'direct' | 'format' | 'slowClient'> & {
  /** --socket-mode and --socket-group as given (checked). */
  modeText: string | undefined;
  groupText: string | undefined;
};

/** Who is served and how: --events, --clients, --peer-visibility, --clients-per-user, --direct, --format, --slow-client, --socket-mode, --socket-group. */
function servingFlags(flags: Flags): ServingFlags {
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
  const format: DaemonOptions['format'] = formatText === 'text' ? 'text' : 'json';
  const slowClient: DaemonOptions['slowClient'] = slowText === 'disconnect' ? 'disconnect' : 'drop';
  return { events, clients, clientsPerUser, visibility, direct, format, slowClient, modeText, groupText };
}

/** What the reader reports and keeps: --stall-timeout, --rcvbuf, --replay, --ancestors, --ancestor-depth, --cgroups, --cwd, --login, --tty, --namespaces, --env. */
function readerFlags(
  flags: Flags,
): Pick<DaemonOptions, 'stallTimeout' | 'rcvbuf' | 'replay' | 'ancestors' | 'ancestorDepth' | 'cgroups' | 'cwd' | 'login' | 'tty' | 'namespaces' | 'env'> {
  const str = (name: string): string | undefined => flags.str(name);
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
  const envText = str('env');
  const env = envText === undefined ? [] : envText.split(',');
  if (env.length > 64 || env.some((n) => !/^[^=\0]{1,256}$/.test(n))) throw new UsageError(`--env must be a comma list of at most 64 variable names (no "="), got "${envText}"`);
  return {
    stallTimeout,
    rcvbuf,
    replay,
    ancestors,
    ancestorDepth,
    cgroups: yesNo(str('cgroups'), 'cgroups'),
    cwd: yesNo(str('cwd'), 'cwd'),
    login: yesNo(str('login'), 'login'),
    tty: yesNo(str('tty'), 'tty'),
    namespaces: yesNo(str('namespaces'), 'namespaces', false),
    env: [...new Set(env)],
  };
}

/** --redact, each a pattern (a UsageError naming the bad one). */
function redactFlags(flags: Flags): string[] {
  const list = flags.list('redact');
  if (list.length > 64) throw new UsageError('--redact given more than 64 times');
  for (const p of list) {
    const why = patternError(p);
    if (why !== null) throw new UsageError(`--redact ${p}: ${why}`);
  }
  return list;
}

/** A yes|no flag, `dflt` (yes) when not given. */
function yesNo(text: string | undefined, name: string, dflt = true): boolean {
  if (text !== undefined && text !== 'yes' && text !== 'no') throw new UsageError(`--${name} must be yes or no, got "${text}"`);
  return text === undefined ? dflt : text === 'yes';
}
