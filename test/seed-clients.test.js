'use strict';
// Clients written for the seed keep working unchanged: the seed README's own client command
// lines (procMonitor-client takes the flags of its processClient.js), and a client that, as
// processClient.js does over TCP, parses each read as one JSON object.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { daemon, freePort } = require('./daemon');
const { run } = require('./helpers');
const { until } = require('./server-helpers');

const CLIENT = path.join(__dirname, '..', 'bin', 'procMonitor-client');
const PW = 'mysecretpassword';

/** Whether nothing listens on 127.0.0.1:port. */
function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Runs procMonitor-client with args until the test ends; cp.out is what it printed. */
function client(t, args) {
  const cp = spawn(process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cp.out = '';
  cp.err = '';
  cp.stdout.on('data', (d) => (cp.out += d));
  cp.stderr.on('data', (d) => (cp.err += d));
  t.after(() => cp.kill('SIGKILL'));
  return cp;
}

/** A process with a marker in its argv that lives long enough for its argv to be read; resolves with its pid. */
async function marked(marker) {
  return (await run('/bin/sh', ['-c', 'sleep 0.05', 'sh', marker])).pid;
}

test("the seed README's client command lines, against its daemon command lines (Unix socket and TCP)", async (t) => {
  // Example 1: the Unix socket at the path the seed names.
  const sock = '/tmp/procMonitor.sock';
  const unix = daemon(t, ['--clients', '20', '--socket', sock, '-e', 'exec,fork,exit']);
  await unix.ready;
  const a = client(t, ['--socket', sock]);
  await unix.saw(/unix: client \d+ connected/);
  const pa = await marked('seed-readme-unix');
  // The exit comes after the exec, possibly in a later read: wait for it, then look for both.
  await until(() => new RegExp(`exit +${pa} `).test(a.out), 10000, `the exit on the client's output: ${a.out}${a.err}`);
  assert.match(a.out, new RegExp(`exec +${pa} root +/bin/sh -c sleep 0\\.05 sh seed-readme-unix`));
  assert.match(a.out, new RegExp(`exit +${pa} root +code 0`));
  assert.equal((await unix.stop('SIGTERM', 5000)).code, 0);

  // Example 2: TCP on port 8080 with the seed's password; the client as the README runs it,
  // and with the seed client's defaults (localhost, port 8080).
  if (!(await portFree(8080))) {
    assert.ok(!process.env.CI, 'port 8080 is taken: the seed command lines need it');
    return t.skip('port 8080 is taken on this machine: the seed command lines need it (their Unix socket half ran)');
  }
  const tcp = daemon(t, ['--tcp', '8080', '--auth', PW, '--clients', '50', '-e', 'exec,fork,exit']);
  await tcp.ready;
  const b = client(t, ['--tcp', '--host', '127.0.0.1', '--port', '8080', '--auth', PW]);
  const c = client(t, ['-t', '-a', PW]);
  await until(() => (tcp.err.match(/tcp [^ ]+: client \d+ connected/g) ?? []).length === 2, 10000, 'both clients authenticated');
  await until(() => (tcp.err.match(/asked for the stream/g) ?? []).length === 2, 10000, 'both clients to ask for the batched stream');
  const pb = await marked('seed-readme-tcp');
  for (const cp of [b, c]) {
    await until(() => new RegExp(`exit +${pb} `).test(cp.out), 10000, `the exit on the client's output: ${cp.out}${cp.err}`);
    assert.match(cp.out, new RegExp(`exec +${pb} root +/bin/sh -c sleep 0\\.05 sh seed-readme-tcp`));
  }
  assert.equal((await tcp.stop('SIGTERM', 5000)).code, 0);
});

// A client like the seed's processClient.js over TCP, in a process of its own (so that this
// test's own spawns never hold up its reads): it sends the password as soon as it is
// connected, then reports each read as it came, parsed as one JSON object or not.
const READER = `
  const net = require('node:net');
  const [port, password, request] = process.argv.slice(1);
  const s = net.connect(Number(port), '127.0.0.1', () => s.write(password + '\\n' + (request ?? '')));
  s.on('data', (d) => {
    const text = d.toString();
    let ev = null;
    try { ev = JSON.parse(text); } catch {}
    process.stdout.write(JSON.stringify({ text: ev ? undefined : text, ev }) + '\\n');
  });
  s.on('close', () => process.exit(0));
`;

/** Starts a READER; r.reads() are its reads so far: { text } (not one JSON object) or { ev }. */
function reader(t, port, request) {
  const cp = spawn(process.execPath, ['-e', READER, String(port), PW, ...(request === undefined ? [] : [request])], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => cp.kill('SIGKILL'));
  let out = '';
  cp.stdout.on('data', (d) => (out += d));
  return {
    reads: () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}

test('a client that parses each TCP read as one JSON object (as the seed client does) gets every event at an ordinary rate, one per read (two, rarely, when the reader was held up)', async (t) => {
  const port = await freePort();
  const cp = daemon(t, ['--tcp', String(port), '--bind', '127.0.0.1', '--auth', PW, '-e', 'exec,fork,exit']);
  await cp.ready;
  const r = reader(t, port);
  await cp.saw(/client \d+ connected/);
  await until(() => r.reads().some((x) => x.text && x.text.includes('Authentication successful.\n')), 10000, 'the answer');
  await new Promise((res) => setTimeout(res, 300)); // its request window has passed: it sent nothing
  // Tens of events a second: 20 processes, 50 ms apart, each a fork, an exec and an exit.
  const pids = [];
  for (let i = 0; i < 20; i++) {
    pids.push(await marked(`seed-ordinary-${i}`));
    await new Promise((res) => setTimeout(res, 50));
  }
  // Each read's events: one object, or (a read that took two paced lines together) its lines.
  const evsOf = (x) =>
    x.ev
      ? [x.ev]
      : x.text
          .split('\n')
          .filter((l) => l.startsWith('{"event"'))
          .map((l) => JSON.parse(l));
  const mine = (reads, pid) =>
    reads
      .flatMap(evsOf)
      .filter((ev) => ev.child_pid === pid || ev.pid === pid)
      .map((ev) => ev.event);
  await until(() => pids.every((pid) => mine(r.reads(), pid).includes('exit')), 15000, 'the exit of every process');
  const reads = r.reads();
  // The handshake: the prompt, then the answer alone (it may come in the same read as the
  // prompt, as the seed client sends its password without waiting for it), never an event.
  const handshake = reads.filter((x) => !x.ev && !x.text.includes('{"event"')).map((x) => x.text);
  assert.ok(handshake.length <= 2, JSON.stringify(handshake));
  assert.ok(handshake.join('') === 'Password: Authentication successful.\n', JSON.stringify(handshake));
  // Lines are written one per write, LINE_GAP_MS apart; a reader not scheduled for longer than
  // that (a loaded machine) takes two in one read, which TCP cannot prevent: rare, and always
  // whole lines.
  const together = reads.filter((x) => !x.ev && x.text.includes('{"event"'));
  const eventReads = reads.filter((x) => x.ev || x.text.includes('{"event"')).length;
  for (const x of together) assert.match(x.text, /^(\{"event".*\}\n)+$/, 'whole lines only');
  assert.ok(together.length * 10 <= eventReads, `${together.length} of ${eventReads} reads took several lines: ${JSON.stringify(together)}`);
  for (const pid of pids) assert.deepEqual(mine(reads, pid), ['fork', 'exec', 'exit'], `pid ${pid}`);
  assert.equal((await cp.stop('SIGTERM', 5000)).code, 0);
});

test('a client that sends a request line keeps the batched writes: several events in one read in a storm', async (t) => {
  const port = await freePort();
  const cp = daemon(t, ['--tcp', String(port), '--bind', '127.0.0.1', '--auth', PW, '-e', 'exec,fork,exit']);
  await cp.ready;
  const r = reader(t, port, '{}\n');
  await cp.saw(/client 1 asked for the stream/);
  await run('/bin/sh', ['-c', 'for i in $(seq 300); do /bin/true; done']);
  const many = () => r.reads().filter((x) => x.text && x.text.split('\n').filter((l) => l.startsWith('{"event"')).length > 1);
  await until(() => many().length > 0, 10000, 'a read of several event lines');
  assert.equal((await cp.stop('SIGTERM', 5000)).code, 0);
});

test('server: a TCP client that sends nothing after its password is written a line per write; one that sent an empty line gets the batched stream', async (t) => {
  const { createBroadcastServer } = require('..');
  const { FakeSource, tcpAuth, events } = require('./server-helpers');
  const source = new FakeSource();
  const srv = createBroadcastServer({ source, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  t.after(() => srv.close());
  await srv.listen();
  const port = srv.address().tcp.port;
  const seed = await tcpAuth(port, PW, { seed: true });
  const plain = await tcpAuth(port, PW);
  await until(() => srv.stats().perClient.length === 2 && srv.stats().perClient.every((c) => c.mode === 'live'), 10000, 'both past their request window');
  // What reaches the seed client, read by read (server and client share this event loop:
  // each paced write is read before the next is made).
  const before = seed.chunks.length;
  source.batch(200);
  await until(() => events(seed).length === 200 && events(plain).length === 200, 10000, 'every event at both');
  assert.deepEqual(
    events(seed).map((e) => e.n),
    [...Array(200).keys()],
  );
  assert.deepEqual(events(plain), events(seed));
  const reads = seed.chunks.slice(before).map(String);
  assert.equal(reads.length, 200, `one read per line: ${reads.length} reads`);
  for (const c of reads) assert.equal(c.split('\n').length, 2, c);
  // The plain client got them in far fewer reads.
  assert.ok(plain.chunks.length < 50, `${plain.chunks.length} reads`);
});

// ------------------------------------------------------------------ paced clients, the hazards

/** A server on a FakeSource and one TCP client that sent nothing but its password, past its request window. */
async function pacedClient(t, opts = {}) {
  const { createBroadcastServer } = require('..');
  const { FakeSource, tcpAuth } = require('./server-helpers');
  const source = new FakeSource();
  const srv = createBroadcastServer({ source, tcp: { port: 0, host: '127.0.0.1', password: PW }, ...opts });
  t.after(() => srv.close());
  await srv.listen();
  const c = await tcpAuth(srv.address().tcp.port, PW, { seed: true });
  await until(() => srv.stats().perClient[0]?.mode === 'live', 10000, 'past its request window');
  return { srv, source, c };
}

test('paced client: the ring lets go of its backlog: one lost line with the exact count, then the rest in order', async (t) => {
  const { checkAccounting, events } = require('./server-helpers');
  const { source, c } = await pacedClient(t, { replayEvents: 100 });
  for (let i = 0; i < 5; i++) source.batch(100); // the ring keeps the newest batch only
  await until(
    () =>
      events(c)
        .filter((e) => e.event !== 'lost')
        .at(-1)?.n === 499,
    15000,
    'the last event',
  );
  const acc = checkAccounting(events(c), 500);
  assert.ok(acc.lost > 0 && acc.lostLines >= 1, JSON.stringify(acc));
});

test('paced client: more than 2,000 lines behind, the oldest half becomes one lost line; never disconnected as slow', async (t) => {
  const { events } = require('./server-helpers');
  const { srv, source, c } = await pacedClient(t, { slowClient: 'disconnect', bufferBytes: 1024 });
  source.batch(2500);
  await until(() => events(c).some((e) => e.event !== 'lost' && e.n >= 1505), 10000, 'lines after the lost one');
  const evs = events(c);
  const lost = evs.filter((e) => e.event === 'lost');
  assert.deepEqual(
    lost.map((e) => [e.count, e.source]),
    [[1500, 'client']],
  );
  assert.deepEqual(
    evs
      .filter((e) => e.event !== 'lost')
      .slice(0, 5)
      .map((e) => e.n),
    [1500, 1501, 1502, 1503, 1504],
  );
  assert.equal(srv.stats().perClient.length, 1, 'still connected');
  assert.equal(srv.stats().slowDisconnects, 0);
});

test('paced client: gone while lines wait for it, or the server closed under it: the pacer stops, nothing is left behind', async (t) => {
  const { srv, source, c } = await pacedClient(t);
  source.batch(300);
  await until(() => c.chunks.length > 5, 10000, 'a few lines');
  // (The server's private fan-out: its Pacer's timer and the clients it paces.)
  const pacer = (s) => s.fanout.pacer;
  assert.equal(pacer(srv).running, true, 'pacing');
  c.sock.destroy();
  await until(() => !pacer(srv).running && pacer(srv).size === 0, 10000, 'the pacer to stop');
  const again = await pacedClient(t);
  again.source.batch(300);
  await until(() => again.c.chunks.length > 5, 10000, 'a few lines');
  const t0 = Date.now();
  await again.srv.close();
  assert.ok(Date.now() - t0 < 2000, 'closed promptly');
  assert.equal(pacer(again.srv).running, false);
  assert.equal(pacer(again.srv).size, 0);
});
