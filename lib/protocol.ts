/**
 * The wire protocol between the server and its clients, in one place: the handshake strings
 * (the seed daemon's, byte for byte), the refusal lines, the request a client may send and
 * its parser, and how a client tells one refusal from another. Imported by the server and the
 * client alike.
 */
import { parseEventList, type EventName, type ProcessRecord } from './events';
import { compileFilter, type CompiledFilter, type FilterTerms } from './filter';
import { SCHEMAS, type Schema } from './ecs';

// ---------------------------------------------------------------------------------------------
// Wire strings. The handshake is the seed daemon's, byte for byte; the other lines are ours and
// are plain text (never JSON), so a client can never mistake them for an event.
// ---------------------------------------------------------------------------------------------

/** Sent to a TCP connection as soon as it is accepted. */
export const PASSWORD_PROMPT = 'Password: ';
/** Sent after a correct password; the event stream follows. */
export const AUTH_SUCCESS = 'Authentication successful.\n';
/** Sent after a wrong password (or an over-long line); the connection is then closed. */
export const AUTH_FAILED = 'Authentication failed. Disconnecting.\n';
/** Sent when no password line arrived within `authTimeoutMs`; the connection is then closed. */
export const AUTH_TIMEOUT = 'Authentication timed out. Disconnecting.\n';
/** Sent over TLS (then the connection closed) when a client certificate is required and it gave none or one the CA did not sign. */
export const CLIENT_CERT_REFUSED = 'Client certificate refused. Disconnecting.\n';
/** Longest accepted password line, bytes, not counting the `\n` / `\r\n` terminator. */
export const MAX_PASSWORD_BYTES = 256;

/** Sent (then the connection closed) to a Unix client whose user already has `maxClientsPerUser` streaming clients. */
export function tooManyForUserLine(uid: number, max: number): string {
  return `Too many clients for uid ${uid} (max ${max}). Disconnecting.\n`;
}

/** The line sent (then the connection closed) when `maxClients` clients already stream. */
export function tooManyClientsLine(max: number): string {
  return `Too many clients (max ${max}). Disconnecting.\n`;
}

/** The line sent (then the connection closed) when a client's request line is unusable. */
export function badRequestLine(why: string): string {
  return `Bad request: ${why}. Disconnecting.\n`;
}

/** Longest request line a client may send, bytes. */
export const MAX_REQUEST_BYTES = 8192;

/** The line sent (then the connection closed) when `maxPending` connections already wait to authenticate. */
export function tooManyPendingLine(max: number): string {
  return `Too many connections waiting to authenticate (max ${max}). Disconnecting.\n`;
}

/**
 * The line sent (then the connection closed at once) when the server is about to run out of
 * file descriptors: fewer than `FD_RESERVE` are left under its soft `RLIMIT_NOFILE`.
 */
export const TOO_MANY_FILES = 'Too many open files on the server, try later. Disconnecting.\n';

// ---------------------------------------------------------------------------------------------
// The answer to a request: JSON lines before the stream (hello, then a snapshot if asked).
// ---------------------------------------------------------------------------------------------

/** The kinds of the lines that answer a request, before the stream: they are not events of it. */
export const ANSWER_KINDS = Object.freeze(['hello', 'process', 'snapshot'] as const);

/** The first line of every answer: which stream this is and its last seq so far (`time`: now unless given). */
export function helloLine(stream: string, lastSeq: number, time: string = new Date().toISOString()): string {
  return `${JSON.stringify({ event: 'hello', time, stream, last_seq: lastSeq })}\n`;
}

/** One process of a snapshot (`{"snapshot": true}`): its record as `{"event":"process",...}`. */
export function processLine(p: ProcessRecord): string {
  return `${JSON.stringify({ event: 'process', ...p })}\n`;
}

/** The end of a snapshot, with how many process lines it had. */
export function snapshotLine(count: number, time: string = new Date().toISOString()): string {
  return `${JSON.stringify({ event: 'snapshot', time, count })}\n`;
}

/** A client's request line, validated. */
export interface ClientRequest {
  /** The last seq it received: it wants everything after. */
  resume_from?: number;
  /** The stream that seq belongs to (from the `hello` line). */
  stream?: string;
  /** The process table first. */
  snapshot?: boolean;
  /** Only these event kinds (`lost` always comes). */
  events?: EventName[];
  /** Only events of these users (names or uids). */
  users?: (string | number)[];
  /** Only the events that match every key of these terms (the filter model, lib/filter.ts). */
  match?: FilterTerms;
  /** Not the events that match every key of these. */
  exclude?: FilterTerms;
  /** The fields of the events: `default` (the wire format) or `ecs` (Elastic Common Schema; lib/ecs.ts). */
  schema?: Schema;
}

/** A request, validated, with its filter (match, exclude) checked and compiled. */
export interface ParsedRequest extends ClientRequest {
  filter?: CompiledFilter;
}

const REQUEST_KEYS = new Set(['resume_from', 'stream', 'snapshot', 'events', 'users', 'match', 'exclude', 'schema']);

/** Parses a request line; throws an Error whose message says what is wrong. */
export function parseRequest(line: string): ParsedRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error('the request is not JSON (expected e.g. {"resume_from": 42})');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the request must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!REQUEST_KEYS.has(k)) throw new Error(`unknown request field "${k.slice(0, 40)}" (known: ${[...REQUEST_KEYS].join(', ')})`);
  }
  const req: ParsedRequest = {};
  if (o.match !== undefined || o.exclude !== undefined) {
    const filter = { match: o.match as FilterTerms | undefined, exclude: o.exclude as FilterTerms | undefined };
    try {
      req.filter = compileFilter(Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)));
    } catch (err) {
      throw new Error((err as Error).message);
    }
    if (filter.match) req.match = filter.match;
    if (filter.exclude) req.exclude = filter.exclude;
  }
  if (o.schema !== undefined) {
    if (typeof o.schema !== 'string' || !(SCHEMAS as readonly string[]).includes(o.schema)) throw new Error(`schema must be ${SCHEMAS.join(' or ')}`);
    req.schema = o.schema as Schema;
  }
  if (o.resume_from !== undefined) {
    if (typeof o.resume_from !== 'number' || !Number.isSafeInteger(o.resume_from) || o.resume_from < 0) {
      throw new Error('resume_from must be a whole number (the last seq received; 0 for everything held)');
    }
    req.resume_from = o.resume_from;
  }
  if (o.stream !== undefined) {
    if (typeof o.stream !== 'string' || o.stream.length === 0 || o.stream.length > 64) throw new Error('stream must be the id from a hello line');
    req.stream = o.stream;
  }
  if (o.snapshot !== undefined) {
    if (typeof o.snapshot !== 'boolean') throw new Error('snapshot must be true or false');
    req.snapshot = o.snapshot;
  }
  if (o.events !== undefined) {
    if (!(typeof o.events === 'string' || (Array.isArray(o.events) && o.events.every((e) => typeof e === 'string')))) {
      throw new Error('events must be a list of event names');
    }
    try {
      req.events = parseEventList(o.events);
    } catch (err) {
      throw new Error(`events: ${(err as Error).message}`);
    }
  }
  if (o.users !== undefined) {
    const u = o.users;
    if (!Array.isArray(u) || u.length === 0 || u.length > 256) throw new Error('users must be a list of 1 to 256 user names or uids');
    for (const x of u) {
      const ok = (typeof x === 'string' && x.length > 0 && x.length <= 256) || (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0x7fffffff);
      if (!ok) throw new Error('users must be a list of user names or uids');
    }
    req.users = u as (string | number)[];
  }
  return req;
}

/** What a client makes of a line the server sent instead of the stream: an error code. */
export type RefusalCode = 'EAUTH' | 'ETIMEDOUT' | 'EBUSY' | 'EREQUEST' | 'EPROTO';

/** The first sentence of a wire line, without its full stop. */
const head = (line: string): string => line.slice(0, line.indexOf('.'));
const REFUSALS: [string, RefusalCode][] = [
  [head(AUTH_FAILED), 'EAUTH'],
  [head(CLIENT_CERT_REFUSED), 'EAUTH'],
  [head(AUTH_TIMEOUT), 'ETIMEDOUT'],
  ['Too many ', 'EBUSY'], // tooManyClientsLine, tooManyForUserLine, tooManyPendingLine, TOO_MANY_FILES
  [head(badRequestLine('x')).split(':')[0] as string, 'EREQUEST'],
];

/** The code of a refusal line (`AUTH_FAILED`, `tooManyClientsLine(...)`, ...); `EPROTO` for anything else. */
export function refusalCode(line: string): RefusalCode {
  for (const [prefix, code] of REFUSALS) if (line.startsWith(prefix)) return code;
  return 'EPROTO';
}
