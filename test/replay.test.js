'use strict';
// The replay ring and the filters, directly (no sockets): every line numbered exactly once and
// found again by its seq; the ring lets go of whole batches, oldest first, by count and by
// bytes, never the newest; byte counts exact; filters keep `lost` lines and drop nothing else
// they should pass, in order.
const test = require('node:test');
const assert = require('node:assert/strict');
const { linesOf, KIND_NAMES } = require('..');
const { numberLines, makeFilter, select, lineOffset, ReplayRing } = require('../dist/server/replay');

/** A LineBatch of `n` events: exec for even i, exit for odd, uid i % 3; `lost` where asked. */
function batch(n, from = 0, lostAt = -1) {
  const evs = [];
  for (let i = from; i < from + n; i++) {
    if (i === lostAt) evs.push({ event: 'lost', time: 't', count: 7, source: 'kernel' });
    else evs.push({ event: i % 2 ? 'exit' : 'exec', time: 't', pid: 1000 + i, uid: i % 3 });
  }
  return linesOf(evs);
}

const parse = (buf) =>
  buf
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

test('numberLines: each line gets its seq as its last field, the rest byte for byte', () => {
  const lines = batch(5);
  const c = numberLines(lines, 41);
  const evs = parse(c.buf);
  assert.deepEqual(
    evs.map((e) => e.seq),
    [41, 42, 43, 44, 45],
  );
  assert.deepEqual(
    evs.map((e) => e.pid),
    [1000, 1001, 1002, 1003, 1004],
  );
  for (let i = 0; i < 5; i++) {
    const line = c.buf.subarray(lineOffset(c, i), c.ends[i]).toString();
    assert.ok(line.endsWith(`,"seq":${41 + i}}\n`), line);
  }
  // An empty object gets no leading comma.
  const empty = numberLines({ buf: Buffer.from('{}\n'), ends: Uint32Array.of(3), kinds: Uint8Array.of(0), uids: Int32Array.of(-1) }, 1);
  assert.equal(empty.buf.toString(), '{"seq":1}\n');
});

test('the ring: bounded by events and by bytes, whole batches leave oldest first, the newest always stays', () => {
  const ring = new ReplayRing(10, 1 << 20);
  for (let b = 0; b < 5; b++) ring.push(numberLines(batch(4, b * 4), ring.next));
  assert.equal(ring.next, 21);
  assert.equal(ring.first, 13, 'two batches of 4 held at most 10 events: the three oldest left');
  assert.equal(ring.events, 8);
  assert.equal(ring.find(12), null);
  assert.equal(ring.find(21), null);
  for (let seq = 13; seq <= 20; seq++) {
    const at = ring.find(seq);
    const ev = parse(at.chunk.buf.subarray(lineOffset(at.chunk, at.index), at.chunk.ends[at.index]))[0];
    assert.equal(ev.seq, seq);
  }
  // A batch bigger than either bound is kept alone.
  const small = new ReplayRing(2, 100);
  small.push(numberLines(batch(3), small.next));
  small.push(numberLines(batch(30), small.next));
  assert.equal(small.first, 4);
  assert.equal(small.events, 30);
  // No ring at all: numbered, nothing held.
  const none = new ReplayRing(0, 100);
  none.push(numberLines(batch(3), none.next));
  assert.equal(none.next, 4);
  assert.equal(none.first, 4);
  assert.equal(none.bytesFrom(1), Infinity);
});

test('the ring: bytesFrom is the exact byte count of the stream from a seq on', () => {
  const ring = new ReplayRing(1000, 1 << 20);
  const chunks = [];
  for (let b = 0; b < 4; b++) {
    const c = numberLines(batch(3 + b, b * 10), ring.next);
    chunks.push(c);
    ring.push(c);
  }
  // From each seq: the length of everything from that line on.
  const lines = Buffer.concat(chunks.map((c) => c.buf))
    .toString()
    .split('\n')
    .filter(Boolean);
  for (let seq = 1; seq < ring.next; seq++) {
    const rest = lines.slice(seq - 1).join('\n') + '\n';
    assert.equal(ring.bytesFrom(seq), Buffer.byteLength(rest), `from ${seq}`);
  }
  assert.equal(ring.bytesFrom(ring.next), 0);
});

test('the ring stays compact over a long run (its array is trimmed as batches leave)', () => {
  const ring = new ReplayRing(50, 1 << 20);
  for (let b = 0; b < 5000; b++) ring.push(numberLines(batch(1, b), ring.next));
  assert.equal(ring.events, 50);
  assert.ok(ring.chunks.length < 2200, `${ring.chunks.length} slots for 50 batches`); // (private)
  assert.equal(ring.find(4951).index, 0);
});

test('filters: kinds and uids AND-ed, lost always passes, order kept, no copy when all pass', () => {
  const c = numberLines(batch(12, 0, 5), 1);
  const evs = parse(c.buf);
  assert.equal(makeFilter(null, null), null);
  const all = select(c, 0, null);
  assert.equal(all.buf, c.buf, 'the same bytes, not a copy');
  assert.equal(all.count, 12);
  const fromFour = select(c, 4, null);
  assert.equal(fromFour.count, 8);
  assert.equal(parse(fromFour.buf)[0].seq, 5);
  const cases = [
    [['exec'], null, 0],
    [null, [1], 0],
    [['exit'], [0, 2], 2],
    [['fork'], null, 0],
    [['exec', 'exit'], [5], 3],
  ];
  for (const [events, uids, from] of cases) {
    const want = evs.slice(from).filter((e) => e.event === 'lost' || ((!events || events.includes(e.event)) && (!uids || uids.includes(e.uid))));
    const got = select(c, from, makeFilter(events, uids));
    assert.deepEqual(parse(got.buf), want, JSON.stringify({ events, uids, from }));
    assert.equal(got.count, want.length);
  }
  // The lost line is the one thing a filter never takes away.
  assert.deepEqual(
    parse(select(c, 0, makeFilter(['fork'], [99])).buf).map((e) => e.event),
    ['lost'],
  );
  assert.ok(KIND_NAMES.includes('lost'));
});
