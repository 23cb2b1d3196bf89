'use strict';
// Many clients at once: the slots (a full server says why; an ended client makes room;
// pending connections bounded), identical complete ordered streams to all, a slow or stalled
// client losing only its own events (exactly counted), and close() with clients in every state.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { createBroadcastServer, PASSWORD_PROMPT, AUTH_SUCCESS, tooManyClientsLine, tooManyPendingLine } = require('..');
const { tmpDir, serve, waitFor, FakeSource, rawConnect, until, tcpAuth, events, checkAccounting } = require('./server-helpers');

const PW = 'correct horse';

// ------------------------------------------------------------------ limits

/** A server on a Unix socket and TCP with maxClients 2, fed by a FakeSource. */
async function twoSlots(t) {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, maxClients: 2 });
  const port = srv.address().tcp.port;
  return { srv, source, p, port };
}

test('maxClients: a client that ended its side (gone, or only half-closed) gives its slot to a newcomer, with no event in between', async (t) => {
  const { srv, source, p, port } = await twoSlots(t);
  const a = rawConnect(p);
  await until(() => srv.stats().clients >= 1);
  const b = rawConnect(p);
  await until(() => srv.stats().clients >= 2);
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  a.sock.destroy(); // gone altogether: only its EOF is seen
  await until(() => srv.stats().perClient.length === 2 && closes.length === 0);
  await new Promise((r) => setTimeout(r, 100)); // its EOF has arrived; no event is written
  // A newcomer takes the slot of the client that ended: a, not b, which still reads.
  const c = await tcpAuth(port, PW);
  assert.equal(c.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].reason, 'end');
  source.batch(1);
  await until(() => events(b).length === 1 && events(c).length === 1);
  // With nobody ended, the next one is refused as before.
  const d = rawConnect(p);
  await d.closedP;
  assert.equal(d.text(), tooManyClientsLine(2));
  b.sock.destroy();
  c.sock.destroy();
});

test('maxClients: the next Unix or TCP client is told why and closed', async (t) => {
  const { srv, source, p, port } = await twoSlots(t);
  const a = rawConnect(p);
  await until(() => srv.stats().clients >= 1);
  const b = await tcpAuth(port, PW);
  assert.equal(b.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  const c = rawConnect(p);
  await c.closedP;
  assert.equal(c.text(), tooManyClientsLine(2));
  const d = rawConnect({ port });
  await d.closedP;
  assert.equal(d.text(), tooManyClientsLine(2));
  assert.equal(tooManyClientsLine(2), 'Too many clients (max 2). Disconnecting.\n');
  // A client authenticating while the last slot fills is told too.
  const gone = waitFor(srv, 'clientClose');
  a.sock.destroy();
  // Its EOF alone could be a half-close (it would still read): the next write tells it left.
  source.batch(1);
  assert.equal((await gone).reason, 'end');
  const e = await tcpAuth(port, PW);
  assert.equal(e.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  source.batch(1);
  await until(() => events(b).length === 2 && events(e).length === 1);
  assert.equal(srv.stats().clients, 2);
  assert.equal(srv.stats().rejected['too-many-clients'], 2);
  b.sock.destroy();
  e.sock.destroy();
});

test('maxPending: connections waiting to authenticate are bounded', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, maxPending: 2 });
  const port = srv.address().tcp.port;
  const a = rawConnect({ port });
  const b = rawConnect({ port });
  await until(() => a.text() === PASSWORD_PROMPT && b.text() === PASSWORD_PROMPT);
  const c = rawConnect({ port });
  await c.closedP;
  assert.equal(c.text(), tooManyPendingLine(2));
  // Once one authenticates, a slot frees.
  a.sock.write(`${PW}\n`);
  await until(() => srv.stats().clients >= 1);
  const d = await tcpAuth(port, PW);
  assert.equal(d.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  for (const r of [a, b, d]) r.sock.destroy();
});

// ------------------------------------------------------------------ fan-out

test('50 clients (Unix and TCP) all receive identical, complete, ordered streams', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, maxClients: 50 });
  const port = srv.address().tcp.port;
  const clients = [];
  let joined = 0;
  srv.on('client', () => joined++);
  for (let i = 0; i < 25; i++) clients.push(rawConnect(p));
  for (let i = 0; i < 25; i++) clients.push(await tcpAuth(port, PW));
  await until(() => joined === 50);
  const BATCHES = 400;
  const SIZE = 25;
  const total = BATCHES * SIZE;
  await source.stream(BATCHES, SIZE, 40, 4);
  await until(() => clients.every((c) => c.lines().length >= total + (c.text().startsWith('Password') ? 1 : 0)), 30000, 'every event at every client');
  const ref = events(clients[0]);
  assert.equal(ref.length, total);
  ref.forEach((ev, i) => assert.equal(ev.n, i));
  const refText = clients[0].text();
  for (const c of clients.slice(1)) {
    const body = c.text().startsWith(PASSWORD_PROMPT) ? c.text().slice(PASSWORD_PROMPT.length + AUTH_SUCCESS.length) : c.text();
    assert.equal(body, refText);
  }
  const st = srv.stats();
  assert.equal(st.events, total);
  assert.equal(st.sentEvents, total * 50);
  assert.equal(st.droppedEvents, 0);
  assert.equal(st.clients, 50);
  for (const c of clients) c.sock.destroy();
});

async function slowClientRun(t, transport, replayEvents) {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const opts = { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, clientBufferBytes: 256 * 1024 };
  const srv = await serve(t, replayEvents === undefined ? opts : { ...opts, replayEvents });
  let joined = 0;
  srv.on('client', () => joined++);
  const slow = transport === 'unix' ? rawConnect(p) : await tcpAuth(srv.address().tcp.port, PW);
  slow.sock.pause(); // never reads while the storm lasts
  const fast = rawConnect(p);
  await until(() => joined === 2 && srv.stats().perClient.every((c) => c.mode !== 'request'));
  const BATCHES = 1000;
  const SIZE = 50;
  const total = BATCHES * SIZE; // ~ 11 MB of events: far more than kernel buffers plus 256 KiB
  await source.stream(BATCHES, SIZE, 100, 2);
  await until(() => events(fast).length === total, 30000, 'the fast client gets everything');
  checkAccounting(events(fast), total);
  const slowStats = srv.stats().perClient.find((c) => c.transport === transport && c.id !== 2 && c.sent < total);
  assert.ok(slowStats, `the slow client fell behind: ${JSON.stringify(srv.stats().perClient)}`);
  assert.equal(slowStats.mode, 'catch-up');
  assert.ok(slowStats.buffered <= 256 * 1024 + 10 * 1024, `memory bounded: ${slowStats.buffered}`);
  // Now it reads: what was queued, then what the ring still holds, then live again.
  slow.sock.resume();
  const accounted = () => {
    try {
      checkAccounting(events(slow), total);
      return true;
    } catch {
      return false;
    }
  };
  await until(() => accounted() && srv.stats().perClient.find((c) => c.id === slowStats.id).mode === 'live', 30000, 'caught up');
  const acc = checkAccounting(events(slow), total);
  const dropped = srv.stats().perClient.find((c) => c.id === slowStats.id).dropped;
  assert.equal(acc.lost, dropped);
  if (replayEvents === undefined) {
    // 50,000 events fit in the ring: it lost nothing.
    assert.equal(acc.received, total);
    assert.equal(acc.lostLines, 0);
  } else {
    // Only the last 5,000 (and what its socket held) were still there: one lost line, exact.
    assert.equal(acc.lostLines, 1);
    assert.ok(acc.received >= replayEvents && acc.received < total, `received ${acc.received}`);
    assert.equal(acc.received + acc.lost, total);
  }
  if (replayEvents === 0) {
    // No ring: what its socket held, in order, then one lost line for all the rest, last.
    const evs = events(slow);
    const at = evs.length - 1;
    assert.deepEqual(
      evs.slice(0, at).map((e) => e.n),
      Array.from({ length: at }, (_, i) => i),
    );
    assert.deepEqual(Object.keys(evs[at]), ['event', 'time', 'count', 'source']);
    assert.equal(evs[at].event, 'lost');
    assert.equal(evs[at].source, 'client');
    assert.equal(evs[at].count, total - at);
  }
  // And later events reach it again.
  source.batch(5);
  await until(() => events(slow).length === acc.received + acc.lostLines + 5 && events(fast).length === total + 5);
  checkAccounting(events(slow), total + 5);
  assert.deepEqual(
    events(slow)
      .slice(-5)
      .map((e) => e.n),
    [total, total + 1, total + 2, total + 3, total + 4],
  );
  slow.sock.destroy();
  fast.sock.destroy();
}

test('slow client (unix, drop): the others get everything; it catches up from the ring and loses nothing', (t) => slowClientRun(t, 'unix'));
test('slow client (tcp, drop): the others get everything; it catches up from the ring and loses nothing', (t) => slowClientRun(t, 'tcp'));
test('slow client behind more than the ring (unix, drop): one lost line with the exact count', (t) => slowClientRun(t, 'unix', 5000));
test('slow client behind more than the ring (tcp, drop): one lost line with the exact count', (t) => slowClientRun(t, 'tcp', 5000));
test('slow client with the ring off (unix, drop, replayEvents 0): one lost line with the exact count, then later events', (t) => slowClientRun(t, 'unix', 0));
test('slow client with the ring off (tcp, drop, replayEvents 0): one lost line with the exact count, then later events', (t) => slowClientRun(t, 'tcp', 0));

test('slow client (disconnect): it is closed with reason "slow", the others get everything', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, clientBufferBytes: 128 * 1024, slowClient: 'disconnect' });
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  let joined = 0;
  srv.on('client', () => joined++);
  const slow = rawConnect(p);
  slow.sock.pause();
  const fast = rawConnect(p);
  await until(() => joined === 2 && srv.stats().perClient.every((c) => c.mode !== 'request'));
  const total = 500 * 50;
  await source.stream(500, 50, 100, 2);
  await until(() => events(fast).length === total, 30000);
  checkAccounting(events(fast), total);
  await until(() => closes.length === 1);
  assert.equal(closes[0].reason, 'slow');
  assert.equal(srv.stats().slowDisconnects, 1);
  slow.sock.resume();
  await slow.closedP;
  // What it got before being cut off is an in-order prefix, with no lost line.
  const got = events(slow);
  got.forEach((ev, i) => assert.equal(ev.n, i));
  fast.sock.destroy();
});

// ------------------------------------------------------------------ stalled clients

/** Feeds ~3 MB/s of events (50 per batch, every 5 ms) until stop(). */
function feedSteadily(source) {
  const timer = setInterval(() => source.batch(50, 200), 5);
  return { stop: () => clearInterval(timer) };
}

/**
 * The kernel takes more bytes from a full socket only once a good part of its send buffer
 * has drained (Unix: 3/4 of ~200 KB; TCP: a third of a send buffer that grows to 4 MB), so
 * "progress" comes in steps: the slow reader reads well below the stream's rate, but enough
 * to make a step within the timeout (Unix 640 KB/s against 400 ms, TCP 1.3 MB/s against 2.5 s).
 */
async function stallRun(t, transport, stallTimeoutMs, readEveryMs) {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, clientBufferBytes: 64 * 1024, stallTimeoutMs });
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  const open = () => (transport === 'unix' ? rawConnect(p) : tcpAuth(srv.address().tcp.port, PW));
  // One never reads; one reads what it has every readEveryMs, slower than the stream; one reads all.
  const stalled = await open();
  stalled.sock.pause();
  const slow = await open();
  slow.sock.pause();
  const fast = await open();
  const header = fast.lines().length; // TCP: the authentication line
  let fastLines = header;
  fast.sock.on('data', (d) => {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) fastLines++;
  });
  await until(() => srv.stats().clients === 3 && srv.stats().perClient.every((c) => c.mode === 'live'));
  const [stalledId, slowId] = srv.stats().perClient.map((c) => c.id);
  let slowRead = 0;
  let looks = 0;
  let slowBehind = 0;
  let slowFromRing = 0;
  const reader = setInterval(() => {
    const chunk = slow.sock.read();
    if (chunk) slowRead += chunk.length;
    const st = srv.stats().perClient.find((c) => c.id === slowId);
    looks++;
    if (st && st.buffered > 0) slowBehind++;
    if (st && st.mode === 'catch-up') slowFromRing++;
  }, readEveryMs);
  t.after(() => clearInterval(reader));
  const feed = feedSteadily(source);
  t.after(() => feed.stop());
  const start = Date.now();
  await until(() => closes.length > 0, 30000, 'the stalled client closed');
  assert.ok(Date.now() - start >= stallTimeoutMs, 'not before the timeout');
  const readAtClose = slowRead;
  // The slow one goes on for two more timeouts: it is never taken for stalled.
  await new Promise((r) => setTimeout(r, 2 * stallTimeoutMs));
  feed.stop();
  clearInterval(reader);
  assert.deepEqual(
    closes.map((c) => [c.id, c.reason]),
    [[stalledId, 'stalled']],
  );
  assert.equal(srv.stats().stallDisconnects, 1);
  assert.ok(
    srv.stats().perClient.some((c) => c.id === slowId),
    'the slow client still streams',
  );
  assert.ok(slowRead > readAtClose, 'the slow client kept reading');
  assert.ok(slowBehind > looks / 2, `the slow client was behind most of the time (${slowBehind} of ${looks} looks)`);
  assert.ok(slowFromRing > 0, 'the slow client was fed from the ring (policy drop) and still not taken for stalled');
  // The fast one has every event.
  const total = source.n;
  await until(() => fastLines === total + header, 10000, `the fast client has every event (${fastLines} lines, ${total} events)`);
  checkAccounting(events(fast), total);
  // The stalled one finds its connection closed once it reads.
  stalled.sock.resume();
  await stalled.closedP;
  slow.sock.destroy();
  fast.sock.destroy();
}

test('stallTimeoutMs (unix): a client that never reads is closed as stalled; one that reads slowly is not', (t) => stallRun(t, 'unix', 400, 100));
test('stallTimeoutMs (tcp): a client that never reads is closed as stalled; one that reads slowly is not', (t) => stallRun(t, 'tcp', 2500, 50));

test('stallTimeoutMs 0: a client that never reads stays (policy drop)', async (t) => {
  const p = path.join(tmpDir(t), 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, clientBufferBytes: 64 * 1024, stallTimeoutMs: 0 });
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  const stalled = rawConnect(p);
  stalled.sock.pause();
  await until(() => srv.stats().clients === 1 && srv.stats().perClient[0].mode === 'live');
  const feed = feedSteadily(source);
  t.after(() => feed.stop());
  await until(() => srv.stats().perClient[0].mode === 'catch-up', 10000, 'it fell behind');
  await new Promise((r) => setTimeout(r, 1000));
  feed.stop();
  assert.deepEqual(closes, []);
  assert.equal(srv.stats().clients, 1);
  assert.ok(srv.stats().perClient[0].buffered > 0);
  stalled.sock.destroy();
});

// ------------------------------------------------------------------ shutdown

test('close() with stalled and pending clients finishes and removes the socket file', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = createBroadcastServer({ source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  await srv.listen();
  let joined = 0;
  srv.on('client', () => joined++);
  const stalled = [rawConnect(p), rawConnect(p), await tcpAuth(srv.address().tcp.port, PW)];
  for (const s of stalled) s.sock.pause();
  const pending = rawConnect({ port: srv.address().tcp.port });
  await until(() => joined === 3 && pending.text() === PASSWORD_PROMPT && srv.stats().perClient.every((c) => c.mode !== 'request'));
  await source.stream(300, 50, 200, 4); // fill their buffers
  assert.ok(srv.stats().perClient.some((c) => c.buffered > 0));
  const reasons = [];
  srv.on('clientClose', (c) => reasons.push(c.reason));
  await srv.close();
  assert.equal(fs.existsSync(p), false);
  assert.deepEqual(reasons, ['server-close', 'server-close', 'server-close']);
  assert.equal(srv.stats().clients, 0);
  // The server no longer listens on either transport.
  await assert.rejects(new Promise((res, rej) => net.createConnection(p).on('connect', res).on('error', rej)));
  for (const s of [...stalled, pending]) {
    s.sock.resume();
    await s.closedP;
  }
  assert.equal(source.listenerCount('batch'), 0);
  await srv.close(); // idempotent
});
