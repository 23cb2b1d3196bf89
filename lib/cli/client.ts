import { connect, type ClientTlsOptions, type ConnectOptions } from '../client';
import { parseEventList } from '../events';
import { formatEvent } from '../format';

export { formatEvent };
import { parseFlags, UsageError, wholeNumber } from './args';
import { filterFlags, filterUsage, FILTER_BOOLEAN_FLAGS, FILTER_STRING_FLAGS } from './filter-flags';
import { SCHEMAS } from '../ecs';
import { readTlsFlags } from './tls-flags';
import { readSecretFile } from '../secret';

const NAME = 'procMonitor-client';
const DEFAULT_SOCKET = '/var/run/procMonitor.sock';
const DEFAULT_HOST = 'localhost';
const DEFAULT_PORT = 8080;

export const CLIENT_USAGE = `Usage: ${NAME} [options]

Prints the events of a procMonitor server, readably or as NDJSON. Takes the options of
the seed's processClient.js (-s, -t, -H, -p, -a) with its defaults: its command lines work.

  -s, --socket PATH     connect to the Unix socket PATH (default ${DEFAULT_SOCKET})
  -t, --tcp             connect over TCP instead (with --host, --port and a password)
  -H, --host HOST       TCP host (default ${DEFAULT_HOST})
  -p, --port PORT       TCP port (default ${DEFAULT_PORT})
  -a, --auth PASSWORD   TCP password (visible in ps; prefer --auth-file or PROCMONITOR_AUTH)
      --auth-file FILE  read the TCP password from FILE (one trailing newline ignored; a
                        regular file of at most 4 KiB only its owner may write)
      --tls             speak TLS to a daemon started with --tls-cert (implies --tcp);
                        its certificate is verified against the system's root CAs, or:
      --tls-ca FILE     verify the server's certificate against this CA (PEM)
      --tls-cert FILE   present this client certificate (PEM; for a daemon with --tls-ca)
      --tls-key FILE    the client certificate's private key (PEM, unencrypted)
      --tls-servername NAME
                        the name the server's certificate must carry (default: --host)
      --insecure        with TLS: do not verify the server's certificate (encrypted, but
                        open to an impostor; for testing only)
  -e, --events LIST     only these events (comma list: fork,exec,exit,...; default all);
                        the server is asked to send only those
  -u, --users LIST      only events of these users (comma list of names or uids)
  The server runs this filter for this client (as the daemon's own flags do for all):
${filterUsage(true)}
  -r, --resume          when the connection drops, reconnect and go on after the last
                        event received (no gap while the server's replay ring reaches back)
  -j, --json            print the raw NDJSON lines
      --schema S        the events' fields: default, or ecs (Elastic Common Schema, with
                        --json; the server makes them)
  -h, --help            show this help

Environment: PROCMONITOR_AUTH holds the TCP password when neither --auth nor --auth-file is given.
Exit status: 0 after SIGINT/SIGTERM, 1 when the connection fails or the server closes it,
2 on bad options.`;

const STRING_FLAGS = ['socket', 'host', 'port', 'auth', 'auth-file', 'events', 'users', 'schema', 'tls-ca', 'tls-cert', 'tls-key', 'tls-servername', ...FILTER_STRING_FLAGS];
const BOOLEAN_FLAGS = ['tcp', 'json', 'help', 'tls', 'insecure', 'resume', ...FILTER_BOOLEAN_FLAGS];
const SHORT: Record<string, string> = { s: 'socket', t: 'tcp', H: 'host', p: 'port', a: 'auth', e: 'events', u: 'users', r: 'resume', j: 'json', h: 'help' };

export interface ClientCliOptions {
  connect: ConnectOptions;
  json: boolean;
  events: Set<string> | null;
  /** Said on stderr before connecting: e.g. a password file others may read. */
  warnings: string[];
}

/** Parses the client's arguments; throws an Error with a one-line message on bad input. Returns null for --help. */
export function parseClientArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ClientCliOptions | null {
  const flags = parseFlags(argv, { string: STRING_FLAGS, boolean: BOOLEAN_FLAGS, short: SHORT });
  if (flags.on('help')) return null;
  const str = (name: string): string | undefined => flags.str(name);
  const socket = str('socket');
  const host = str('host');
  const portText = str('port');
  const auth = str('auth');
  const authFile = str('auth-file');
  const eventsText = str('events');
  let events: Set<string> | null = null;
  if (eventsText !== undefined) {
    try {
      events = new Set<string>(parseEventList(eventsText));
    } catch (err) {
      throw new UsageError(`--events: ${(err as Error).message}`);
    }
    events.add('lost');
  }
  const usersText = str('users');
  const users = usersText === undefined ? undefined : usersText.split(',').map((u) => u.trim());
  if (users && (users.length === 0 || users.some((u) => u === ''))) throw new UsageError('--users needs a comma list of user names or uids');
  // What the server is asked (its filters spare the bytes), and whether to resume.
  const filter = filterFlags(flags, true);
  const schema = str('schema');
  if (schema !== undefined && !(SCHEMAS as readonly string[]).includes(schema)) throw new UsageError(`--schema must be ${SCHEMAS.join(' or ')}, got "${schema}"`);
  if (schema === 'ecs' && !flags.on('json')) throw new UsageError('--schema ecs prints JSON: give --json');
  const extra: Pick<ConnectOptions, 'request' | 'resume'> = {};
  if (events || users || filter || schema === 'ecs') {
    extra.request = {
      ...(schema === 'ecs' ? { schema: 'ecs' as const } : {}),
      ...(events ? { events: [...events].filter((e) => e !== 'lost') as NonNullable<NonNullable<ConnectOptions['request']>['events']> } : {}),
      ...(users ? { users: users.map((u) => (/^\d+$/.test(u) ? Number(u) : u)) } : {}),
      ...filter,
    };
  }
  if (flags.on('resume')) extra.resume = true;
  const servername = str('tls-servername');
  const tlsWanted = flags.on('tls') || flags.on('insecure') || servername !== undefined || ['tls-ca', 'tls-cert', 'tls-key'].some((f) => str(f) !== undefined);
  if (tlsWanted && socket !== undefined) throw new UsageError('TLS (--tls, --tls-*, --insecure) is for --tcp connections, not --socket');
  const tcp = flags.on('tcp') || host !== undefined || portText !== undefined || tlsWanted;
  if (!tcp) {
    if (auth !== undefined || authFile !== undefined) throw new UsageError('--auth and --auth-file are for --tcp connections');
    return { connect: { path: socket ?? DEFAULT_SOCKET, ...extra }, json: flags.on('json'), events, warnings: [] };
  }
  if (socket !== undefined) throw new UsageError('give either --socket or --tcp, not both');
  const port = portText === undefined ? DEFAULT_PORT : wholeNumber(portText, 'port', 1, 65535);
  if (auth !== undefined && authFile !== undefined) throw new UsageError('give either --auth or --auth-file, not both');
  let password: string | undefined = auth;
  const warnings: string[] = [];
  if (authFile !== undefined) {
    try {
      const f = readSecretFile(authFile, '--auth-file');
      password = f.text;
      if (f.warning) warnings.push(f.warning);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (password === undefined) password = env.PROCMONITOR_AUTH;
  if (password === undefined || password === '') {
    throw new UsageError('--tcp needs a password: --auth PASSWORD, --auth-file FILE or PROCMONITOR_AUTH');
  }
  if (/[\r\n]/.test(password)) throw new UsageError('the password cannot contain a line break');
  if (Buffer.byteLength(password) > 256) throw new UsageError('the password is longer than 256 bytes');
  let tls: ClientTlsOptions | true | undefined;
  if (tlsWanted) {
    const files = readTlsFlags(flags);
    if (files?.ca && flags.on('insecure')) throw new UsageError('give either --tls-ca or --insecure, not both');
    tls = {
      ...files,
      ...(servername !== undefined ? { servername } : {}),
      ...(flags.on('insecure') ? { rejectUnauthorized: false } : {}),
    };
    if (Object.keys(tls).length === 0) tls = true;
  }
  return { connect: { host: host ?? DEFAULT_HOST, port, password, ...(tls ? { tls } : {}), ...extra }, json: flags.on('json'), events, warnings };
}

/** Runs the client command; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  let opts: ClientCliOptions | null;
  try {
    opts = parseClientArgs(argv);
  } catch (err) {
    process.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    return 2;
  }
  if (!opts) {
    process.stdout.write(`${CLIENT_USAGE}\n`);
    return 0;
  }
  const { json, events } = opts;
  for (const w of opts.warnings) process.stderr.write(`${NAME}: ${w}\n`);
  const t = 'tls' in opts.connect ? opts.connect.tls : undefined;
  if (typeof t === 'object' && t.rejectUnauthorized === false) {
    process.stderr.write(`${NAME}: warning: --insecure: the server's certificate is not verified\n`);
  }
  let client;
  try {
    client = connect(opts.connect);
  } catch (err) {
    process.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    return 2;
  }
  let ready = false;
  client.once('ready', () => (ready = true));
  client.on('reconnecting', ({ attempt, delayMs, error }) => {
    process.stderr.write(`${NAME}: connection lost${error ? ` (${error.message})` : ''}; reconnecting in ${delayMs} ms (attempt ${attempt})\n`);
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    void client.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let stdoutGone = false;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    stdoutGone = true;
    if (err.code !== 'EPIPE') process.stderr.write(`${NAME}: stdout: ${err.message}\n`);
    void client.close();
  });
  try {
    for await (const ev of client) {
      if (stdoutGone) break;
      if (events && typeof ev.event === 'string' && !events.has(ev.event)) continue; // (an ECS document: the server chose)
      const line = json ? `${JSON.stringify(ev)}\n` : `${formatEvent(ev)}\n`;
      if (!process.stdout.write(line)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            process.stdout.off('drain', done);
            process.stdout.off('error', done);
            resolve();
          };
          process.stdout.on('drain', done);
          process.stdout.on('error', done);
        });
      }
    }
  } catch (err) {
    if (stopping) return 0;
    const e = err as Error & { code?: string };
    process.stderr.write(`${NAME}: ${e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? `cannot connect: ${e.message}` : e.message}\n`);
    return 1;
  }
  // The handlers stay: a second signal during the last writes must not kill the process.
  if (stopping || stdoutGone) return 0;
  // Closed before the password prompt, on a plain TCP connection: most likely a TLS port.
  const plainTcp = 'port' in opts.connect && !opts.connect.tls;
  process.stderr.write(`${NAME}: the server closed the connection${!ready && plainTcp ? ' before any prompt (if it serves TLS, add --tls)' : ''}\n`);
  return 1;
}
