'use strict';
// The seed's TCP handshake, over real sockets: nothing before authentication; wrong, slow,
// dripped, over-long or binary passwords; half-open connections; failures answered later
// and later.
const test = require('node:test');
const assert = require('node:assert/strict');
const { PASSWORD_PROMPT, AUTH_SUCCESS, AUTH_FAILED, AUTH_TIMEOUT } = require('..');
const { serve, waitFor, FakeSource, rawConnect, until, tcpAuth, events } = require('./server-helpers');

const PW = 'correct horse';

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
