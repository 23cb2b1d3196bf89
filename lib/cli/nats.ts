/** The daemon's --nats* options (the publisher itself: nats.ts). */
import { UsageError, wholeNumber, type Flags } from './args';
import { readSecretFile } from '../secret';
import { readTlsFlags } from './tls-flags';
import { DEFAULT_NATS_PREFIX, NatsPublisher, type NatsPublisherOptions } from '../outputs/nats';

export const NATS_USAGE = `      --nats URL         also publish events to NATS (nats://host[:port], tls://...;
                         repeat or comma-separate for a cluster). Subjects:
                         PREFIX.HOST.EVENT, each message the event's JSON line (default: off)
      --nats-subject P   subject prefix (default: ${DEFAULT_NATS_PREFIX})
      --nats-name NAME   the host's name in subjects (default: the hostname; characters
                         other than letters, digits, - and _ become _)
      --nats-jetstream S publish with JetStream into stream S (created if missing;
                         default: none, core NATS)
      --nats-buffer N    bytes of events held while NATS is down or slow (default:
                         8388608); beyond, events are dropped and reported in one
                         "lost" message (source "nats") after recovery
      --nats-creds FILE  authenticate with this credentials file: a user JWT and its NKey
                         seed (NATS's operator mode; default: none)
      --nats-nkey FILE   authenticate with the user NKey seed (SU...) in FILE (default: none)
      --nats-user USER   authenticate as USER, the password from --nats-password-file or
                         PROCMONITOR_NATS_PASSWORD, never the URL, which ps shows (default:
                         none)
      --nats-password-file FILE
                         read the password of --nats-user from FILE (default: none)
      --nats-token-file FILE
                         authenticate with the token in FILE (or PROCMONITOR_NATS_TOKEN;
                         default: none)
      --nats-tls-ca FILE TLS to the NATS servers, trusting this CA (PEM) instead of the
                         system's (default: the system's, with tls:// URLs)
      --nats-tls-cert FILE
                         TLS with this client certificate (PEM), for servers that verify
                         clients; with --nats-tls-key (default: none)
      --nats-tls-key FILE
                         the client certificate's private key (PEM; default: none)`;

/** Secrets the daemon reads from the environment for NATS (the environment variables of no flag). */
export const NATS_SECRET_ENV = ['PROCMONITOR_NATS_PASSWORD', 'PROCMONITOR_NATS_TOKEN'];

export const NATS_FLAGS = [
  'nats',
  'nats-subject',
  'nats-name',
  'nats-jetstream',
  'nats-buffer',
  'nats-creds',
  'nats-nkey',
  'nats-user',
  'nats-password-file',
  'nats-token-file',
  'nats-tls-ca',
  'nats-tls-cert',
  'nats-tls-key',
];

export type NatsCliOptions = Pick<
  NatsPublisherOptions,
  'servers' | 'subjectPrefix' | 'hostname' | 'jetstream' | 'maxPendingBytes' | 'user' | 'pass' | 'token' | 'creds' | 'nkeySeed' | 'tls'
>;

/** A secret file's text (its warning, if any, to `warnings`); a UsageError naming the flag. */
function secretFile(flag: string, file: string, warnings: string[]): string {
  try {
    const f = readSecretFile(file, `--${flag}`);
    if (f.warning) warnings.push(f.warning);
    if (f.text === '') throw new Error(`--${flag} ${file} is empty`);
    return f.text;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** --nats-creds, --nats-nkey, --nats-user (+ password), --nats-token-file, --nats-tls-*: into `o`. */
function natsAuth(flags: Flags, env: NodeJS.ProcessEnv, warnings: string[], o: NatsCliOptions): void {
  const str = (f: string): string | undefined => flags.str(f);
  const creds = str('nats-creds');
  const nkey = str('nats-nkey');
  const user = str('nats-user');
  const passFile = str('nats-password-file');
  const tokenFile = str('nats-token-file');
  if (passFile !== undefined && user === undefined) throw new UsageError('--nats-password-file needs --nats-user');
  if (creds !== undefined) o.creds = secretFile('nats-creds', creds, warnings);
  if (nkey !== undefined) o.nkeySeed = secretFile('nats-nkey', nkey, warnings);
  if (user !== undefined) {
    o.user = user;
    const pass = passFile !== undefined ? secretFile('nats-password-file', passFile, warnings) : env.PROCMONITOR_NATS_PASSWORD;
    if (!pass) throw new UsageError('--nats-user needs its password: --nats-password-file FILE or PROCMONITOR_NATS_PASSWORD');
    o.pass = pass;
  }
  const token =
    tokenFile !== undefined
      ? secretFile('nats-token-file', tokenFile, warnings)
      : user === undefined && creds === undefined && nkey === undefined
        ? env.PROCMONITOR_NATS_TOKEN
        : undefined;
  if (token) o.token = token;
  const tls = readTlsFlags(flags, 'nats-tls');
  if (tls) o.tls = { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) };
}

/** The daemon's --nats* flags as publisher options, or null without --nats. Throws UsageError. */
export function natsCliOptions(flags: Flags, env: NodeJS.ProcessEnv = process.env, warnings: string[] = []): NatsCliOptions | null {
  const servers = flags.list('nats');
  const rest = NATS_FLAGS.slice(1).filter((f) => flags.list(f).length > 0);
  if (servers.length === 0) {
    if (rest.length) throw new UsageError(`--${rest[0]} needs --nats URL`);
    return null;
  }
  const o: NatsCliOptions = { servers };
  const prefix = flags.str('nats-subject');
  const name = flags.str('nats-name');
  const stream = flags.str('nats-jetstream');
  const buffer = flags.str('nats-buffer');
  if (prefix !== undefined) o.subjectPrefix = prefix;
  if (name !== undefined) o.hostname = name;
  if (stream !== undefined) o.jetstream = stream;
  if (buffer !== undefined) o.maxPendingBytes = wholeNumber(buffer, 'nats-buffer', 1024, 0x7fffffff);
  natsAuth(flags, env, warnings, o);
  // Validate everything now: a bad URL is a usage error, not a runtime one.
  try {
    new NatsPublisher({ source: { on: () => undefined, off: () => undefined }, ...o });
  } catch (err) {
    const m = (err as Error).message;
    const flag = /prefix/.test(m) ? '--nats-subject' : /stream/.test(m) ? '--nats-jetstream' : /^creds/.test(m) ? '--nats-creds' : /^nkeySeed/.test(m) ? '--nats-nkey' : '--nats';
    throw new UsageError(`${flag}: ${m}`);
  }
  return o;
}
