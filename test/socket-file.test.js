'use strict';
// The Unix socket file: made with its mode and group before anyone can reach it; a live
// socket (another instance) never taken, a stale one replaced by exactly one starter, a file
// or directory in the way left alone, nothing left behind.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { createBroadcastServer } = require('..');
const { tmpDir, serve, FakeSource, rawConnect, until, events, spawnAndWait } = require('./server-helpers');

const PW = 'correct horse';

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
