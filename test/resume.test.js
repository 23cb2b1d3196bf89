'use strict';
// The daemon-wide seq, the replay ring and request lines of the broadcast server (resume,
// snapshot, filters), and the client library's reconnect-and-resume. A fake source numbers
// its events in `n` (0, 1, 2, ...); the server's seq starts at 1 with the server.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { connect, ProcConnector } = require('..');
const { tmpDir, serve, FakeSource, rawConnect, until, tcpAuth, events } = require('./server-helpers');
const { run, SELF_COMM } = require('./helpers');
const { daemon } = require('./daemon');

const PW = 'resume password';

/** Event lines of a raw client (not hello/process/snapshot answers). */
const evs = (rec) => events(rec).filter((e) => !['hello', 'process', 'snapshot'].includes(e.event));

/** A raw Unix client that sends `request` at once. */
function ask(p, request) {
  const c = rawConnect(p);
  c.sock.write(`${typeof request === 'string' ? request : JSON.stringify(request)}\n`);
  return c;
}

test('seq: one more per event, from 1, across batches; the same bytes for every client', async (t) => {
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p } });
  const a = rawConnect(p);
  const b = rawConnect(p);
  await until(() => srv.stats().clients === 2 && srv.stats().perClient.every((c) => c.mode === 'live'));
  await source.stream(50, 7);
  await until(() => evs(a).length === 350 && evs(b).length === 350);
  evs(a).forEach((e, i) => assert.equal(e.seq, e.n + 1, `line ${i}`));
  assert.equal(a.text(), b.text());
  assert.ok(a.lines()[0].endsWith(',"seq":1}'), a.lines()[0]);
  assert.equal(srv.stats().seq, 350);
});

test('a client that sends nothing gets every event from its connect on, even during its request window', async (t) => {
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p }, requestWaitMs: 300 });
  source.batch(10); // before it connects: not for it
  const c = rawConnect(p);
  await until(() => srv.stats().clients === 1);
  source.batch(5); // during its window
  assert.equal(c.text(), '');
  await until(() => srv.stats().perClient[0].mode === 'live');
  source.batch(5);
  await until(() => evs(c).length === 10);
  assert.deepEqual(
    evs(c).map((e) => e.n),
    [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
  );
  assert.ok(!c.text().includes('hello'), 'no answer to a request it did not send');
});

test('a request line that came within its window is answered even when the event loop was busy past the window', async (t) => {
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p }, requestWaitMs: 50 });
  const c = rawConnect(p);
  await until(() => srv.stats().perClient.some((x) => x.mode === 'request'));
  c.sock.write('{"resume_from":0}\n');
  // The server runs in this process: block its loop well past the window (as a big snapshot
  // being built for another client would), the line already in its socket.
  const until150 = Date.now() + 150;
  while (Date.now() < until150);
  await until(() => c.text().includes('"event":"hello"'), 5000);
  assert.equal(srv.stats().perClient[0].mode === 'request', false);
});

test('resume_from: everything after N still in the ring, then live, no duplicate, no gap (Unix and TCP)', async (t) => {
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  source.batch(100); // seq 1..100
  const u = ask(p, { resume_from: 40 });
  // TCP: the request may come in the same write as the password.
  const tc = rawConnect({ port: srv.address().tcp.port });
  await until(() => tc.text() === 'Password: ');
  tc.sock.write(`${PW}\n{"resume_from": 90}\n`);
  await until(() => evs(u).length === 60 && evs(tc).length === 10);
  source.batch(5);
  await until(() => evs(u).length === 65 && evs(tc).length === 15);
  assert.deepEqual(
    evs(u).map((e) => e.seq),
    Array.from({ length: 65 }, (_, i) => 41 + i),
  );
  assert.deepEqual(
    evs(tc).map((e) => e.seq),
    Array.from({ length: 15 }, (_, i) => 91 + i),
  );
  const hello = events(u)[0];
  assert.deepEqual(Object.keys(hello), ['event', 'time', 'stream', 'last_seq']);
  assert.equal(hello.stream, srv.stats().stream);
  assert.equal(hello.last_seq, 100);
  // Caught up already: nothing again.
  const d = ask(p, { resume_from: 105 });
  source.batch(1);
  await until(() => evs(d).length === 1 && evs(u).length === 66);
  assert.equal(evs(d)[0].seq, 106);
});

test('a resume point older than the ring: one lost line with the exact count, then what it holds', async (t) => {
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p }, replayEvents: 1000 });
  for (let i = 0; i < 30; i++) source.batch(100); // seq 1..3000; the ring keeps 2001..3000
  assert.equal(srv.stats().replay.first, 2001);
  const c = ask(p, { resume_from: 500 });
  await until(() => evs(c).length === 1001);
  const [lost, ...rest] = evs(c);
  assert.equal(lost.event, 'lost');
  assert.equal(lost.source, 'client');
  assert.equal(lost.count, 1500); // 501..2000
  assert.equal(lost.seq, undefined, "a client's own line has no seq");
  assert.deepEqual(
    rest.map((e) => e.seq),
    Array.from({ length: 1000 }, (_, i) => 2001 + i),
  );
  // Another stream's seq (the daemon restarted): everything of this one, which starts at 1.
  const other = ask(p, { resume_from: 2500, stream: 'deadbeef' });
  await until(() => evs(other).length === 1001);
  assert.deepEqual(evs(other)[0], { ...evs(other)[0], event: 'lost', count: 2000 });
});

test('requests: event and user filters, a snapshot of the process table first, clear errors', async (t) => {
  const source = new FakeSource();
  source.snapshot = () => [
    { pid: 1, ppid: 0, comm: 'init', exe: '/sbin/init', cmdline: '/sbin/init', user: 'root', uid: 0, start_time: null, exec_time: null, threads: 0, learned: true },
    { pid: 7, ppid: 1, comm: 'daemon', exe: '/usr/sbin/daemon', cmdline: 'daemon', user: 'nobody', uid: 65534, start_time: null, exec_time: null, threads: 0, learned: true },
  ];
  const p = path.join(tmpDir(t), 'pm.sock');
  await serve(t, { source, unix: { path: p } });
  const mixed = () =>
    source.emit('batch', [
      { event: 'fork', time: 't', child_pid: 2, parent_pid: 1, user: 'root', uid: 0 },
      { event: 'exec', time: 't', pid: 2, user: 'nobody', uid: 65534 },
      { event: 'exit', time: 't', pid: 2, user: 'nobody', uid: 65534 },
      { event: 'lost', time: 't', count: 3, source: 'kernel' },
      { event: 'comm', time: 't', pid: 2, comm: 'x' },
      { event: 'exit', time: 't', pid: 3, user: 'root', uid: 0 },
    ]);
  const onlyExits = ask(p, { events: ['exit'] });
  const nobody = ask(p, { users: ['nobody'], snapshot: true });
  const byUid = ask(p, { users: [0], events: 'exec,exit' });
  await until(() => [onlyExits, nobody, byUid].every((c) => events(c).length > 0)); // hello
  mixed();
  await until(() => evs(onlyExits).length === 3 && evs(nobody).length === 3 && evs(byUid).length === 2);
  assert.deepEqual(
    evs(onlyExits).map((e) => [e.event, e.seq]),
    [
      ['exit', 3],
      ['lost', 4],
      ['exit', 6],
    ],
  );
  assert.deepEqual(
    evs(nobody).map((e) => [e.event, e.seq]),
    [
      ['exec', 2],
      ['exit', 3],
      ['lost', 4],
    ],
  );
  assert.deepEqual(
    evs(byUid).map((e) => [e.event, e.seq]),
    [
      ['lost', 4],
      ['exit', 6],
    ],
  );
  // The snapshot (filtered by user too) comes first, ended by a count.
  const lines = events(nobody);
  assert.equal(lines[0].event, 'hello');
  assert.deepEqual(lines[1], { event: 'process', ...source.snapshot()[1] });
  assert.equal(lines[2].event, 'snapshot');
  assert.equal(lines[2].count, 1);
  for (const [req, why] of [
    ['{"resume_from": -1}', /resume_from must be a whole number/],
    ['{"resume": 1}', /unknown request field "resume"/],
    ['{"events": ["exec", "nope"]}', /events: unknown event "nope"/],
    ['{"users": ["no-such-user-here"]}', /unknown user "no-such-user-here"/],
    ['{"snapshot": "yes"}', /snapshot must be true or false/],
    ['{broken', /the request is not JSON/],
    [`{"stream": "${'x'.repeat(9000)}"}`, /longer than 8192 bytes/],
  ]) {
    const c = ask(p, req);
    await c.closedP;
    assert.match(c.text(), /^Bad request: .*\. Disconnecting\.\n$/, req);
    assert.match(c.text(), why);
  }
  // No process table in the source: a snapshot request is refused.
  const p2 = path.join(tmpDir(t), 'pm2.sock');
  await serve(t, { source: new FakeSource(), unix: { path: p2 } });
  const c = ask(p2, { snapshot: true });
  await c.closedP;
  assert.match(c.text(), /Bad request: this server keeps no process table/);
});

test('a snapshot far bigger than clientBufferBytes goes out in pieces as the client reads: its socket buffer stays bounded, nothing is lost', async (t) => {
  const source = new FakeSource();
  const N = 5000;
  const table = Array.from({ length: N }, (_, i) => ({
    pid: 1000 + i,
    ppid: 1,
    comm: 'worker',
    exe: '/usr/bin/worker',
    cmdline: `worker --id ${i} ${'x'.repeat(200)}`,
    user: 'root',
    uid: 0,
    start_time: null,
    exec_time: null,
    threads: 0,
    learned: true,
  }));
  source.snapshot = () => table; // about 1.6 MB on the wire
  const p = path.join(tmpDir(t), 'pm.sock');
  const bound = 16 * 1024;
  for (const slowClient of ['drop', 'disconnect']) {
    const srv = await serve(t, { source, unix: { path: p.replace('.sock', `-${slowClient}.sock`) }, clientBufferBytes: bound, slowClient });
    const closes = [];
    srv.on('clientClose', (c) => closes.push(c));
    const c = rawConnect(srv.address().unix);
    c.sock.pause(); // reads nothing for now
    c.sock.write('{"snapshot": true}\n');
    await until(() => srv.stats().perClient.length === 1 && srv.stats().perClient[0].mode !== 'request');
    const first = source.n;
    source.batch(20); // events while the snapshot waits: they follow it
    // The socket's buffer fills to its bound and stays there; the rest of the answer waits.
    let most = 0;
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) {
      const st = srv.stats().perClient[0];
      most = Math.max(most, st.buffered);
      await new Promise((r) => setTimeout(r, 10));
    }
    const st = srv.stats().perClient[0];
    assert.ok(most <= bound, `${slowClient}: at most ${bound} bytes in its socket buffer, saw ${most}`);
    assert.ok(st.answerBytes > 1000000, `${slowClient}: most of the snapshot still waits (${st.answerBytes} bytes)`);
    assert.deepEqual(closes, [], `${slowClient}: not disconnected for its own snapshot`);
    // It reads: the whole table, the count, then the events, in order, none lost.
    c.sock.resume();
    await until(() => evs(c).length === 20, 10000, 'the events after the snapshot');
    const lines = events(c);
    assert.equal(lines[0].event, 'hello');
    assert.deepEqual(
      lines.slice(1, N + 1).map((l) => l.pid),
      table.map((r) => r.pid),
    );
    assert.deepEqual(lines[N + 1], { ...lines[N + 1], event: 'snapshot', count: N });
    assert.deepEqual(
      evs(c).map((e) => e.n),
      Array.from({ length: 20 }, (_, i) => first + i),
    );
    assert.equal(srv.stats().perClient[0].answerBytes, 0);
    c.sock.destroy();
  }
});

test('connect({ resume: true }): after the connection drops it resumes; the stream is complete and duplicate-free', async (t) => {
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  for (const where of [{ path: p }, { port: srv.address().tcp.port, password: PW }]) {
    const first = source.n;
    const client = connect({ ...where, resume: { delayMs: 20 } });
    const got = [];
    const hellos = [];
    let reconnects = 0;
    client.on('event', (e) => got.push(e));
    client.on('hello', (h) => hellos.push(h));
    client.on('reconnecting', () => reconnects++);
    await client.ready();
    await until(() => hellos.length === 1 && srv.stats().perClient.every((c) => c.mode === 'live'));
    const feeding = source.stream(200, 20, 50);
    t.after(() => client.close());
    // Cut it off three times mid-stream, each time once it is back.
    for (let k = 0; k < 3; k++) {
      await until(() => hellos.length === k + 1 && got.length > (k + 1) * 800);
      client.sock.destroy();
    }
    await feeding;
    await until(() => got.length === 4000 && hellos.length === 4, 15000, `4000 events (got ${got.length})`);
    assert.deepEqual(
      got.map((e) => e.n),
      Array.from({ length: 4000 }, (_, i) => first + i),
    );
    assert.equal(got.filter((e) => e.event === 'lost').length, 0);
    assert.equal(reconnects, 3);
    assert.equal(hellos.length, 4);
    assert.ok(hellos.every((h) => h.stream === srv.stats().stream));
    assert.equal(client.seq, got.at(-1).seq);
    await client.close();
  }
});

test("close() called from a 'reconnecting' listener: the client closes at once and never reconnects", async (t) => {
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source: new FakeSource(), unix: { path: p } });
  const client = connect({ path: p, resume: { delayMs: 50 } });
  await client.ready();
  await until(() => srv.stats().clients === 1);
  let closing = null;
  client.on('reconnecting', () => (closing ??= client.close()));
  let closed = 0;
  client.on('close', () => closed++);
  client.sock.destroy();
  await until(() => closing !== null, 5000, 'the reconnecting event');
  const done = await Promise.race([closing.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 2 s'), 2000))]);
  assert.equal(done, 'closed');
  assert.equal(closed, 1);
  await new Promise((r) => setTimeout(r, 200)); // past the reconnect delay
  assert.equal(srv.stats().clients, 0, 'no reconnection');
});

test('a daemon killed mid-storm and its client resuming against the real connector: the same stream as a client that stayed', async (t) => {
  const p = path.join(tmpDir(t), 'pm.sock');
  const conn = new ProcConnector({ events: 'fork,exec,exit' }).start();
  t.after(() => conn.stop());
  const srv = await serve(t, { source: conn, unix: { path: p } });
  const ref = rawConnect(p);
  const client = connect({ path: p, resume: { delayMs: 10 } });
  const got = [];
  client.on('event', (e) => got.push(e));
  await client.ready();
  await until(() => srv.stats().perClient.length === 2 && srv.stats().perClient.every((c) => c.mode === 'live'));
  const storm = run('/bin/sh', ['-c', 'for i in $(seq 400); do /bin/true; done']);
  await until(() => got.length > 100);
  client.sock.destroy(); // killed mid-storm
  const { pid: sh } = await storm;
  const { pid: marker } = await run('/bin/sleep', ['0.1']);
  const done = (list) => list.some((e) => e.event === 'exit' && e.pid === marker);
  await until(() => done(got) && done(evs(ref)), 15000, 'both saw the marker');
  const seqs = (list) => list.filter((e) => e.seq <= list.find((x) => x.event === 'exit' && x.pid === marker).seq).map((e) => e.seq);
  const refSeqs = seqs(evs(ref));
  const mine = seqs(got).filter((s) => s >= refSeqs[0]);
  assert.deepEqual(mine, refSeqs.slice(refSeqs.indexOf(mine[0])), 'no duplicate, no gap');
  assert.equal(mine.at(-1), refSeqs.at(-1));
  assert.equal(new Set(got.map((e) => e.seq)).size, got.length);
  // Every child of the storm: fork, exec, exit, at the resumed client too.
  const kids = got.filter((e) => e.event === 'fork' && e.parent_pid === sh).map((e) => e.child_pid);
  assert.ok(kids.length >= 300, `${kids.length} children seen`);
  for (const k of kids)
    assert.deepEqual(
      got.filter((e) => (e.pid ?? e.child_pid) === k).map((e) => e.event),
      ['fork', 'exec', 'exit'],
    );
  await client.close();
  ref.sock.destroy();
});

test('the daemon: {"snapshot": true} gives the live table first; --replay 0 turns requests off', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const d = daemon(t, ['--socket', p, '-e', 'exec']);
  await d.ready;
  const c = connect({ path: p, request: { snapshot: true } });
  const snap = new Promise((resolve) => c.once('snapshot', resolve));
  await c.ready();
  const procs = await snap;
  const self = procs.find((r) => r.pid === process.pid);
  assert.ok(self, 'our process is in the table');
  assert.equal(self.comm, SELF_COMM);
  assert.equal(self.learned, true);
  assert.ok(procs.some((r) => r.pid === d.pid));
  await c.close();
  const p2 = path.join(dir, 'pm2.sock');
  const d2 = await daemon(t, ['--socket', p2, '-e', 'exec', '--replay', '0']).ready;
  const raw = ask(p2, { snapshot: true });
  await d2.saw(/unix: client \d+ connected/); // its stream starts here: the exec below is in it
  const { pid } = await run('/bin/sleep', ['0.1']);
  await until(() => evs(raw).some((e) => e.pid === pid));
  assert.ok(!raw.text().includes('"hello"'), 'the request was not read');
  assert.equal(evs(raw).find((e) => e.pid === pid).seq > 0, true);
  raw.sock.destroy();
});

test('tcpAuth helper still sees the plain stream after a password and nothing else', async (t) => {
  const source = new FakeSource();
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  const c = await tcpAuth(srv.address().tcp.port, PW, { seed: true });
  await until(() => srv.stats().perClient[0]?.mode === 'live');
  source.batch(3);
  await until(() => evs(c).length === 3);
  assert.deepEqual(
    evs(c).map((e) => e.seq),
    [1, 2, 3],
  );
});

test('procMonitor-client --events/--users ask the server to filter; --resume reconnects and goes on', async (t) => {
  const { parseClientArgs } = require('../dist/cli/client');
  const o = parseClientArgs(['-s', '/x.sock', '-e', 'exec,exit', '-u', 'root,1000', '--resume']);
  assert.deepEqual(o.connect, { path: '/x.sock', request: { events: ['exec', 'exit'], users: ['root', 1000] }, resume: true });
  assert.throws(() => parseClientArgs(['-u', 'root,']), /--users needs a comma list/);
  const source = new FakeSource();
  const p = path.join(tmpDir(t), 'pm.sock');
  const srv = await serve(t, { source, unix: { path: p } });
  const cli = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'procMonitor-client'), '-s', p, '--json', '--resume'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => cli.kill('SIGKILL'));
  let out = '';
  let err = '';
  cli.stdout.on('data', (d) => (out += d));
  cli.stderr.on('data', (d) => (err += d));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  await until(() => srv.stats().perClient.length === 1 && srv.stats().perClient[0].mode === 'live');
  source.batch(10);
  await until(() => lines().length === 10);
  // The server cuts it off (its socket, from the server side): it comes back for the rest.
  for (const c of srv.conns.all) c.sock.destroy(); // (private: every connection of the server)
  source.batch(10); // while it is away
  await until(() => lines().length === 20, 10000, `20 lines (${out.length} bytes, stderr: ${err})`);
  assert.deepEqual(
    lines().map((e) => e.seq),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.match(err, /connection lost; reconnecting in \d+ ms \(attempt 1\)/);
  cli.kill('SIGTERM');
});
