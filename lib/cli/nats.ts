/** The daemon's --nats* options (the publisher itself: nats.ts). */
import { UsageError, wholeNumber, type Flags } from './args';
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
                         "lost" message (source "nats") after recovery`;

export const NATS_FLAGS = ['nats', 'nats-subject', 'nats-name', 'nats-jetstream', 'nats-buffer'];

export type NatsCliOptions = Pick<NatsPublisherOptions, 'servers' | 'subjectPrefix' | 'hostname' | 'jetstream' | 'maxPendingBytes'>;

/** The daemon's --nats* flags as publisher options, or null without --nats. Throws UsageError. */
export function natsCliOptions(flags: Flags): NatsCliOptions | null {
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
  // Validate everything now: a bad URL is a usage error, not a runtime one.
  try {
    new NatsPublisher({ source: { on: () => undefined, off: () => undefined }, ...o });
  } catch (err) {
    const m = (err as Error).message;
    const flag = /prefix/.test(m) ? '--nats-subject' : /stream/.test(m) ? '--nats-jetstream' : '--nats';
    throw new UsageError(`${flag}: ${m}`);
  }
  return o;
}
