// The daemon's --tcp flags and what goes with them (--auth, --auth-file, --bind, --tls-*),
// read into what the broadcast server's tcp option takes.
import * as net from 'node:net';
import type { TcpTlsOptions } from '../server';
import { readSecretFile, type SecretFile } from '../secret';
import { UsageError, wholeNumber, type Flags } from './args';
import { readTlsFlags } from './tls-flags';

export const TLS_FLAGS = ['tls-cert', 'tls-key', 'tls-ca'];

/** What the daemon's --tcp flags ask for. */
export interface TcpCliOptions {
  port: number;
  host: string;
  password?: string;
  passwordFile?: string;
  passwordEnv?: string;
  tls?: TcpTlsOptions;
}

/**
 * --tcp and what goes with it (--auth, --auth-file, --bind, --tls-*), or null without --tcp
 * (then none of those may be given). Warnings about the password go to `warnings`.
 */
export function tcpFlags(flags: Flags, env: NodeJS.ProcessEnv, warnings: string[]): TcpCliOptions | null {
  const str = (name: string): string | undefined => flags.str(name);
  const tcpText = str('tcp');
  const auth = str('auth');
  const authFile = str('auth-file');
  const bind = str('bind');
  if (bind !== undefined && net.isIP(bind) === 0 && (/^[\d.]+$/.test(bind) || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(bind))) {
    throw new UsageError(`--bind must be an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0) or a host name, got "${bind}"`);
  }
  if (tcpText === undefined) {
    const stray = [
      // (PROCMONITOR_AUTH alone is no mistake: the client reads it too.)
      auth !== undefined && flags.origin('auth') !== 'PROCMONITOR_AUTH' && '--auth',
      authFile !== undefined && '--auth-file',
      bind !== undefined && '--bind',
      ...TLS_FLAGS.map((f) => flags.str(f) !== undefined && `--${f}`),
    ];
    const first = stray.find((f): f is string => typeof f === 'string');
    if (first) throw new UsageError(`${first} needs --tcp PORT`);
    return null;
  }
  const port = wholeNumber(tcpText, 'tcp', 1, 65535);
  if (auth !== undefined && authFile !== undefined) throw new UsageError('give either --auth or --auth-file, not both');
  const filePassword = authFile === undefined ? undefined : passwordFile(authFile, warnings);
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
      `warning: the TCP password is ${[...password].length} characters long: at the 5 guesses a second an attacker gets at most, use 12 or more (see docs/threat-model.md)`,
    );
  }
  if (!tls && !isLoopback(bind ?? '0.0.0.0')) {
    warnings.push(`warning: TCP on ${bind ?? '0.0.0.0'} without TLS: the password and the events cross the network in clear (give --tls-cert and --tls-key, or --bind 127.0.0.1)`);
  }
  return {
    port,
    host: bind ?? '0.0.0.0',
    ...(auth !== undefined ? { password: auth } : filePassword !== undefined ? { password: filePassword } : { passwordEnv: 'PROCMONITOR_AUTH' }),
    ...(tls?.cert && tls.key ? { tls: { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) } } : {}),
  };
}

/** The password in --auth-file (its warning, if any, to `warnings`); throws UsageError. */
function passwordFile(authFile: string, warnings: string[]): string {
  let f: SecretFile;
  try {
    f = readSecretFile(authFile, '--auth-file');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (f.text === '') throw new UsageError(`the password file ${authFile} is empty; refusing to serve events unauthenticated`);
  if (f.warning) warnings.push(f.warning);
  return f.text;
}

/** A loopback address or the name localhost: nothing bound there is reachable from the network. */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return net.isIPv4(v4) && v4.startsWith('127.');
}
