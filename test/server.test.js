'use strict';
// createBroadcastServer over real sockets: option checks, socket files, the TCP handshake,
// limits, fan-out to many clients, slow clients, shutdown; then end to end with the kernel.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { StringDecoder } = require('node:string_decoder');
const {
  createBroadcastServer,
  BroadcastServerError,
  PASSWORD_PROMPT,
  AUTH_SUCCESS,
  AUTH_FAILED,
  AUTH_TIMEOUT,
  tooManyClientsLine,
  tooManyPendingLine,
  ProcConnector,
} = require('..');
const { tmpDir, FakeSource, rawConnect, until, tcpAuth, events, checkAccounting } = require('./server-helpers');

const PW = 'correct horse';

/** A listening server, closed after the test. */
async function serve(t, opts) {
  const srv = createBroadcastServer(opts);
  t.after(() => srv.close());
  await srv.listen();
  return srv;
}

function waitFor(emitter, name, pred = () => true) {
  return new Promise((resolve) => {
    const on = (x) => {
      if (!pred(x)) return;
      emitter.off(name, on);
      resolve(x);
    };
    emitter.on(name, on);
  });
}

// ------------------------------------------------------------------ options

test('options: TCP without a password is refused; other bad options are named', () => {
  const source = new FakeSource();
  assert.throws(
    () => createBroadcastServer({ source, tcp: { port: 0 } }),
    (e) => e instanceof BroadcastServerError && e.code === 'ENOPASSWORD' && /password/.test(e.message),
  );
  assert.throws(() => createBroadcastServer({ source, tcp: { port: 0, password: '' } }), { code: 'ENOPASSWORD' });
  assert.throws(() => createBroadcastServer({ source, tcp: { port: 0, passwordEnv: 'PM_TEST_SURELY_UNSET' } }), { code: 'ENOPASSWORD' });
  assert.throws(() => createBroadcastServer({ source, tcp: { port: 0, passwordFile: '/nonexistent/pw' } }), { code: 'ENOPASSWORD' });
  assert.throws(() => createBroadcastServer({ source, tcp: { port: 0, password: 'a', passwordEnv: 'X' } }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source, tcp: { port: 0, password: 'x'.repeat(257) } }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source: {}, unix: { path: '/tmp/x' } }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source, unix: { path: '/tmp/x', mode: 0o1777 } }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source, unix: { path: '/tmp/x', group: 'no-such-group-pm' } }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source, unix: { path: '/tmp/x' }, slowClient: 'wait' }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source, unix: { path: '/tmp/x' }, maxClients: 0 }), { code: 'EINVAL' });
  assert.throws(() => createBroadcastServer({ source, unix: { path: '/tmp/x' }, stallTimeoutMs: -1 }), { code: 'EINVAL' });
});

test('options: the password can come from a file or an environment variable', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'pw');
  fs.writeFileSync(file, 'from-file\n');
  const source = new FakeSource();
  const a = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', passwordFile: file } });
  const ra = await tcpAuth(a.address().tcp.port, 'from-file');
  assert.equal(ra.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  process.env.PM_TEST_PW = 'from-env';
  t.after(() => delete process.env.PM_TEST_PW);
  const b = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', passwordEnv: 'PM_TEST_PW' } });
  const rb = await tcpAuth(b.address().tcp.port, 'from-env');
  assert.equal(rb.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  ra.sock.destroy();
  rb.sock.destroy();
});

test('options: a password file others can read is taken, with a warning through options.log', async (t) => {
  const file = path.join(tmpDir(t), 'pw');
  fs.writeFileSync(file, 'readable-by-all\n', { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  const lines = [];
  const srv = createBroadcastServer({ source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', passwordFile: file }, log: (l) => lines.push(l) });
  t.after(() => srv.close());
  assert.deepEqual(lines, [`warning: the password file ${file} can be read by its group and every user (mode 0644): chmod 600 ${file}`]);
});

// ------------------------------------------------------------------ socket file

test('unix: default mode 0666, and the file is removed on close', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const srv = createBroadcastServer({ source: new FakeSource(), unix: { path: p } });
  await srv.listen();
  const st = fs.lstatSync(p);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o666);
  assert.equal(srv.address().unix, p);
  assert.deepEqual(fs.readdirSync(dir), ['pm.sock'], 'no temp files left next to the socket');
  await srv.close();
  assert.equal(fs.existsSync(p), false);
});

test('unix: mode and group as asked', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  await serve(t, { source: new FakeSource(), unix: { path: p, mode: 0o660, group: 'daemon' } });
  const st = fs.statSync(p);
  assert.equal(st.mode & 0o777, 0o660);
  assert.equal(st.gid, 1);
  const p2 = path.join(dir, 'pm2.sock');
  await serve(t, { source: new FakeSource(), unix: { path: p2, mode: 0o600, group: 4 } });
  const st2 = fs.statSync(p2);
  assert.equal(st2.mode & 0o777, 0o600);
  assert.equal(st2.gid, 4);
});

test('unix: a live socket at the path is refused with EADDRINUSE', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const firstSource = new FakeSource();
  await serve(t, { source: firstSource, unix: { path: p } });
  const second = createBroadcastServer({ source: new FakeSource(), unix: { path: p } });
  await assert.rejects(second.listen(), (e) => e.code === 'EADDRINUSE' && e.message.includes(p));
  assert.ok(fs.lstatSync(p).isSocket(), 'the live socket is untouched');
  // The first server still works: a client gets its events.
  const c = await streamingClient(p);
  firstSource.batch(2);
  await until(() => events(c).length === 3, 10000, 'events from the first server');
  assert.deepEqual(
    events(c)
      .slice(1)
      .map((e) => e.n),
    [0, 1],
  );
  c.sock.destroy();
});

/**
 * A raw Unix client that is streaming for sure: it asks for nothing ({}) and waits for the
 * server's hello (other connections, such as a refused starter's probe, may be streaming too).
 */
async function streamingClient(p) {
  const c = rawConnect(p);
  c.sock.write('{}\n');
  await until(() => events(c).length > 0 && events(c)[0].event === 'hello', 10000, 'hello');
  return c;
}

/** Starts n servers on one path at once; exactly one must win, the others get EADDRINUSE. */
async function listenRace(t, p, n) {
  const sources = Array.from({ length: n }, () => new FakeSource());
  const servers = sources.map((source) => createBroadcastServer({ source, unix: { path: p } }));
  for (const s of servers) t.after(() => s.close());
  const results = await Promise.allSettled(servers.map((s) => s.listen()));
  const outcome = results.map((r) => (r.status === 'fulfilled' ? 'ok' : `${r.reason.code}: ${r.reason.message}`));
  const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
  assert.equal(winners.length, 1, JSON.stringify(outcome));
  for (const r of results) {
    if (r.status === 'fulfilled') continue;
    assert.equal(r.reason.code, 'EADDRINUSE', r.reason.message);
    assert.ok(r.reason.message.includes(p), r.reason.message);
  }
  const w = winners[0];
  assert.equal(servers[w].address().unix, p);
  // The socket at the path is the winner's: a client there gets the winner's events.
  const c = await streamingClient(p);
  assert.equal(events(c)[0].stream, servers[w].stream, "the winner's hello");
  sources[w].batch(3);
  await until(() => events(c).length === 4, 10000, "the winner's events");
  assert.deepEqual(
    events(c)
      .slice(1)
      .map((e) => e.n),
    [0, 1, 2],
  );
  assert.deepEqual(
    fs.readdirSync(path.dirname(p)).filter((f) => f !== path.basename(p)),
    [],
    'no lock or temp file left',
  );
  c.sock.destroy();
  await servers[w].close();
  assert.equal(fs.existsSync(p), false);
}

test('unix: several listen() at once on one free path: exactly one wins, the others get EADDRINUSE', (t) => {
  const p = path.join(tmpDir(t), 'pm.sock');
  return listenRace(t, p, 6);
});

test('unix: several listen() at once on a stale socket: exactly one replaces it, the others get EADDRINUSE', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  await makeStaleSocket(dir, p);
  return listenRace(t, p, 6);
});

test('unix: a lock left by a starter that died is broken; the stale socket is replaced', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  await makeStaleSocket(dir, p);
  const dead = await spawnAndWait('/bin/true', []);
  fs.writeFileSync(`${p}.lock`, `${dead}\n`);
  const past = new Date(Date.now() - 2000);
  fs.utimesSync(`${p}.lock`, past, past);
  const source = new FakeSource();
  await serve(t, { source, unix: { path: p } });
  assert.deepEqual(fs.readdirSync(dir), ['pm.sock'], 'the dead lock is gone');
  const c = await streamingClient(p);
  source.batch(1);
  await until(() => events(c).length === 2);
  c.sock.destroy();
});

test('unix: starters in several processes at once on a stale socket: exactly one serves', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  await makeStaleSocket(dir, p);
  const script = `
    const { EventEmitter } = require('node:events');
    const { createBroadcastServer } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const source = new EventEmitter();
    const srv = createBroadcastServer({ source, unix: { path: ${JSON.stringify(p)} } });
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => {
      try {
        await srv.listen();
      } catch (e) {
        process.stdout.write('error ' + e.code + ' ' + e.message + '\\n');
        process.exit(0);
      }
      process.stdout.write('listening\\n');
      const feed = setInterval(() => source.emit('batch', [{ event: 'exec', time: 't', pid: process.pid }]), 20);
      process.stdin.on('end', () => { clearInterval(feed); srv.close().then(() => process.exit(0)); });
    });`;
  const N = 5;
  const kids = [];
  for (let i = 0; i < N; i++) {
    const cp = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => cp.kill());
    const kid = { cp, out: '' };
    cp.stdout.on('data', (d) => (kid.out += d));
    kid.exited = new Promise((r) => cp.on('exit', r));
    kids.push(kid);
  }
  await until(() => kids.every((k) => k.out.includes('ready\n')), 20000, 'every starter ready');
  for (const k of kids) k.cp.stdin.write('go\n');
  await until(() => kids.every((k) => /listening\n|error /.test(k.out)), 20000, 'every starter decided');
  const winners = kids.filter((k) => k.out.includes('listening\n'));
  assert.equal(winners.length, 1, kids.map((k) => k.out.trim()).join(' | '));
  for (const k of kids) {
    if (k === winners[0]) continue;
    assert.ok(k.out.startsWith('ready\nerror EADDRINUSE ') && k.out.includes(p), k.out);
  }
  const c = rawConnect(p);
  await until(() => events(c).length > 0, 10000, 'an event from the winner');
  assert.equal(events(c)[0].pid, winners[0].cp.pid);
  c.sock.destroy();
  winners[0].cp.stdin.end();
  await winners[0].exited;
  assert.deepEqual(fs.readdirSync(dir), [], 'the socket file removed, no lock or temp file left');
});

/** Leaves a stale socket at p: bound elsewhere, moved into place, its listener closed. */
async function makeStaleSocket(dir, p) {
  const tmp = path.join(dir, 'other.sock');
  const old = net.createServer();
  await new Promise((r) => old.listen(tmp, r));
  fs.renameSync(tmp, p);
  await new Promise((r) => old.close(r));
  assert.ok(fs.lstatSync(p).isSocket());
}

test('unix: a stale socket is replaced', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  await makeStaleSocket(dir, p);
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p } });
  const c = rawConnect(p);
  await until(() => srv.stats().clients >= 1);
  source.batch(3);
  await until(() => c.lines().length === 3);
  assert.deepEqual(
    events(c).map((e) => e.n),
    [0, 1, 2],
  );
  c.sock.destroy();
});

test('unix: a regular file or a directory in the way is refused and left untouched', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'precious.txt');
  fs.writeFileSync(p, 'keep me');
  const srv = createBroadcastServer({ source: new FakeSource(), unix: { path: p } });
  await assert.rejects(srv.listen(), (e) => e.code === 'EEXIST' && /not a socket/.test(e.message));
  assert.equal(fs.readFileSync(p, 'utf8'), 'keep me');
  const d = path.join(dir, 'adir');
  fs.mkdirSync(d);
  const srv2 = createBroadcastServer({ source: new FakeSource(), unix: { path: d } });
  await assert.rejects(srv2.listen(), { code: 'EEXIST' });
  assert.ok(fs.statSync(d).isDirectory());
  assert.deepEqual(fs.readdirSync(dir).sort(), ['adir', 'precious.txt'], 'no temp files left behind');
});

test('unix + tcp: a failed TCP listen leaves no socket file', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const srv = createBroadcastServer({ source: new FakeSource(), unix: { path: p }, tcp: { port: blocker.address().port, host: '127.0.0.1', password: PW } });
  await assert.rejects(srv.listen(), { code: 'EADDRINUSE' });
  assert.equal(fs.existsSync(p), false);
});

// ------------------------------------------------------------------ TCP handshake

test('tcp: the seed handshake, then events; nothing before authentication', async (t) => {
  const source = new FakeSource();
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  const port = srv.address().tcp.port;
  assert.ok(port > 0);
  const c = rawConnect({ port });
  await until(() => c.text() === PASSWORD_PROMPT);
  source.batch(5); // before authentication: never sent to it
  c.sock.write(`${PW}\r\n`);
  await until(() => srv.stats().clients >= 1);
  source.batch(2);
  await until(() => c.lines().length === 3);
  assert.equal(c.text().slice(0, PASSWORD_PROMPT.length + AUTH_SUCCESS.length), PASSWORD_PROMPT + AUTH_SUCCESS);
  assert.deepEqual(
    events(c).map((e) => e.n),
    [5, 6],
  );
  c.sock.destroy();
});

test('tcp: wrong password gets the failure line, no event, and is closed', async (t) => {
  const source = new FakeSource();
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  const rejected = waitFor(srv, 'reject');
  const c = rawConnect({ port: srv.address().tcp.port });
  await until(() => c.text() === PASSWORD_PROMPT);
  source.batch(3);
  c.sock.write('wrong\n');
  await c.closedP;
  assert.equal(c.text(), PASSWORD_PROMPT + AUTH_FAILED);
  assert.equal((await rejected).reason, 'auth-failed');
  assert.equal(srv.stats().pending, 0);
});

test('tcp: a correct prefix, a longer password, or bytes after the newline do not matter', async (t) => {
  const source = new FakeSource();
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW }, authFailureDelayMs: 0 });
  const port = srv.address().tcp.port;
  for (const attempt of ['correct', `${PW} `, `${PW}x`]) {
    const c = await tcpAuth(port, attempt);
    await c.closedP;
    assert.equal(c.text(), PASSWORD_PROMPT + AUTH_FAILED, attempt);
  }
  // Trailing bytes after the line are ignored (not taken as part of the password).
  const c = rawConnect({ port });
  await until(() => c.text() === PASSWORD_PROMPT);
  c.sock.write(`${PW}\nGARBAGE AFTER\n\x00\x01`);
  await until(() => c.text().length > PASSWORD_PROMPT.length);
  assert.equal(c.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  source.batch(1);
  await until(() => events(c).length === 1);
  c.sock.destroy();
});

test('tcp: no password within authTimeoutMs is closed', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, authTimeoutMs: 100 });
  const rejected = waitFor(srv, 'reject');
  const c = rawConnect({ port: srv.address().tcp.port });
  await c.closedP;
  assert.equal(c.text(), PASSWORD_PROMPT + AUTH_TIMEOUT);
  assert.equal((await rejected).reason, 'auth-timeout');
  assert.equal(srv.stats().pending, 0);
});

test('tcp: a password dripped one byte at a time is accepted', async (t) => {
  const source = new FakeSource();
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  const c = rawConnect({ port: srv.address().tcp.port });
  c.sock.setNoDelay(true);
  await until(() => c.text() === PASSWORD_PROMPT);
  for (const ch of `${PW}\r\n`) {
    c.sock.write(ch);
    await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => srv.stats().clients >= 1);
  source.batch(1);
  await until(() => events(c).length === 1);
  assert.ok(c.text().startsWith(PASSWORD_PROMPT + AUTH_SUCCESS));
  c.sock.destroy();
});

test('tcp: an over-long line (with or without newline) is refused; exactly 256 bytes is allowed', async (t) => {
  const long = 'p'.repeat(256);
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: long }, authFailureDelayMs: 0 });
  const port = srv.address().tcp.port;
  const reasons = [];
  srv.on('reject', (r) => reasons.push(r.reason));
  const a = rawConnect({ port });
  await until(() => c0(a));
  a.sock.write('x'.repeat(10000)); // no newline at all
  await a.closedP;
  assert.equal(a.text(), PASSWORD_PROMPT + AUTH_FAILED);
  const b = await tcpAuth(port, `${long}p`); // 257 bytes then newline
  await b.closedP;
  assert.equal(b.text(), PASSWORD_PROMPT + AUTH_FAILED);
  const ok = await tcpAuth(port, long);
  assert.equal(ok.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  ok.sock.destroy();
  assert.deepEqual(reasons, ['line-too-long', 'line-too-long']);
  function c0(r) {
    return r.text() === PASSWORD_PROMPT;
  }
});

test('tcp: binary garbage is refused', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, authFailureDelayMs: 0 });
  const port = srv.address().tcp.port;
  const garbage = Buffer.from([0, 255, 254, 10, 13, 0, 1, 2, 3, 0xc3, 0x28, 10]);
  const a = rawConnect({ port });
  await until(() => a.text() === PASSWORD_PROMPT);
  a.sock.write(garbage);
  await a.closedP;
  assert.equal(a.text(), PASSWORD_PROMPT + AUTH_FAILED);
  const b = rawConnect({ port });
  await until(() => b.text() === PASSWORD_PROMPT);
  b.sock.write(Buffer.alloc(4000, 0));
  await b.closedP;
  assert.equal(b.text(), PASSWORD_PROMPT + AUTH_FAILED);
});

test('tcp: half-open and vanished connections are closed and free their slot', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, maxPending: 1, authTimeoutMs: 200 });
  const port = srv.address().tcp.port;
  // Sends half a password then shuts its side down: no whole line, so it failed (and is told).
  const a = rawConnect({ port });
  await until(() => a.text() === PASSWORD_PROMPT);
  a.sock.end('corr');
  await a.closedP;
  assert.equal(a.text(), PASSWORD_PROMPT + AUTH_FAILED);
  // Connects and resets at once.
  const b = rawConnect({ port });
  await until(() => b.text() === PASSWORD_PROMPT);
  b.sock.resetAndDestroy();
  await until(() => srv.stats().pending === 0);
  // The single pending slot is free again.
  const c = await tcpAuth(port, PW);
  assert.equal(c.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  c.sock.destroy();
  assert.ok(srv.stats().rejected['closed-before-auth'] >= 2);
});

test('tcp: every failure from one network (the first included) is answered later and later', async (t) => {
  const logs = [];
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, authFailureDelayMs: 20, log: (l) => logs.push(l) });
  const port = srv.address().tcp.port;
  for (let i = 0; i < 3; i++) {
    const c = await tcpAuth(port, 'nope');
    await c.closedP;
    assert.equal(c.text(), PASSWORD_PROMPT + AUTH_FAILED);
  }
  const delays = logs.filter((l) => /wrong password/.test(l)).map((l) => Number((/answered after (\d+) ms/.exec(l) || [0, 0])[1]));
  assert.deepEqual(delays, [20, 40, 80]);
  assert.match(
    logs.find((l) => /wrong password/.test(l)),
    /failure 1 from 127\.0\.0\.0\/24, answered after 20 ms/,
  );
  // A success resets the count.
  const ok = await tcpAuth(port, PW);
  ok.sock.destroy();
  const c = await tcpAuth(port, 'nope');
  await c.closedP;
  assert.match(logs.filter((l) => /wrong password/.test(l)).pop(), /failure 1 from/);
});

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

// ------------------------------------------------------------------ end to end with the kernel

function spawnAndWait(cmd, args) {
  return new Promise((resolve, reject) => {
    const cp = spawn(cmd, args, { stdio: 'ignore' });
    cp.on('error', reject);
    cp.on('exit', () => resolve(cp.pid));
  });
}

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
