'use strict';
// The broadcast server end to end with the real connector: our children's fork, exec and
// exit over both transports; spawn storms with a stalled client beside a healthy one;
// half-closed clients that keep reading.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { StringDecoder } = require('node:string_decoder');
const { PASSWORD_PROMPT, AUTH_SUCCESS, ProcConnector } = require('..');
const { tmpDir, serve, waitFor, rawConnect, until, tcpAuth, events, spawnAndWait } = require('./server-helpers');

const PW = 'correct horse';

// ------------------------------------------------------------------ end to end with the kernel

/** A server on a Unix socket and TCP fed by a real ProcConnector (fork, exec, exit). */
async function realServer(t) {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const conn = new ProcConnector({ events: 'fork,exec,exit' });
  conn.start();
  t.after(() => conn.stop());
  const srv = await serve(t, { source: conn, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  return { srv, p, conn };
}

async function endToEnd(t, transport) {
  const { srv, p } = await realServer(t);
  const client = transport === 'unix' ? rawConnect(p) : await tcpAuth(srv.address().tcp.port, PW);

  await until(() => srv.stats().clients === 1);
  const pid = await spawnAndWait('/bin/sh', ['-c', 'sleep 0.1; exit 7', 'pm-e2e']);
  await until(() => events(client).some((e) => e.event === 'exit' && e.pid === pid), 10000, 'the exit of our child');
  const mine = events(client).filter((e) => e.child_pid === pid || e.pid === pid);
  assert.deepEqual(
    mine.map((e) => e.event),
    ['fork', 'exec', 'exit'],
  );
  assert.equal(mine[0].parent_pid, process.pid);
  assert.equal(mine[1].pid, pid);
  // (argv is read from /proc: only checked when the connector could read it in time)
  if (!mine[1].missing) assert.deepEqual(mine[1].argv, ['/bin/sh', '-c', 'sleep 0.1; exit 7', 'pm-e2e']);
  assert.equal(mine[2].exit_code, 7 << 8);
  assert.equal(mine[2].code, 7);
  // Each line has "event" first, as on the wire.
  for (const line of client.lines().filter((l) => l.startsWith('{'))) assert.ok(line.startsWith('{"event":"'), line);
  client.sock.destroy();
}

test('end to end over the Unix socket with the real connector: fork, exec, exit of our child', (t) => endToEnd(t, 'unix'));
test('end to end over TCP with the real connector: fork, exec, exit of our child', (t) => endToEnd(t, 'tcp'));

/**
 * A client run by test/stalled-client.py (`mode` stall or read) in a process of its own; its
 * output goes to a file, which poll() reads on from where it left off: `head` is its first
 * line, `evs` the events parsed so far.
 */
function pyClient(t, dir, name, mode, args) {
  const file = path.join(dir, `${name}.out`);
  const out = fs.openSync(file, 'w');
  const cp = spawn('python3', [path.join(__dirname, 'stalled-client.py'), mode, ...args], { stdio: ['pipe', out, 'inherit'] });
  fs.closeSync(out);
  t.after(() => cp.kill());
  const fd = fs.openSync(file, 'r');
  t.after(() => fs.closeSync(fd));
  const decoder = new StringDecoder('utf8');
  const buf = Buffer.alloc(1 << 20);
  let offset = 0;
  let rest = '';
  const rec = { cp, head: null, evs: [], exited: new Promise((r) => cp.on('exit', r)) };
  rec.poll = () => {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      if (n === 0) return rec;
      offset += n;
      const lines = (rest + decoder.write(buf.subarray(0, n))).split('\n');
      rest = lines.pop();
      for (const l of lines) {
        if (rec.head === null) rec.head = l;
        else rec.evs.push(JSON.parse(l));
      }
    }
  };
  return rec;
}

/**
 * A spawn storm through the real connector with two clients in processes of their own: a
 * healthy one that reads everything at once, and a stalled one (tiny receive buffer) that
 * reads nothing until told to. The healthy one gets fork, exec and exit of every process of
 * the storm (matched by the pids the storm made: other processes run on the machine too);
 * the stalled one is, per policy, told its loss exactly when it reads again ('drop') or
 * closed ('disconnect').
 */
async function stormRun(t, transport, slowClient, N) {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const conn = new ProcConnector({ events: 'fork,exec,exit' });
  conn.start();
  t.after(() => conn.stop());
  // A ring of 200 events, far less than the storm: the stalled client cannot catch up on it.
  // No request window: both stream from their first moment (the ring alone would not hold
  // what other processes on the machine may do meanwhile).
  const bound = 256 * 1024;
  const srv = await serve(t, {
    source: conn,
    unix: { path: p },
    tcp: { port: 0, host: '127.0.0.1', password: PW },
    clientBufferBytes: bound,
    slowClient,
    replayEvents: 200,
    requestWaitMs: 0,
  });
  const target = transport === 'unix' ? [p] : [`127.0.0.1:${srv.address().tcp.port}`, PW];
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  const ids = [];
  srv.on('client', (c) => ids.push(c.id));
  const stalled = pyClient(t, dir, 'stalled', 'stall', target);
  await until(() => stalled.poll().head !== null, 10000, 'the stalled client connected');
  assert.match(stalled.head, /^connected rcvbuf=\d+$/);
  const healthy = pyClient(t, dir, 'healthy', 'read', target);
  await until(() => healthy.poll().head !== null, 10000, 'the healthy client connected');
  await until(() => ids.length === 2, 10000, 'both streaming');
  const [stalledId] = ids;
  const list = Array.from({ length: N }, (_, i) => i).join(' ');
  // (The shell's command line, the list, rides on every fork: megabytes of events in all,
  // more than a loopback TCP socket's send buffer, ~1.4 MB, so the stalled client really
  // falls behind on TCP too.)
  const sh = await spawnAndWait('/bin/sh', ['-c', `for i in ${list}; do /bin/true; done`]);
  await until(() => healthy.poll().evs.some((e) => e.event === 'exit' && e.pid === sh), 30000, 'the exit of the storm shell at the healthy client');
  // Every process of the storm, complete and in order, at the healthy client.
  const evs = healthy.evs;
  assert.deepEqual(
    evs.filter((e) => e.event === 'lost'),
    [],
    'the healthy client lost nothing',
  );
  evs.forEach((e, i) => i === 0 || assert.equal(e.seq, evs[i - 1].seq + 1, 'no gap in the healthy stream'));
  const kids = evs.filter((e) => e.event === 'fork' && e.parent_pid === sh).map((e) => e.child_pid);
  assert.equal(kids.length, N, 'a fork for every /bin/true');
  const at = new Map();
  evs.forEach((e, i) => {
    const key = `${e.event}:${e.event === 'fork' ? e.child_pid : e.pid}`;
    if (!at.has(key)) at.set(key, i);
  });
  for (const kid of kids) {
    const f = at.get(`fork:${kid}`);
    const x = at.get(`exec:${kid}`);
    const q = at.get(`exit:${kid}`);
    assert.ok(f !== undefined && x !== undefined && q !== undefined && f < x && x < q, `fork, exec, exit of ${kid} in order`);
  }
  const st = srv.stats();
  if (slowClient === 'disconnect') {
    assert.deepEqual(
      closes.map((c) => [c.id, c.reason]),
      [[stalledId, 'slow']],
    );
    assert.equal(st.slowDisconnects, 1);
    // What it had before being cut off is an in-order prefix, without a lost line.
    stalled.cp.stdin.write('go\n');
    await stalled.exited;
    const got = stalled.poll().evs;
    assert.ok(got.length > 0 && got.every((e) => e.event !== 'lost'), `${got.length} events: ${JSON.stringify(got.filter((e) => e.event === 'lost'))}`);
    got.forEach((e, i) => i === 0 || assert.equal(e.seq, got[i - 1].seq + 1));
    assert.ok(got.at(-1).seq < st.seq, 'cut off before the end');
  } else {
    assert.deepEqual(closes, [], 'nobody disconnected');
    const me = st.perClient.find((c) => c.id === stalledId);
    assert.equal(me.mode, 'catch-up', 'it fell behind');
    assert.ok(me.buffered <= bound + 64 * 1024, `its buffer stays bounded: ${me.buffered}`);
    // It reads again: its stream accounts for every seq from its first on, each gap told
    // by one lost line with the exact count.
    const upTo = st.seq;
    stalled.cp.stdin.write('go\n');
    await until(() => stalled.poll().evs.some((e) => e.seq >= upTo), 30000, 'the stalled client caught up');
    let next = null;
    let owed = 0;
    let lost = 0;
    let lostLines = 0;
    for (const e of stalled.evs) {
      if (e.event === 'lost') {
        assert.equal(e.source, 'client');
        lostLines++;
        lost += e.count;
        owed += e.count;
        continue;
      }
      if (next !== null) assert.equal(e.seq, next + owed, 'a gap is exactly what the lost lines said');
      next = e.seq + 1;
      owed = 0;
    }
    assert.ok(lostLines >= 1, 'it was told of its loss');
    assert.equal(srv.stats().perClient.find((c) => c.id === stalledId).dropped, lost);
  }
}

test('spawn storm (unix, drop): the healthy client gets every fork/exec/exit; the stalled one (tiny receive buffer) is told its loss exactly', (t) =>
  stormRun(t, 'unix', 'drop', 1000));
test('spawn storm (tcp, disconnect): the healthy client gets every fork/exec/exit; the stalled one (tiny receive buffer) is closed as slow', (t) =>
  stormRun(t, 'tcp', 'disconnect', 1000));

/**
 * A client that closes its sending side right away (`nc -U sock </dev/null`,
 * `printf 'pw\n' | nc -N host port`) keeps receiving real events; once it has gone
 * altogether, the next write ends it with reason 'end'.
 */
async function halfClosed(t, how) {
  const { srv, p } = await realServer(t);
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  let client;
  if (how === 'tcp') {
    client = rawConnect({ port: srv.address().tcp.port });
    await until(() => client.text() === PASSWORD_PROMPT);
    client.sock.end(`${PW}\n`);
    await until(() => client.text().startsWith(PASSWORD_PROMPT + AUTH_SUCCESS), 10000, 'authenticated');
  } else {
    client = rawConnect(p);
    await client.connected;
    // A request line cut short by the EOF is taken as it is.
    client.sock.end(how === 'unix-request' ? '{"events":["exec","exit"]}' : '');
  }
  await new Promise((r) => (client.sock.writableFinished ? r() : client.sock.once('finish', r)));
  await until(() => srv.stats().perClient.length === 1 && srv.stats().perClient[0].mode === 'live', 10000, 'streaming');
  await new Promise((r) => setTimeout(r, 100)); // its EOF has long reached the server
  const pid = await spawnAndWait('/bin/sh', ['-c', 'exit 3', 'pm-half']);
  await until(() => events(client).some((e) => e.event === 'exit' && e.pid === pid), 10000, 'the exit of our child');
  const mine = events(client).filter((e) => e.child_pid === pid || e.pid === pid);
  if (how === 'unix-request') {
    assert.equal(events(client)[0].event, 'hello');
    assert.deepEqual(
      mine.map((e) => e.event),
      ['exec', 'exit'],
    );
    assert.ok(
      events(client).every((e) => e.event !== 'fork'),
      'filtered as asked',
    );
  } else {
    assert.deepEqual(
      mine.map((e) => e.event),
      ['fork', 'exec', 'exit'],
    );
  }
  assert.equal(mine.at(-1).code, 3);
  assert.equal(client.closed, false);
  assert.deepEqual(closes, []);
  // Now it goes away altogether: the next events written to it end it.
  client.sock.destroy();
  const gone = waitFor(srv, 'clientClose');
  const feed = setInterval(() => spawn('/bin/true', { stdio: 'ignore' }), 50);
  t.after(() => clearInterval(feed));
  const info = await gone;
  clearInterval(feed);
  assert.equal(info.reason, 'end');
  assert.equal(srv.stats().clients, 0);
}

test('half-closed Unix client (nothing sent, then EOF) keeps receiving real events', (t) => halfClosed(t, 'unix'));
test('half-closed Unix client (a request line without newline, then EOF) gets what it asked for', (t) => halfClosed(t, 'unix-request'));
test('half-closed TCP client (password line, then EOF) keeps receiving real events', (t) => halfClosed(t, 'tcp'));
