// A client's request window: after it is admitted it may send one request line (events and
// users to filter on, a snapshot, where to resume); meanwhile its events wait in the ring.
// Requests are paced per peer (a local user, a network), user names are looked up off the JS
// thread, and a peer has one costly answer (names, a snapshot) under way at a time. The
// answer (hello, the snapshot) is handed to the fan-out, which writes it before the stream.
import * as tls from 'node:tls';
import type { ProcessRecord } from '../events';
import { lineFilter } from '../filter';
import type { NativeLineFilter } from '../native';
import { badRequestLine, helloLine, MAX_REQUEST_BYTES, parseRequest, processLine, snapshotLine, type ParsedRequest } from '../protocol';
import { IdResolver } from './accounts';
import { TokenBuckets } from './buckets';
import { BUSY_RETRY_MS, EMPTY, isPrivileged, peerKey, who, type Conn } from './conn';
import type { Fanout } from './fanout';
import type { LogTally } from './log-tally';
import { makeFilter } from './replay';

export interface RequestOptions {
  /** How long a client may take to send its request line (0: no requests). */
  waitMs: number;
  requestsPerSecond: number;
  /** This run of the stream (see BroadcastServer.stream). */
  stream: string;
  /** A client's bound (pieces of its answer are at most half of it). */
  bufferBytes: number;
  /** The source's process table, if it keeps one. */
  snapshot: (() => ProcessRecord[]) | null;
}

export interface RequestHooks {
  tally: LogTally;
  clientLog(conn: Conn, line: string): void;
  /** Closes a connection after `message`. */
  endConn(conn: Conn, message: string): void;
}

export class Requests {
  /** Request lines, per peer (peerKey) other than root and the server's user. */
  private readonly budget: TokenBuckets;
  /** Costly answers under way, per peer (setBusy). */
  private readonly busy = new Map<string, number>();
  /** User names of requests, resolved off the JS thread. */
  private readonly ids = new IdResolver();

  constructor(
    private readonly o: RequestOptions,
    private readonly fanout: Fanout,
    private readonly hooks: RequestHooks,
  ) {
    this.budget = new TokenBuckets(o.requestsPerSecond, o.requestsPerSecond * 5);
  }

  /** Opens a streaming client's request window (`early`: bytes that came with its password). */
  open(conn: Conn, early: Buffer): void {
    const sock = conn.sock;
    if (this.o.waitMs === 0) {
      // No request window (no ring): nothing tells a seed client from another, and without a
      // ring there is nothing to pace its lines from: the stream goes out as it comes.
      sock.resume(); // whatever it sends is ignored
      return;
    }
    // It may send one request line first; meanwhile its events wait in the ring.
    conn.mode = 'request';
    conn.nextSeq = this.fanout.ring.next;
    conn.req = EMPTY;
    conn.timer = setTimeout(() => {
      conn.timer = null;
      // The window is over only after the bytes that came within it are read: when the event
      // loop was busy past it (another client's snapshot), timers run before the reads of
      // this turn; setImmediate runs after them.
      setImmediate(() => {
        if (conn.mode !== 'request' || conn.state !== 'streaming') return;
        // Nothing at all came after the password: a client written for the seed, which
        // parses each read as one event, may be at the other end.
        conn.perLine = conn.req !== null && conn.req.length === 0 && !conn.peerEnded && conn.transport === 'tcp' && !(sock instanceof tls.TLSSocket);
        this.release(conn, null);
      });
    }, this.o.waitMs);
    sock.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    if (early.length > 0) this.onData(conn, early);
    sock.resume();
  }

  /** Its sending side closed: a request line cut short by the EOF is taken as it is. */
  ended(conn: Conn): void {
    if (conn.mode === 'request' && conn.state === 'streaming') this.onData(conn, Buffer.from('\n'));
  }

  /** It is gone: its costly answer, if any, no longer counts against its peer. */
  forget(conn: Conn): void {
    this.setBusy(conn, false);
  }

  private onData(conn: Conn, chunk: Buffer): void {
    if (conn.mode !== 'request' || !conn.req) return;
    const start = conn.req.length;
    const buf = start === 0 ? chunk : Buffer.concat([conn.req, chunk]);
    // A request is a JSON object; a client that sends anything else is not speaking this
    // protocol (seed clients send nothing): it gets the plain stream and is not listened to.
    const lead = buf.subarray(0, 64).toString('latin1').trimStart();
    if (lead.length > 0 && lead[0] !== '{') return this.release(conn, null);
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) {
      if (buf.length > MAX_REQUEST_BYTES) return this.badRequest(conn, `the request line is longer than ${MAX_REQUEST_BYTES} bytes`);
      conn.req = buf;
      return;
    }
    if (nl > MAX_REQUEST_BYTES) return this.badRequest(conn, `the request line is longer than ${MAX_REQUEST_BYTES} bytes`);
    const line = buf.toString('utf8', 0, nl).replace(/\r$/, '');
    if (line.trim() === '') return this.release(conn, null); // an empty line: the plain stream
    let req: ParsedRequest;
    try {
      req = parseRequest(line);
    } catch (err) {
      return this.badRequest(conn, (err as Error).message);
    }
    this.release(conn, req);
  }

  private badRequest(conn: Conn, why: string): void {
    this.hooks.tally.add('bad request', `${who(conn)}: client ${conn.id}: bad request (${why})`, conn.addr);
    conn.reason = 'bad-request';
    conn.req = null;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'closing';
    this.fanout.remove(conn);
    this.hooks.endConn(conn, badRequestLine(why));
  }

  /** Ends the request phase: answers the request (if any), then feeds it from the ring. */
  private release(conn: Conn, req: ParsedRequest | null): void {
    if (conn.mode !== 'request' || conn.state !== 'streaming') return;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    conn.req = null;
    conn.sock.removeAllListeners('data'); // anything after the request line is ignored
    if (req) return this.whenAllowed(conn, req);
    this.fanout.start(conn);
  }

  /** Runs whenAllowed again after `ms` (the client's events wait in the ring meanwhile). */
  private retry(conn: Conn, req: ParsedRequest, ms: number): void {
    conn.timer = setTimeout(() => {
      conn.timer = null;
      this.whenAllowed(conn, req);
    }, ms);
  }

  /**
   * A request is answered once its peer (a local user, a network) has a token for it: 2 a
   * second, 10 at once. Meanwhile its events wait in the ring, as during the request window.
   */
  private whenAllowed(conn: Conn, req: ParsedRequest): void {
    if (conn.mode !== 'request' || conn.state !== 'streaming') return;
    const key = peerKey(conn);
    const privileged = isPrivileged(conn);
    // One costly answer at a time per peer (names being looked up, a snapshot not yet
    // written): the next waits for it, so that one peer never holds many tables or lookups.
    const subtree = req.filter !== undefined && (req.filter.subtree.length > 0 || req.filter.runs.length > 0); // (reads the table)
    if (!privileged && (req.users || req.snapshot || subtree) && (this.busy.get(key) ?? 0) > 0) return this.retry(conn, req, BUSY_RETRY_MS);
    const wait = privileged ? 0 : this.budget.take(key, 1);
    if (wait > 0) {
      this.hooks.tally.add('requests slowed', `${who(conn)}: client ${conn.id}: too many requests from ${key}, answered in ${wait} ms`, key);
      return this.retry(conn, req, wait);
    }
    // User names are looked up off the JS thread (NSS may be slow), cached.
    const names = req.users ?? null;
    if (!names) return this.answer(conn, req, null);
    this.setBusy(conn, true);
    Promise.all(names.map((u) => this.ids.resolve('passwd', u, 'user'))).then(
      (uids) => {
        this.setBusy(conn, false);
        this.answer(conn, req, uids);
      },
      (err: Error) => {
        this.setBusy(conn, false);
        if (conn.mode === 'request' && conn.state === 'streaming') this.badRequest(conn, err.message);
      },
    );
  }

  /** Marks a costly answer of `conn`'s peer begun or done. Privileged peers are not counted. */
  setBusy(conn: Conn, on: boolean): void {
    if (isPrivileged(conn) || conn.busy === on) return;
    conn.busy = on;
    const key = peerKey(conn);
    const n = (this.busy.get(key) ?? 0) + (on ? 1 : -1);
    if (n > 0) this.busy.set(key, n);
    else this.busy.delete(key);
  }

  /** Answers a request (hello, a snapshot) and sets where its stream starts. */
  private answer(conn: Conn, req: ParsedRequest, uids: number[] | null): void {
    if (conn.mode !== 'request' || conn.state !== 'streaming') return;
    const snapshot = this.o.snapshot;
    if (req.snapshot && !snapshot) return this.badRequest(conn, 'this server keeps no process table (its source has no snapshot())');
    // A peer that sees only its own processes asks for those of others in vain.
    if (conn.only !== null) uids = (uids ?? [conn.only]).filter((u) => u === conn.only);
    let lines: NativeLineFilter | null = null;
    try {
      // (A client that resumes may follow a run that has ended meanwhile: its backlog has it.)
      lines = req.filter ? lineFilter(req.filter, () => (snapshot ? snapshot() : []), req.resume_from !== undefined) : null;
    } catch (err) {
      return this.badRequest(conn, (err as Error).message);
    }
    conn.filter = makeFilter(req.events ?? null, uids, lines);
    conn.schema = req.schema ?? 'default';
    const ring = this.fanout.ring;
    const last = ring.next - 1;
    conn.own = this.answerLines(last, req.snapshot && snapshot ? snapshot().filter((p) => !uids || (p.uid !== null && uids.includes(p.uid))) : null);
    conn.ownBytes = conn.own.reduce((n, b) => n + b.length, 0);
    if (req.snapshot) this.setBusy(conn, true); // until the table is written (the fan-out's pump) or it goes
    if (req.resume_from !== undefined) {
      // Another stream's seq (the daemon restarted) or one ahead of ours: everything of this
      // stream is new to it.
      const other = (req.stream !== undefined && req.stream !== this.o.stream) || req.resume_from > last;
      conn.nextSeq = other ? 1 : req.resume_from + 1;
    }
    // Its own filter is offered what it will be given from the ring first, in order.
    if (conn.filter?.lines) for (const c of ring.chunksFrom(conn.nextSeq)) conn.filter.lines.offer(c, ring.first);
    const what = [req.resume_from !== undefined ? `resume after ${req.resume_from}` : '', req.snapshot ? 'snapshot' : '', conn.filter ? 'filtered' : ''].filter(Boolean);
    this.hooks.clientLog(conn, `${who(conn)}: client ${conn.id} asked for ${what.join(', ') || 'the stream'}`);
    // What it asked for beyond the live stream (its snapshot, the backlog it resumed from)
    // is paid for from its peer's answer budget as it goes out.
    if (!isPrivileged(conn) && (req.snapshot || req.resume_from !== undefined)) conn.owed = conn.ownBytes + ring.bytesFrom(Math.max(conn.nextSeq, ring.first));
    this.fanout.start(conn);
  }

  /**
   * The answer's lines: hello, then (asked for) the table taken now, at `last`, and its end.
   * They go out in pieces of whole lines as the socket drains (the fan-out's pump), so that a
   * big snapshot never sits in the socket's buffer beyond the client's bound; they are kept
   * in wire form only until they have been written.
   */
  private answerLines(last: number, procs: ProcessRecord[] | null): Buffer[] {
    const pieceBytes = Math.max(1, Math.min(this.o.bufferBytes >> 1, 64 * 1024));
    const own: Buffer[] = [];
    let text = helloLine(this.o.stream, last);
    if (procs) {
      let bytes = Buffer.byteLength(text);
      for (const p of procs) {
        const line = processLine(p);
        text += line;
        bytes += Buffer.byteLength(line);
        if (bytes >= pieceBytes) {
          own.push(Buffer.from(text));
          text = '';
          bytes = 0;
        }
      }
      text += snapshotLine(procs.length);
    }
    own.push(Buffer.from(text));
    return own;
  }
}
