'use strict';
// Fault injection: the kernel drops events, clients vanish mid-write, the socket directory
// goes away, the port is taken, SIGTERM in a storm, file descriptors run out. Real sockets,
// real processes, the real daemon where the fault is the daemon's.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { createBroadcastServer, connect, ProcConnector, TOO_MANY_FILES, FD_RESERVE } = require('..');
const { tmpDir, FakeSource, rawConnect, until, tcpAuth, events, checkAccounting } = require('./server-helpers');
const { run } = require('./helpers');
const { BIN, NOBODY, NET_ADMIN_ONLY, daemon, freePort } = require('./daemon');

const PW = 'fault password';
const NO_STACK = /\n\s+at /;

/** A parsed NDJSON stream of a raw client; until(pred) resolves when pred(events) holds. */
function streamOf(rec) {
  return {
    events: () => events(rec),
    until: (pred, ms = 15000, what = 'events') => until(() => pred(events(rec)), ms, what),
  };
}

/** Spawns a marker process until a client's stream shows its exit (events may be dropped). */
async function markerSeen(streams, tries = 8) {
  for (let i = 0; i < tries; i++) {
    const { pid } = await run('/bin/sh', ['-c', 'exit 7', 'pm-marker']);
    try {
      for (const s of streams) await s.until((evs) => evs.some((e) => e.event === 'exit' && e.pid === pid), 2000, `exit of ${pid}`);
      return pid;
    } catch {
      /* the marker's events were dropped too: try again */
    }
  }
  throw new Error('no marker process was seen');
}

const storm = (n) => run('/bin/sh', ['-c', `for i in $(seq ${n}); do /bin/true; done`]);

// ------------------------------------------------------------------ the kernel drops events

test('daemon with --rcvbuf 1 in a storm: clients get a kernel "lost" line, then delivery resumes', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const p = path.join(dir, 'pm.sock');
  const cp = daemon(t, ['--socket', p, '--rcvbuf', '1', '-e', 'all']);
  await cp.ready;
  const c = rawConnect(p);
  t.after(() => c.sock.destroy());
  await c.connected;
  const s = streamOf(c);
  for (let i = 0; i < 10 && !s.events().some((e) => e.event === 'lost'); i++) {
    await storm(300);
    await new Promise((r) => setTimeout(r, 100));
  }
  const lost = s.events().find((e) => e.event === 'lost');
  assert.ok(lost, 'a lost line arrived');
  assert.equal(lost.source, 'kernel');
  assert.ok(lost.count > 0);
  const at = s.events().indexOf(lost);
  const pid = await markerSeen([s]);
  assert.ok(s.events().findIndex((e) => e.event === 'exit' && e.pid === pid) > at, 'events after the loss are delivered');
  assert.match(cp.err, /lost \d+ events \(kernel/);
  assert.equal((await cp.stop('SIGTERM', 10000)).code, 0);
});

for (const [what, events] of [
  ['kernel filter on', 'fork,exec,exit'],
  ['kernel filter off', 'all'],
]) {
  test(`daemon stopped (SIGSTOP) through a storm (${what}): "lost" comes at once with the exact count, delivery resumes`, async (t) => {
    const dir = tmpDir(t, 'pm-fault-');
    const p = path.join(dir, 'pm.sock');
    // A small (forced) receive buffer so that a modest storm overflows it.
    const cp = daemon(t, ['--socket', p, '--rcvbuf', '65536', '-e', events]);
    await cp.ready;
    const c = rawConnect(p);
    t.after(() => c.sock.destroy());
    await c.connected;
    const s = streamOf(c);
    await markerSeen([s]);
    const N = 2000;
    process.kill(cp.pid, 'SIGSTOP');
    let sh;
    try {
      sh = (await storm(N)).pid;
    } finally {
      process.kill(cp.pid, 'SIGCONT');
    }
    // Nothing happens after the storm: the report must not wait for a later event.
    await s.until((evs) => evs.some((e) => e.event === 'lost'), 15000, 'a lost line');
    await new Promise((r) => setTimeout(r, 300));
    const lost = s.events().filter((e) => e.event === 'lost');
    assert.ok(
      lost.every((e) => e.source === 'kernel' && e.count > 0),
      JSON.stringify(lost),
    );
    // Ground truth: each of the storm's N children makes a fork, an exec and an exit. The
    // daemon was stopped from before the first to after the last, so the kernel kept those
    // that fit in the buffer and dropped the rest (and other processes' events meanwhile).
    const kids = new Set();
    let ours = 0;
    for (const e of s.events()) {
      if (e.event === 'fork' && e.parent_pid === sh) (kids.add(e.child_pid), ours++);
      else if ((e.event === 'exec' || e.event === 'exit') && (kids.has(e.pid) || e.ppid === sh)) ours++;
    }
    const missing = 3 * N - ours;
    const count = lost.reduce((a, e) => a + e.count, 0);
    assert.ok(missing > 0, 'the storm overflowed the buffer');
    assert.ok(count >= missing, `lost ${count} covers the ${missing} events of ours that were dropped`);
    // Others' events in those seconds are lost too: a quiet machine has a few hundred.
    assert.ok(count <= missing + 1000, `lost ${count} is not much more than the ${missing} of ours (others are quiet)`);
    const pid = await markerSeen([s]);
    const evs = s.events();
    assert.ok(evs.findIndex((e) => e.event === 'exit' && e.pid === pid) > evs.indexOf(lost[0]));
    assert.equal(s.events().filter((e) => e.event === 'lost').length, lost.length, 'no late second report');
    assert.equal((await cp.stop('SIGTERM', 10000)).code, 0);
  });
}

test('a blocked JS thread: clients of the server get a "queue" lost line, then delivery resumes', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const p = path.join(dir, 'pm.sock');
  const conn = new ProcConnector({ events: 'fork,exec,exit', queueMax: 20 }).start();
  t.after(() => conn.stop());
  const srv = createBroadcastServer({ source: conn, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  t.after(() => srv.close());
  await srv.listen();
  const u = rawConnect(p);
  const tc = await tcpAuth(srv.address().tcp.port, PW);
  t.after(() => (u.sock.destroy(), tc.sock.destroy()));
  await until(() => srv.stats().clients === 2);
  execFileSync('/bin/sh', ['-c', 'for i in $(seq 100); do /bin/true; done']);
  const streams = [streamOf(u), streamOf(tc)];
  for (const s of streams) await s.until((evs) => evs.some((e) => e.event === 'lost' && e.source === 'queue'), 10000, 'a queue lost line');
  await markerSeen(streams);
  assert.deepEqual(
    streams[0].events().filter((e) => e.event === 'lost'),
    streams[1].events().filter((e) => e.event === 'lost'),
  );
});

// ------------------------------------------------------------------ clients vanish

test('clients vanish mid-write (EPIPE / ECONNRESET) during a flood: no crash, the others get every event', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const closes = [];
  const srv = createBroadcastServer({ source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, maxClients: 64 });
  t.after(() => srv.close());
  srv.on('clientClose', (c) => closes.push(c));
  await srv.listen();
  const port = srv.address().tcp.port;
  const healthy = [rawConnect(p), await tcpAuth(port, PW)];
  t.after(() => healthy.forEach((h) => h.sock.destroy()));
  await until(() => srv.stats().clients === 2);
  const SIZE = 50;
  let vanished = 0;
  let wavesDone = false;
  // The flood goes on until every wave has vanished (each batch yields to the event loop).
  const flood = (async () => {
    for (let b = 0; !wavesDone || b < 100; b++) await source.stream(1, SIZE, 200);
  })();
  // Waves of clients that read a little, then reset (TCP) or close without reading (Unix).
  try {
    for (let wave = 0; wave < 6; wave++) {
      const w = [];
      for (let i = 0; i < 5; i++) w.push(rawConnect(p));
      for (let i = 0; i < 3; i++) w.push(await tcpAuth(port, PW));
      await until(() => w.every((r) => events(r).length > 0 || r.closed), 10000, 'wave data');
      for (const r of w) {
        r.sock.pause();
        if (r.sock.remotePort) r.sock.resetAndDestroy();
        else r.sock.destroy();
        vanished++;
      }
    }
  } finally {
    wavesDone = true;
  }
  await flood;
  const total = source.n;
  await until(() => closes.length >= vanished, 10000, 'every vanished client closed');
  await until(() => healthy.every((h) => events(h).length >= total), 15000, 'healthy streams');
  for (const h of healthy) {
    const acc = checkAccounting(events(h), total);
    assert.equal(acc.lost, 0);
  }
  assert.equal(srv.stats().clients, 2);
  for (const c of closes) assert.ok(['end', 'error'].includes(c.reason), JSON.stringify(c));
  assert.ok(
    closes.some((c) => c.reason === 'error' && /ECONNRESET|EPIPE/.test(c.error)),
    'the resets were seen as socket errors',
  );
});

test('daemon: clients reset mid-write during a process storm; it keeps serving the rest', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const p = path.join(dir, 'pm.sock');
  const port = await freePort();
  const cp = daemon(t, ['--socket', p, '--tcp', String(port), '--auth', PW, '--bind', '127.0.0.1', '-c', '40', '-e', 'all']);
  await cp.ready;
  const healthy = [rawConnect(p), await tcpAuth(port, PW)];
  t.after(() => healthy.forEach((h) => h.sock.destroy()));
  const streams = healthy.map(streamOf);
  await markerSeen(streams);
  const stormDone = storm(3000);
  let done = false;
  stormDone.then(() => (done = true));
  let vanished = 0;
  for (let wave = 0; wave < 20 && !done; wave++) {
    const w = [];
    for (let i = 0; i < 5; i++) w.push(rawConnect(p));
    for (let i = 0; i < 5; i++) w.push(await tcpAuth(port, PW));
    // (A wave that joins as the storm ends may see no event at all.)
    await until(() => done || w.every((r) => events(r).length > 0 || r.closed), 10000, 'wave events');
    for (const r of w) {
      r.sock.pause();
      if (r.sock.remotePort) r.sock.resetAndDestroy();
      else r.sock.destroy();
      vanished++;
    }
  }
  await stormDone;
  assert.ok(vanished >= 10);
  await markerSeen(streams);
  assert.equal(cp.exitCode, null, 'still running');
  assert.doesNotMatch(cp.err, NO_STACK);
  assert.equal((await cp.stop('SIGTERM', 10000)).code, 0);
  assert.equal(fs.existsSync(p), false);
});

// ------------------------------------------------------------------ the socket's directory

test('socket directory removed while running: clients keep their stream, SIGTERM exits 0, a new instance at the path is left alone', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const sub = path.join(dir, 'run');
  fs.mkdirSync(sub);
  const p = path.join(sub, 'pm.sock');
  const cp = daemon(t, ['--socket', p, '-e', 'exec,fork,exit']);
  await cp.ready;
  const c = rawConnect(p);
  t.after(() => c.sock.destroy());
  await c.connected;
  fs.rmSync(sub, { recursive: true, force: true });
  await markerSeen([streamOf(c)]);
  // Another instance takes the path (the directory recreated) while the first still runs.
  fs.mkdirSync(sub);
  const cp2 = daemon(t, ['--socket', p, '-e', 'exec']);
  await cp2.ready;
  const st = await cp.stop('SIGTERM', 5000);
  assert.equal(st.code, 0, cp.err);
  assert.doesNotMatch(cp.err, NO_STACK);
  // The first instance's shutdown did not remove the second's socket.
  assert.ok(fs.lstatSync(p).isSocket());
  const c2 = rawConnect(p);
  await c2.connected;
  const { pid } = await run('/bin/true', []);
  await streamOf(c2).until((evs) => evs.some((e) => e.event === 'exec' && e.pid === pid));
  c2.sock.destroy();
  assert.equal((await cp2.stop('SIGTERM', 5000)).code, 0);
  assert.equal(fs.existsSync(p), false);
});

test('socket directory made unwritable while running: it keeps serving, exits 0 and says the file could not be removed', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  fs.chmodSync(dir, 0o755);
  const sub = path.join(dir, 'run');
  fs.mkdirSync(sub);
  const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }));
  fs.chownSync(sub, nobody, -1);
  const p = path.join(sub, 'pm.sock');
  // The daemon runs as nobody with the least privilege that subscribes on every kernel.
  const cp = daemon(t, ['--socket', p, '-e', 'exec,fork,exit'], { wrap: NET_ADMIN_ONLY });
  await cp.ready;
  fs.chmodSync(sub, 0o555);
  const c = rawConnect(p);
  t.after(() => c.sock.destroy());
  await c.connected;
  await markerSeen([streamOf(c)]);
  const st = await cp.stop('SIGTERM', 5000);
  assert.equal(st.code, 0, cp.err);
  assert.doesNotMatch(cp.err, NO_STACK);
  assert.match(cp.err, /cannot remove the socket file .*pm\.sock/);
  // Starting again there: one clear line, status 1.
  const r = spawnSync(NET_ADMIN_ONLY[0], [...NET_ADMIN_ONLY.slice(1), process.execPath, BIN, '--socket', p], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /permission denied|EACCES/i);
});

test('socket directory missing or unwritable at start: one clear line, status 1, nothing left behind', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  fs.chmodSync(dir, 0o755);
  let r = spawnSync(process.execPath, [BIN, '--socket', path.join(dir, 'gone', 'pm.sock')], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /gone/);
  const ro = path.join(dir, 'ro');
  fs.mkdirSync(ro, { mode: 0o755 });
  r = spawnSync(NOBODY[0], [...NOBODY.slice(1), process.execPath, BIN, '--socket', path.join(ro, 'pm.sock')], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, NO_STACK);
  assert.deepEqual(fs.readdirSync(ro), []);
});

// ------------------------------------------------------------------ the TCP port is taken

test('TCP port taken: status 2, one line, and no socket file left when serving Unix too', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const busy = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => busy.on('listening', r));
  t.after(() => busy.close());
  const port = String(busy.address().port);
  const p = path.join(dir, 'pm.sock');
  for (const args of [
    ['--tcp', port, '--auth', PW, '--bind', '127.0.0.1'],
    ['--socket', p, '--tcp', port, '--auth', PW, '--bind', '127.0.0.1'],
  ]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${port}.*(in use|EADDRINUSE)`, 'i'));
    assert.equal(fs.existsSync(p), false);
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'no private socket directory left either');
});

// ------------------------------------------------------------------ SIGTERM in a storm

test('SIGTERM during a storm with stalled Unix and TCP clients and pending handshakes: exit 0 promptly, socket gone', async (t) => {
  const dir = tmpDir(t, 'pm-fault-');
  const p = path.join(dir, 'pm.sock');
  const port = await freePort();
  const cp = daemon(t, ['--socket', p, '--tcp', String(port), '--auth', PW, '--bind', '127.0.0.1', '-c', '20', '-e', 'all']);
  await cp.ready;
  const reading = rawConnect(p);
  const stalled = [];
  for (let i = 0; i < 5; i++) stalled.push(rawConnect(p));
  for (let i = 0; i < 4; i++) stalled.push(await tcpAuth(port, PW));
  const pending = [];
  for (let i = 0; i < 4; i++) pending.push(rawConnect({ port }));
  for (const s of stalled) s.sock.pause();
  const all = [reading, ...stalled, ...pending];
  t.after(() => all.forEach((r) => r.sock.destroy()));
  await Promise.all(all.map((r) => r.connected));
  // A long storm in the background, killed after the test.
  const gen = spawn('/bin/sh', ['-c', 'for i in $(seq 200000); do /bin/true; done'], { stdio: 'ignore' });
  t.after(() => gen.kill('SIGKILL'));
  // The storm has filled the stalled clients' socket buffers by the time a reader saw this much.
  await until(() => reading.chunks.reduce((a, c) => a + c.length, 0) > 4 << 20, 60000, '4 MiB of events');
  const st = await cp.stop('SIGTERM', 5000);
  assert.equal(st.code, 0, cp.err);
  assert.equal(fs.existsSync(p), false);
  assert.doesNotMatch(cp.err, NO_STACK);
  gen.kill('SIGKILL');
  // Every client sees its connection closed once it reads what was still buffered.
  for (const s of stalled) s.sock.resume();
  await Promise.all(all.map((r) => r.closedP));
  for (const r of pending) assert.doesNotMatch(r.text(), /\{/, 'no event before authentication');
});

// ------------------------------------------------------------------ file descriptors run out

/** Open file descriptors of a process. */
const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** Event lines of a raw client's stream, checked complete: seq one more each time, nothing dropped for it. */
function assertComplete(rec, what) {
  const evs = events(rec);
  assert.ok(evs.length > 0, `${what}: no events`);
  assert.equal(evs.filter((e) => e.event === 'lost' && e.source === 'client').length, 0, `${what}: events dropped for it`);
  const seqs = evs.filter((e) => e.seq !== undefined).map((e) => e.seq);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${what}: seq ${seqs[i - 1]} then ${seqs[i]}`);
  return seqs.length;
}

test('file descriptors run out (prlimit --nofile=64) while clients flood in: refused with the fd line, the rest served completely, it recovers', async (t) => {
  const LIMIT = 64;
  const dir = tmpDir(t, 'pm-fault-');
  const p = path.join(dir, 'pm.sock');
  const port = await freePort();
  // -c 1000: descriptors, not the client limit, run out. (Node raises the soft limit to the
  // hard one at its start, so both are set.)
  const cp = daemon(t, ['--socket', p, '--tcp', String(port), '--auth', PW, '--bind', '127.0.0.1', '-c', '1000', '-e', 'exec,fork,exit'], {
    wrap: ['prlimit', `--nofile=${LIMIT}:${LIMIT}`],
  });
  await cp.ready;
  assert.match(fs.readFileSync(`/proc/${cp.pid}/limits`, 'utf8'), new RegExp(`^Max open files\\s+${LIMIT}\\s+${LIMIT}\\s`, 'm'));
  const healthy = [rawConnect(p), await tcpAuth(port, PW)];
  t.after(() => healthy.forEach((h) => h.sock.destroy()));
  const streams = healthy.map(streamOf);
  await markerSeen(streams);
  // First handshakes left pending: 12 TCP connections at the password prompt (under the 16
  // one address may hold), each a descriptor. Then the flood: 300 Unix connections (each
  // streams, a descriptor held, until descriptors run short) and 300 TCP ones, all held open
  // until the end.
  const flood = [];
  t.after(() => flood.forEach((r) => r.sock.destroy()));
  for (let i = 0; i < 12; i++) flood.push(rawConnect({ port }));
  await until(() => flood.every((r) => r.text() === 'Password: '), 10000, 'the pending handshakes');
  for (let i = 0; i < 300; i++) flood.push(rawConnect(p), rawConnect({ port }));
  for (const r of flood) r.connected.catch(() => {});
  let settled = -1;
  let since = Date.now();
  await until(
    () => {
      const n = flood.filter((r) => r.closed || r.chunks.length > 0 || r.error).length;
      if (n !== settled) [settled, since] = [n, Date.now()];
      return n === flood.length || Date.now() - since > 2000;
    },
    60000,
    'the flood to settle',
  );
  const held = fdCount(cp.pid);
  // Descriptors really ran out: the daemon counted fewer than FD_RESERVE free (its log line
  // says how many were open), the outside count got there too, and while the flood holds
  // them a new client of either transport is told so.
  const m = /(\d+) of (\d+) file descriptors open \(soft limit\): refusing new connections while fewer than (\d+) are free/.exec(cp.err);
  assert.ok(m, `no out-of-descriptors line in the log: ${cp.err.slice(-2000)}`);
  assert.equal(Number(m[2]), LIMIT);
  assert.equal(Number(m[3]), FD_RESERVE);
  assert.ok(Number(m[1]) > LIMIT - FD_RESERVE, m[0]);
  assert.ok(held >= LIMIT - FD_RESERVE - 2, `the daemon holds ${held} descriptors`);
  const probe = [rawConnect(p), rawConnect({ port })];
  t.after(() => probe.forEach((r) => r.sock.destroy()));
  await Promise.all(probe.map((r) => r.closedP));
  for (const r of probe) assert.equal(r.text(), TOO_MANY_FILES);
  // The client library calls it EBUSY, as a full server.
  await assert.rejects(
    (async () => {
      for await (const ev of connect({ path: p })) void ev;
    })(),
    (e) => e.code === 'EBUSY' && e.message === `server: ${TOO_MANY_FILES.trim()}`,
  );
  // Every answer is one the protocol knows; some are the descriptor line.
  const answers = flood.map((r) => r.text()).filter(Boolean);
  for (const a of answers) {
    assert.match(a, /^(Password: |Too many (clients|connections|open files)[^\n]*\n|\{)/, a.slice(0, 80));
    if (a.startsWith('Too many open files')) assert.equal(a, TOO_MANY_FILES);
  }
  const refusedForFiles = answers.filter((a) => a === TOO_MANY_FILES).length;
  assert.ok(refusedForFiles > 0, `no flood client got the descriptor line (${answers.length} answers)`);
  // The pending handshakes still wait (they held descriptors through it all), and no
  // connection was closed unanswered: the refusals were made before accept() ran out (where
  // libuv would shed waiting connections without a word).
  for (const r of flood.slice(0, 12)) assert.equal(r.closed, false, 'a pending handshake was closed');
  const silent = flood.filter((r) => r.closed && r.text() === '' && !r.error);
  assert.equal(silent.length, 0, `${silent.length} connections closed without an answer`);
  const refusedExpected = refusedForFiles + probe.length + 1;
  // While it is out of descriptors, the healthy clients still get every event.
  await markerSeen(streams);
  assert.equal(cp.exitCode, null, `still running: ${cp.err}`);
  // The flood leaves; new clients are served again.
  for (const r of flood) r.sock.destroy();
  const streamingNow = () => (cp.err.match(/: client \d+ connected/g) || []).length - (cp.err.match(/: client \d+ closed/g) || []).length;
  // A flood client that had become a streaming one shows it left at the next event
  // written to it (its EOF alone could be a half-close): make events until they have.
  await until(
    async () => {
      if (streamingNow() !== 2) await run('/bin/true', []);
      return fdCount(cp.pid) < 40 && streamingNow() === 2;
    },
    15000,
    'descriptors and slots released',
  );
  const again = [rawConnect(p), await tcpAuth(port, PW)];
  t.after(() => again.forEach((h) => h.sock.destroy()));
  assert.ok(again[1].text().startsWith('Password: Authentication successful.\n'), again[1].text().slice(0, 80));
  await markerSeen([...streams, ...again.map(streamOf)]);
  assert.match(cp.err, /file descriptors free again \(\d+ connections refused for want of them so far\): accepting connections/);
  // The healthy clients' streams are complete from their first event to the last: no seq
  // missing, nothing dropped for them.
  const n = healthy.map((h, i) => assertComplete(h, ['unix', 'tcp'][i]));
  assert.ok(n.every((k) => k > 0));
  const st = await cp.stop('SIGTERM', 5000);
  assert.equal(st.code, 0, cp.err);
  assert.doesNotMatch(cp.err, NO_STACK);
  assert.equal(fs.existsSync(p), false);
  // Every refusal was logged: a few lines as they came, the rest summed up (at the latest
  // when the daemon closed), never a line each.
  const each = (cp.err.match(/: refused \(too-many-files\)\n/g) || []).length;
  const summed = [...cp.err.matchAll(/refused \(too-many-files\): (\d+) more from/g)].reduce((a, m) => a + Number(m[1]), 0);
  assert.ok(each <= 10, `${each} lines`);
  assert.equal(each + summed, refusedExpected, cp.err.slice(-1500));
});

test('accept() failing with EMFILE on either listener: no crash, one log line a second with the count, still listening and serving', async (t) => {
  const p = path.join(tmpDir(t, 'pm-fault-'), 'pm.sock');
  const source = new FakeSource();
  const lines = [];
  const srv = createBroadcastServer({ source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, log: (l) => lines.push(l) });
  t.after(() => srv.close());
  await srv.listen();
  // What Node does when accept() fails and libuv could not shed the connection itself
  // (lib/net.js, onconnection): 'error' on the net.Server, "accept EMFILE"; its handle keeps
  // listening. Nobody listens for the BroadcastServer's 'error' here (the daemon does not).
  const emfile = () => Object.assign(new Error('accept EMFILE'), { errno: -24, code: 'EMFILE', syscall: 'accept' });
  const listeners = [srv.sockets.unixServer, srv.sockets.tcpServer]; // (private: the server's listening sockets)
  for (const s of listeners) for (let i = 0; i < 500; i++) s.emit('error', emfile());
  let logged = lines.filter((l) => l.includes('EMFILE'));
  assert.deepEqual(logged, ['server error: accept EMFILE (out of file descriptors; still listening)']);
  await new Promise((r) => setTimeout(r, 1050));
  listeners[0].emit('error', emfile());
  logged = lines.filter((l) => l.includes('EMFILE'));
  assert.equal(logged.length, 2);
  assert.equal(logged[1], 'server error: accept EMFILE (out of file descriptors, 1000 times since the last report; still listening)');
  // A library user who listens gets each one.
  let seen = 0;
  srv.on('error', (e) => e.code === 'EMFILE' && seen++);
  for (let i = 0; i < 10; i++) listeners[1].emit('error', emfile());
  assert.equal(seen, 10);
  for (const s of listeners) assert.equal(s.listening, true);
  const u = rawConnect(p);
  const tc = await tcpAuth(srv.address().tcp.port, PW);
  t.after(() => (u.sock.destroy(), tc.sock.destroy()));
  assert.equal(tc.text(), 'Password: Authentication successful.\n');
  await until(() => srv.stats().perClient.length === 2 && srv.stats().perClient.every((c) => c.mode === 'live'));
  source.batch(5);
  await until(() => events(u).length === 5 && events(tc).length === 5, 5000, 'the events');
});
