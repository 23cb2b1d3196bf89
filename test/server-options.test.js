'use strict';
// createBroadcastServer's options: bad ones named at once, the password from a file or the
// environment (and a warning when others can read its file).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { createBroadcastServer, BroadcastServerError, PASSWORD_PROMPT, AUTH_SUCCESS } = require('..');
const { tmpDir, serve, FakeSource, tcpAuth } = require('./server-helpers');

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
