// The fan-out: every streaming client, the replay ring that numbers and keeps the stream, and
// how each client is fed: `live` (each batch as it comes, the same bytes for all), `catch-up`
// (from the ring as its socket drains: it resumed, it asked for a snapshot, or it fell
// behind), or paced one line at a time (a client written for the seed). A slow client only
// ever loses its own events, as one `lost` line with the exact count.
import { lostEvent, toLine, type LineBatch } from '../events';
import { EMPTY, LINE_GAP_MS, PACED_MAX_BEHIND, peerKey, who, type Conn } from './conn';
import { Pacer } from './pacer';
import { lineOffset, numberLines, select, viewOf, type ReplayRing } from './replay';
import { toEcs } from '../ecs';
import type { TokenBuckets } from './buckets';
import type { BroadcastStats, ClientStats } from './types';

export interface FanoutOptions {
  ring: ReplayRing;
  /** A client's bound: bytes queued in its socket before it is behind. */
  bufferBytes: number;
  policy: 'drop' | 'disconnect';
  /** Bytes of requested answers (snapshots, resumed backlogs), per peer. */
  answerBudget: TokenBuckets;
}

export interface FanoutHooks {
  log(line: string): void;
  /** A client's own answer (hello, snapshot) has been written whole. */
  answerWritten(conn: Conn): void;
  /** Whether the server is still listening (nothing is fed once it closes). */
  open(): boolean;
}

/** Counters of the stream, as in BroadcastStats. */
export type FanoutCounters = Pick<BroadcastStats, 'batches' | 'events' | 'sentEvents' | 'sentBytes' | 'droppedEvents' | 'slowDisconnects' | 'stallDisconnects'>;

export class Fanout {
  /** Every streaming client (its request window included). */
  private readonly members = new Set<Conn>();
  readonly ring: ReplayRing;
  readonly counters: FanoutCounters = { batches: 0, events: 0, sentEvents: 0, sentBytes: 0, droppedEvents: 0, slowDisconnects: 0, stallDisconnects: 0 };
  private readonly bufferBytes: number;
  private readonly policy: 'drop' | 'disconnect';
  private readonly answerBudget: TokenBuckets;
  /** perLine clients with lines still to get. */
  private readonly pacer = new Pacer<Conn>(LINE_GAP_MS, (conn, now) => this.stepLine(conn, now));

  constructor(
    o: FanoutOptions,
    private readonly hooks: FanoutHooks,
  ) {
    this.ring = o.ring;
    this.bufferBytes = o.bufferBytes;
    this.policy = o.policy;
    this.answerBudget = o.answerBudget;
  }

  /** The streaming clients (read only: they come and go through add and remove). */
  get clients(): ReadonlySet<Conn> {
    return this.members;
  }

  /** A client starts streaming (its request window first: see Requests). */
  add(conn: Conn): void {
    this.members.add(conn);
  }

  /** A client stops streaming (closed, or being closed); false if it was not. */
  remove(conn: Conn): boolean {
    return this.members.delete(conn);
  }

  /** Numbers a batch, keeps it in the ring and sends it to every live client. */
  broadcast(lines: LineBatch): void {
    const n = lines.ends.length;
    if (n === 0) return;
    this.counters.batches++;
    this.counters.events += n;
    // Serialised once, numbered, kept in the ring; the same bytes go to every client.
    const chunk = numberLines(lines, this.ring.next);
    this.ring.push(chunk);
    const bound = this.bufferBytes;
    // A client's own filter sees every chunk, in order, whatever the client's state.
    for (const conn of this.members) conn.filter?.lines?.offer(chunk, this.ring.first);
    for (const conn of this.members) {
      if (conn.mode === 'catch-up' && this.policy === 'disconnect' && !conn.perLine) {
        const behind = this.behind(conn);
        if (behind > bound + conn.slack) {
          this.dropSlow(conn); // further behind than a full buffer (and what it asked for)
          continue;
        }
        conn.slack = Math.min(conn.slack, behind);
      }
      if (conn.perLine) {
        this.pacer.kick(conn);
        continue;
      }
      if (conn.mode !== 'live') continue; // fed from the ring
      const sock = conn.sock;
      if (sock.destroyed || !sock.writable) continue;
      const { buf, count } = conn.filter || conn.schema !== 'default' ? select(chunk, 0, conn.filter, conn.schema) : { buf: chunk.buf, count: n };
      if (buf.length === 0) continue;
      const queued = sock.writableLength;
      if (queued > 0 && queued + buf.length > bound) {
        if (this.policy === 'disconnect') {
          this.dropSlow(conn);
          continue;
        }
        // Behind: from now on it is fed from the ring once its backlog has flushed; it only
        // loses what the ring lets go before it gets there.
        conn.mode = 'catch-up';
        conn.nextSeq = chunk.first;
        this.watchFlush(conn);
        continue;
      }
      this.writeStream(conn, buf, count);
    }
  }

  /** Out of the request phase: fed from the ring from conn.nextSeq on. */
  start(conn: Conn): void {
    conn.sock.resume();
    conn.mode = 'catch-up';
    conn.slack = this.ring.bytesFrom(Math.max(conn.nextSeq, this.ring.first));
    this.pump(conn);
  }

  /** Bytes a catching-up client is behind: in its socket, and in the ring still to send. */
  private behind(conn: Conn): number {
    return conn.sock.writableLength + this.ring.bytesFrom(conn.nextSeq);
  }

  /** Writes `count` event lines of the shared stream to one client. */
  private writeStream(conn: Conn, buf: Buffer, count: number): void {
    conn.sock.write(buf);
    conn.sent += count;
    conn.bytes += buf.length;
    this.counters.sentEvents += count;
    this.counters.sentBytes += buf.length;
  }

  /** Writes lines of its own (not of the shared stream) to one client. */
  private writeOwn(conn: Conn, text: string | Buffer): void {
    const n = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    conn.sock.write(text);
    conn.bytes += n;
    this.counters.sentBytes += n;
  }

  /**
   * Feeds a catching-up client from the ring, as fast as its socket drains; once it has
   * everything, it goes live. What the ring no longer holds becomes one `lost` line with
   * the exact count.
   */
  private pump(conn: Conn): void {
    const sock = conn.sock;
    const half = Math.max(this.bufferBytes >> 1, 1);
    while (conn.mode === 'catch-up' && conn.state === 'streaming' && !sock.destroyed) {
      if (conn.own) {
        // Its answer first (hello, snapshot), piece by piece within its bound.
        if (sock.writableLength >= half) return this.watchFlush(conn);
        if (conn.owed > 0 && !this.charge(conn, conn.own[0]?.length ?? 0)) return;
        const piece = conn.own.shift();
        if (conn.own.length === 0) {
          conn.own = null;
          this.hooks.answerWritten(conn);
        }
        if (piece) {
          conn.ownBytes -= piece.length;
          this.writeOwn(conn, piece);
        }
        continue;
      }
      if (conn.perLine) return this.pacer.kick(conn);
      if (conn.nextSeq >= this.ring.next) {
        conn.mode = 'live';
        return;
      }
      if (sock.writableLength >= half) return this.watchFlush(conn);
      if (conn.nextSeq < this.ring.first) {
        this.writeLost(conn);
        continue;
      }
      const at = this.ring.find(conn.nextSeq);
      if (!at) return; // cannot happen: nextSeq is within the ring
      if (conn.owed > 0 && !this.charge(conn, viewOf(at.chunk, conn.schema).buf.length)) return;
      const { buf, count } = select(at.chunk, at.index, conn.filter, conn.schema);
      conn.nextSeq = at.chunk.first + at.chunk.ends.length;
      if (buf.length === 0) continue;
      this.writeStream(conn, buf, count);
    }
  }

  /**
   * Pays for `n` bytes of a requested answer from its peer's budget (16 MiB a second, 64 MiB
   * at once): true if it may write them now; else false, and pump() runs again once it may.
   */
  private charge(conn: Conn, n: number): boolean {
    const wait = this.answerBudget.take(peerKey(conn), n);
    if (wait > 0) {
      if (!conn.feedTimer) {
        conn.feedTimer = setTimeout(() => {
          conn.feedTimer = null;
          this.pump(conn);
        }, wait);
      }
      return false;
    }
    conn.owed = Math.max(0, conn.owed - n);
    return true;
  }

  /** Gives up a client's backlog before seq `to` (the ring no longer holds it): one `lost` line with the exact count. */
  private writeLost(conn: Conn, to = this.ring.first): void {
    const missed = to - conn.nextSeq;
    const lost = lostEvent(missed, 'client');
    this.writeOwn(conn, conn.schema === 'ecs' ? `${JSON.stringify(toEcs(lost))}\n` : toLine(lost));
    conn.dropped += missed;
    this.counters.droppedEvents += missed;
    conn.nextSeq = to;
  }

  /**
   * Writes a perLine client its next line if it is due; false when it has none to get (or is
   * gone). A line goes only once the one before has been handed to the kernel and about
   * LINE_GAP_MS have passed, so that each goes out in a segment of its own; one whose socket
   * has bytes waiting is picked up again when they have flushed. Its backlog is bounded by
   * PACED_MAX_BEHIND (it is never disconnected as slow for it: its pace is ours), and by the
   * ring. It is `live` while it has every line, `catch-up` while lines wait for it.
   */
  private stepLine(conn: Conn, now: number): boolean {
    const sock = conn.sock;
    if (conn.state !== 'streaming' || sock.destroyed || !this.hooks.open()) return false;
    conn.mode = conn.nextSeq < this.ring.next ? 'catch-up' : 'live';
    if (conn.mode === 'live') return false;
    if (sock.writableLength > 0) {
      this.watchFlush(conn); // it is paced again from pump() once they have gone
      return false;
    }
    // (The timer ticks on whole milliseconds: a tick 4.x ms after the last line is on time.)
    if (now - conn.lineAt < LINE_GAP_MS - 1) return true;
    conn.lineAt = now;
    if (conn.nextSeq < this.ring.first) {
      this.writeLost(conn);
      return true;
    }
    if (this.ring.next - conn.nextSeq > PACED_MAX_BEHIND) {
      this.writeLost(conn, this.ring.next - PACED_MAX_BEHIND / 2);
      return true;
    }
    const at = this.ring.find(conn.nextSeq);
    if (!at) return false;
    const { chunk, index } = at;
    conn.nextSeq++;
    const v = viewOf(chunk, conn.schema);
    this.writeStream(conn, v.buf.subarray(lineOffset(v, index), v.ends[index]), 1);
    if (conn.nextSeq < this.ring.next) return true;
    conn.mode = 'live';
    return false;
  }

  /**
   * Calls back once everything queued for a client has been flushed (an empty write
   * completes in order), to go on feeding it from the ring even if no further batch comes.
   */
  private watchFlush(conn: Conn): void {
    if (conn.flushWatch) return;
    conn.flushWatch = true;
    conn.sock.write(EMPTY, () => {
      conn.flushWatch = false;
      if (conn.state === 'streaming' && this.hooks.open() && !conn.sock.destroyed) this.pump(conn);
    });
  }

  /** Closes a client that made no progress for the stall timeout (StallWatch). */
  dropStalled(conn: Conn, queued: number, ms: number): void {
    this.counters.stallDisconnects++;
    this.drop(conn, 'stalled', `stalled (${queued} bytes waiting, none taken for ${(ms / 1000).toFixed(1)} s)`);
  }

  private dropSlow(conn: Conn): void {
    this.counters.slowDisconnects++;
    this.drop(conn, 'slow', `too slow (${conn.sock.writableLength} bytes buffered)`);
  }

  private drop(conn: Conn, reason: 'slow' | 'stalled', why: string): void {
    conn.reason = reason;
    this.hooks.log(`${who(conn)}: client ${conn.id} ${why}, disconnecting`);
    conn.state = 'closing';
    this.members.delete(conn);
    conn.sock.destroy();
  }

  /** Each client's figures. */
  clientStats(): ClientStats[] {
    return [...this.members].map((c) => ({
      id: c.id,
      transport: c.transport,
      peer: c.peer,
      sent: c.sent,
      bytes: c.bytes,
      dropped: c.dropped,
      buffered: c.sock.writableLength,
      answerBytes: c.ownBytes,
      mode: c.mode,
      filtered: c.filter !== null,
    }));
  }

  /** Stops pacing (the server is closing). */
  close(): void {
    this.pacer.close();
  }
}
