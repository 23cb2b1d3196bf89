'use strict';
// The client library (connect) and the procMonitor-client command, against fake raw servers
// (exact bytes, odd chunking) and the real broadcast server.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { connect, ProcMonitorClientError } = require('..');
const { parseClientArgs, formatEvent } = require('../dist/cli/client');
const { tmpDir, serve, FakeSource, until } = require('./server-helpers');

const PW = 'sesame';
const BIN = path.join(__dirname, '..', 'bin', 'procMonitor-client');

/** A raw server that runs `script(sock)` for each connection; closed after the test. */
async function rawServer(t, script, listenArg) {
  const socks = new Set();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    script(s);
  });
  await new Promise((r) => srv.listen(listenArg ?? { port: 0, host: '127.0.0.1' }, r));
  t.after(() => {
    for (const s of socks) s.destroy();
    return new Promise((r) => srv.close(r));
  });
  return srv;
}

const tick = (ms = 2) => new Promise((r) => setTimeout(r, ms));

test('connect: option errors are thrown at once', () => {
  assert.throws(() => connect({ port: 0, password: PW }), RangeError);
  assert.throws(() => connect({ port: 1234, password: 'a\nb' }), RangeError);
  assert.throws(() => connect({ port: 1234, password: 'x'.repeat(257) }), RangeError);
  assert.throws(() => connect({ port: 1234 }), TypeError);
});

test('client: partial lines, many lines per chunk and UTF-8 split across chunks', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'raw.sock');
  const evs = [];
  for (let i = 0; i < 200; i++) evs.push({ event: 'exec', time: 't', pid: i, user: 'root', cmdline: `é☃ ${i} ${'x'.repeat(i)}` });
  const bytes = Buffer.from(evs.map((e) => JSON.stringify(e) + '\n').join(''));
  await rawServer(
    t,
    async (s) => {
      // Odd chunk sizes: 1 byte, 3 bytes, then big chunks holding many lines.
      let off = 0;
      for (const n of [1, 1, 1, 3, 7, 13, 1000, 5, 20000]) {
        if (off >= bytes.length) break;
        s.write(bytes.subarray(off, off + n));
        off += n;
        await tick();
      }
      s.end(bytes.subarray(off));
    },
    p,
  );
  const client = connect({ path: p });
  const viaEmitter = [];
  const execs = [];
  client.on('event', (e) => viaEmitter.push(e));
  client.on('exec', (e) => execs.push(e));
  const viaIterator = [];
  for await (const ev of client) viaIterator.push(ev);
  assert.deepEqual(viaIterator, evs);
  assert.deepEqual(viaEmitter, evs);
  assert.equal(execs.length, 200);
});

test('client: the TCP handshake, byte by byte, with events in the same chunk as the answer', async (t) => {
  const got = [];
  let line = '';
  const srv = await rawServer(t, async (s) => {
    for (const ch of 'Password: ') {
      s.write(ch);
      await tick(1);
    }
    s.on('data', (d) => {
      line += d.toString();
      if (line.endsWith('\n') && got.length === 0) {
        got.push(line);
        s.write('Authentication successful.\n{"event":"fork","time":"t","child_pid":2,"parent_pid":1}\n{"event":"exit","time":"t","pid":2,"ex');
        setTimeout(() => s.end('it_code":0}\n'), 10);
      }
    });
  });
  const client = connect({ port: srv.address().port, password: PW });
  await client.ready();
  const evs = [];
  for await (const ev of client) evs.push(ev);
  assert.equal(line, `${PW}\n{}\n`, 'over TCP an empty request follows the password (batched writes)');
  assert.deepEqual(
    evs.map((e) => e.event),
    ['fork', 'exit'],
  );
  assert.equal(evs[1].exit_code, 0);
});

test('client: wrong password is an EAUTH error (ready, iterator and error event)', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, authFailureDelayMs: 0 });
  const port = srv.address().tcp.port;
  const a = connect({ port, password: 'nope' });
  await assert.rejects(a.ready(), (e) => e instanceof ProcMonitorClientError && e.code === 'EAUTH');
  const b = connect({ port, password: 'nope' });
  await assert.rejects(
    (async () => {
      for await (const ev of b) void ev;
    })(),
    { code: 'EAUTH' },
  );
  const c = connect({ port, password: 'nope' });
  const err = await new Promise((resolve) => c.on('error', resolve));
  assert.equal(err.code, 'EAUTH');
  await new Promise((r) => c.once('close', r));
});

test('client: a full server is an EBUSY error; a silent server is ETIMEDOUT', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const srv = await serve(t, { source: new FakeSource(), unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW }, maxClients: 1 });
  const first = connect({ path: p });
  await first.ready();
  await until(() => srv.stats().clients === 1);
  await assert.rejects(
    (async () => {
      for await (const ev of connect({ path: p })) void ev;
    })(),
    (e) => e.code === 'EBUSY' && /Too many clients/.test(e.message),
  );
  await assert.rejects(connect({ port: srv.address().tcp.port, password: PW }).ready(), { code: 'EBUSY' });
  await first.close();
  const silent = await rawServer(t, () => {});
  await assert.rejects(connect({ port: silent.address().port, password: PW, handshakeTimeoutMs: 100 }).ready(), { code: 'ETIMEDOUT' });
  await assert.rejects(connect({ path: path.join(dir, 'none.sock') }).ready(), { code: 'ENOENT' });
});

test('client: against the real server over TCP and Unix; breaking out of the loop closes it', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  const tcp = connect({ port: srv.address().tcp.port, password: PW });
  const unix = connect({ path: p });
  await Promise.all([tcp.ready(), unix.ready()]);
  await until(() => srv.stats().clients === 2);
  const closes = [];
  srv.on('clientClose', (c) => closes.push(c));
  const sending = source.stream(100, 10, 20);
  const take = async (client) => {
    const seqs = [];
    for await (const ev of client) {
      seqs.push(ev.n);
      if (seqs.length === 1000) break;
    }
    return seqs;
  };
  const [a, b] = await Promise.all([take(tcp), take(unix)]);
  await sending;
  const want = Array.from({ length: 1000 }, (_, i) => i);
  assert.deepEqual(a, want);
  assert.deepEqual(b, want);
  // The server sees a client gone at the next write to it (its EOF alone could be a
  // half-close, after which it would still read).
  await until(() => {
    if (closes.length < 2) source.batch(1);
    return closes.length === 2;
  });
  assert.ok(
    closes.every((c) => c.reason === 'end' || c.reason === 'error'),
    JSON.stringify(closes),
  );
});

test('client: a slow iterator applies backpressure; the server reports the loss exactly', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  // A ring smaller than the storm: what it cannot catch up on is lost, and said so.
  const srv = await serve(t, { source, unix: { path: p }, clientBufferBytes: 64 * 1024, replayEvents: 5000 });
  const client = connect({ path: p, maxBuffered: 100 });
  await client.ready();
  await until(() => srv.stats().clients === 1 && srv.stats().perClient[0].mode === 'live');
  const it = client[Symbol.asyncIterator]();
  const total = 800 * 50 + 1;
  // The storm comes while nobody consumes: the iterator holds 100, the socket pauses, the
  // server's buffer for it fills and it drops.
  await source.stream(800, 50, 100, 4);
  source.batch(1);
  let next = 0;
  let lost = 0;
  for (;;) {
    const { value: ev } = await it.next();
    if (ev.event === 'lost') {
      lost += ev.count;
      next += ev.count;
      continue;
    }
    assert.equal(ev.n, next);
    next++;
    if (next === total) break;
  }
  assert.ok(lost > 0, 'the client fell behind and was told');
  assert.equal(lost, srv.stats().droppedEvents);
  await it.return();
});

// ------------------------------------------------------------------ the command

function runCli(args, { env = {}, until: stopWhen, input } = {}) {
  return new Promise((resolve) => {
    const cp = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, PROCMONITOR_AUTH: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cp.stdout.on('data', (d) => {
      out += d;
      if (stopWhen && !cp.stopped && stopWhen(out)) {
        cp.stopped = true;
        cp.kill('SIGTERM');
      }
    });
    cp.stderr.on('data', (d) => (err += d));
    if (input) cp.stdin.end(input);
    cp.on('exit', (code, signal) => resolve({ code, signal, out, err }));
    cp.onSpawn = null;
  });
}

test('cli: argument parsing', () => {
  assert.deepEqual(parseClientArgs(['--socket', '/tmp/x.sock']).connect, { path: '/tmp/x.sock' });
  assert.deepEqual(parseClientArgs([]).connect, { path: '/var/run/procMonitor.sock' });
  assert.deepEqual(parseClientArgs(['--tcp', '--host', '127.0.0.1', '--port', '8080', '--auth', 'mysecretpassword']).connect, {
    host: '127.0.0.1',
    port: 8080,
    password: 'mysecretpassword',
  });
  assert.equal(parseClientArgs(['--tcp', '--port', '8080'], { PROCMONITOR_AUTH: 'env-pw' }).connect.password, 'env-pw');
  // The seed client's flags and defaults: -H/--host (localhost), -p/--port (8080), -t/--tcp, -a/--auth, -s/--socket.
  assert.deepEqual(parseClientArgs(['-t', '-a', 'pw']).connect, { host: 'localhost', port: 8080, password: 'pw' });
  assert.deepEqual(parseClientArgs(['-t', '-H', '10.0.0.1', '-p', '9000', '-a', 'pw']).connect, { host: '10.0.0.1', port: 9000, password: 'pw' });
  assert.deepEqual(parseClientArgs(['-s', '/tmp/procMonitor.sock']).connect, { path: '/tmp/procMonitor.sock' });
  assert.equal(parseClientArgs(['-j']).json, true);
  assert.equal(parseClientArgs(['--help']), null);
  for (const bad of [
    ['--nope'],
    ['--tcp'],
    ['--tcp', '--port', 'x', '--auth', 'a'],
    ['--tcp', '--port', '70000', '--auth', 'a'],
    ['--tcp', '--port', '1'],
    ['--socket'],
    ['--socket', 'a', '--tcp', '--port', '1', '--auth', 'a'],
    ['--events', 'bogus'],
    ['stray'],
    ['--auth', 'x'],
  ]) {
    assert.throws(() => parseClientArgs(bad, {}), Error, bad.join(' '));
  }
});

test('cli: bad input is one line on stderr and exit status 2', async () => {
  for (const args of [['--bogus'], ['--tcp', '--port', '99999', '--auth', 'x'], ['--tcp', '--port', '80']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.out, '');
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, /^procMonitor-client: /);
  }
});

test('cli: --json prints the raw lines; the default is readable text; SIGTERM exits 0', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  const evs = [
    { event: 'fork', time: '2026-01-01T00:00:00.000Z', child_pid: 11, parent_pid: 10, user: 'root', uid: 0, comm: 'sh', cmdline: 'sh' },
    { event: 'exec', time: '2026-01-01T00:00:00.001Z', pid: 11, user: 'root', cmdline: 'sleep 1', ppid: 10, uid: 0, argv: ['sleep', '1'], comm: 'sleep', exe: '/bin/sleep' },
    {
      event: 'exit',
      time: '2026-01-01T00:00:01.001Z',
      pid: 11,
      exit_code: 768,
      user: 'root',
      code: 3,
      signal: null,
      core: false,
      comm: 'sleep',
      cmdline: 'sleep 1',
      ppid: 10,
      duration_ms: 1000,
    },
  ];
  const feed = setInterval(() => source.emit('batch', evs), 20);
  t.after(() => clearInterval(feed));
  const json = await runCli(['--socket', p, '--json'], { until: (o) => o.split('\n').length > 3 });
  assert.equal(json.code, 0, json.err);
  // The server's lines as they are: each event with its seq at the end.
  const lines = json.out
    .split('\n')
    .slice(0, 3)
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map(({ seq: _seq, ...e }) => e),
    evs,
  );
  assert.deepEqual(
    lines.map((e) => e.seq - lines[0].seq),
    [0, 1, 2],
  );
  assert.ok(json.out.split('\n')[0].endsWith(`,"seq":${lines[0].seq}}`));
  const pwFile = path.join(dir, 'pw');
  fs.writeFileSync(pwFile, `${PW}\n`);
  fs.chmodSync(pwFile, 0o640); // its group may read it: taken, with a warning
  const text = await runCli(['--tcp', '--port', String(srv.address().tcp.port), '--auth-file', pwFile, '-e', 'exit'], { until: (o) => o.includes('\n') });
  assert.equal(text.code, 0, text.err);
  assert.equal(text.err, `procMonitor-client: warning: --auth-file ${pwFile} can be read by its group (mode 0640): chmod 600 ${pwFile}\n`);
  assert.equal(text.out.split('\n')[0], formatEvent(evs[2]));
  assert.match(text.out, /exit +11 root +code 3 after 1000 ms: sleep 1/);
  const env = await runCli(['--tcp', '--port', String(srv.address().tcp.port)], { env: { PROCMONITOR_AUTH: PW }, until: (o) => o.split('\n').length > 3 });
  assert.equal(env.code, 0, env.err);
  assert.match(env.out, /fork +11 root +child of 10 \(sh\)/);
  assert.match(env.out, /exec +11 root +sleep 1/);
});

test('cli: a wrong password or an absent server is one line on stderr and exit status 1', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW }, authFailureDelayMs: 0 });
  const r = await runCli(['--tcp', '--port', String(srv.address().tcp.port), '--auth', 'wrong']);
  assert.equal(r.code, 1);
  assert.match(r.err, /Authentication failed/);
  assert.equal(r.err.trim().split('\n').length, 1);
  const dir = tmpDir(t);
  const r2 = await runCli(['--socket', path.join(dir, 'absent.sock')]);
  assert.equal(r2.code, 1);
  assert.match(r2.err, /cannot connect/);
});
