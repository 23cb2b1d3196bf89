/**
 * The broadcast server's stream as bytes: each batch serialised once with its daemon-wide
 * `seq` numbers, kept in a bounded ring so that a client can be fed from any point it still
 * holds (a resume, a catch-up after falling behind), and per-client filters that pick lines
 * out of those bytes without serialising anything again.
 */
import { EVENT_NAMES, KIND_NAMES, LOST_KIND, type EventName, type LineBatch } from '../events';
import { pickLines } from '../filter';
import { ecsLines, type Schema } from '../ecs';
import type { NativeLineFilter } from '../native';

/** One batch as it went on the wire. */
export interface Chunk extends LineBatch {
  /** seq of its first line. */
  first: number;
  /** Bytes of the stream before it (set by the ring). */
  at: number;
}

/**
 * Numbers the lines of a batch from `first`: `{...,"seq":N}` per line, the bytes copied
 * once, nothing parsed or serialised again.
 */
export function numberLines(lines: LineBatch, first: number): Chunk {
  const { buf, ends } = lines;
  const n = ends.length;
  const out = Buffer.allocUnsafe(buf.length + n * 26); // ',"seq":' + 16 digits + '}\n' at most
  const newEnds = new Uint32Array(n);
  let src = 0;
  let dst = 0;
  for (let i = 0; i < n; i++) {
    const end = ends[i] as number;
    const body = end - 2; // every line ends with "}\n": the seq goes last
    dst += buf.copy(out, dst, src, body);
    dst += out.write(`${body - src > 1 ? ',' : ''}"seq":${first + i}}\n`, dst, 'latin1');
    newEnds[i] = dst;
    src = end;
  }
  return { first, at: 0, buf: out.subarray(0, dst), ends: newEnds, kinds: lines.kinds, uids: lines.uids };
}

/** What a client asked to receive: some event kinds, some users, its own filter. `lost` always passes. */
export interface Filter {
  /** Bit per KIND_NAMES index. */
  kinds: number;
  /** uids, or null for every user. */
  uids: Set<number> | null;
  /** Its request's match, exclude and subtree, run on the lines; or null. */
  lines: LineSelector | null;
}

/**
 * A client's own filter on the stream's lines (native/line_filter.h). A subtree changes with
 * each fork and exit it sees, so every chunk of the stream is offered to it once, in order,
 * from its request on, whether the client is live, behind, or skipping what the ring let go
 * (Fanout.broadcast; Requests.answer offers the backlog first); what it decided for a chunk is
 * kept while the ring holds the chunk and the client has not gone past it.
 */
export class LineSelector {
  private readonly masks = new Map<number, Uint8Array>(); // chunk.first -> 1 per line kept
  private offered = 0; // seq of the next line to offer

  constructor(private readonly filter: NativeLineFilter) {}

  /** Offers the next chunk of the stream (one offered already is not again); lets go of the decisions on chunks before `held` (the ring's first seq). */
  offer(c: Chunk, held: number): void {
    for (const [first, m] of this.masks) if (first + m.length <= held) this.masks.delete(first);
    if (c.first < this.offered) return;
    this.masks.set(c.first, this.filter.keep(c.buf, c.ends));
    this.offered = c.first + c.ends.length;
  }

  /** Per line of `c`, 1 if it goes out; the client takes chunks in order, so those before `c` are done with. */
  mask(c: Chunk): Uint8Array {
    for (const first of this.masks.keys()) if (first < c.first) this.masks.delete(first);
    if (!this.masks.has(c.first)) this.offer(c, c.first); // (every chunk is offered first: see above)
    return this.masks.get(c.first) ?? new Uint8Array(c.ends.length);
  }
}

/** A filter from event names and uids (either may be absent: everything), and the client's own on lines. */
export function makeFilter(events: readonly EventName[] | null, uids: readonly number[] | null, lines: NativeLineFilter | null = null): Filter | null {
  if (!events && !uids && !lines) return null;
  let kinds = 1 << LOST_KIND;
  for (const name of events ?? EVENT_NAMES) kinds |= 1 << KIND_NAMES.indexOf(name);
  return { kinds, uids: uids ? new Set(uids) : null, lines: lines ? new LineSelector(lines) : null };
}

function passes(c: Chunk, i: number, f: Filter, mask: Uint8Array | null): boolean {
  const k = c.kinds[i] as number;
  if (k === LOST_KIND) return true;
  if (!(f.kinds & (1 << k))) return false;
  if (f.uids !== null && !f.uids.has(c.uids[i] as number)) return false;
  return mask === null || mask[i] === 1;
}

/** Byte offset in `c.buf` where line `i` starts. */
export function lineOffset(c: { ends: Uint32Array }, i: number): number {
  return i === 0 ? 0 : (c.ends[i - 1] as number);
}

/** Each chunk's lines in ECS, made once for every client that asked for them. */
const ecsViews = new WeakMap<Chunk, LineBatch>();

/** The lines of `c` as a client with `schema` gets them (the same lines, one for one). */
export function viewOf(c: Chunk, schema: Schema): LineBatch {
  if (schema === 'default') return c;
  let v = ecsViews.get(c);
  if (!v) ecsViews.set(c, (v = ecsLines(c)));
  return v;
}

/**
 * The lines of `c` from index `from` on that pass `f` (no copy when all of them do), as a
 * client with `schema` gets them (filters match the stream's own lines).
 */
export function select(c: Chunk, from: number, f: Filter | null, schema: Schema = 'default'): { buf: Buffer; count: number } {
  const v = viewOf(c, schema);
  if (!f) return { buf: from === 0 ? v.buf : v.buf.subarray(lineOffset(v, from)), count: c.ends.length - from };
  const mask = f.lines ? f.lines.mask(c) : null;
  return pickLines(v.buf, v.ends, from, (i) => passes(c, i, f, mask));
}

/** The last `maxEvents` events (and at most `maxBytes` bytes of them) as they went on the wire. */
export class ReplayRing {
  private chunks: Chunk[] = [];
  private head = 0;
  /** Events and bytes held. */
  events = 0;
  bytes = 0;
  /** seq of the next event to come. */
  next = 1;
  /** Bytes of the whole stream so far. */
  total = 0;

  constructor(
    readonly maxEvents: number,
    readonly maxBytes: number,
  ) {}

  /** seq of the oldest event held (`next` when empty). */
  get first(): number {
    const c = this.chunks[this.head];
    return c ? c.first : this.next;
  }

  push(c: Chunk): void {
    this.next = c.first + c.ends.length;
    c.at = this.total;
    this.total += c.buf.length;
    if (this.maxEvents === 0) return;
    this.chunks.push(c);
    this.events += c.ends.length;
    this.bytes += c.buf.length;
    // Whole batches leave, oldest first, until the bounds hold (the newest always stays).
    while (this.events > this.maxEvents || this.bytes > this.maxBytes) {
      if (this.chunks.length - this.head <= 1) break;
      const old = this.chunks[this.head] as Chunk;
      this.chunks[this.head++] = undefined as unknown as Chunk;
      this.events -= old.ends.length;
      this.bytes -= old.buf.length;
    }
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** Bytes of the stream from `seq` on (Infinity when the ring no longer holds seq). */
  bytesFrom(seq: number): number {
    if (seq >= this.next) return 0;
    const at = this.find(seq);
    if (!at) return Infinity;
    return this.total - at.chunk.at - (at.index > 0 ? (at.chunk.ends[at.index - 1] as number) : 0);
  }

  /** The chunks held from the one holding `seq` (or the oldest, if seq is older) on, in order. */
  chunksFrom(seq: number): Chunk[] {
    const at = this.find(Math.max(seq, this.first));
    if (!at) return [];
    return this.chunks.slice(this.chunks.indexOf(at.chunk, this.head));
  }

  /** The chunk holding `seq` and the line's index in it, or null if not held. */
  find(seq: number): { chunk: Chunk; index: number } | null {
    if (seq < this.first || seq >= this.next) return null;
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.chunks[mid] as Chunk).first <= seq) lo = mid;
      else hi = mid - 1;
    }
    const chunk = this.chunks[lo] as Chunk;
    return { chunk, index: seq - chunk.first };
  }
}
