'use strict';
// TLS on the TCP transport, with certificates made here by openssl (a CA, a server certificate
// for 127.0.0.1/localhost, a client certificate, and another CA with its own client): the
// library server and connect(), the procMonitor daemon and the procMonitor-client command,
// real TLS sockets and real processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { createBroadcastServer, connect, BroadcastServerError, ProcConnector, PASSWORD_PROMPT, AUTH_SUCCESS, AUTH_FAILED, CLIENT_CERT_REFUSED, tooManyClientsLine } = require('..');
const { serve, FakeSource, rawConnect, until, events, checkAccounting } = require('./server-helpers');
const { run } = require('./helpers');
const { BIN: DAEMON, daemon, freePort } = require('./daemon');

const PW = 'tls password';
const CLIENT = path.join(__dirname, '..', 'bin', 'procMonitor-client');

// ------------------------------------------------------------------ certificates

let pki;

test.before(() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-tls-'));
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = (name, cn) => ssl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`);
  const leaf = (name, cn, caName, ext) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  };
  ca('ca', 'procMonitor test CA');
  ca('other-ca', 'Other CA');
  leaf('server', 'localhost', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'test client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('other-client', 'impostor', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  fs.writeFileSync(path.join(dir, 'pw'), `${PW}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'garbage.pem'), 'this is not a certificate\n');
  // A PEM frame around bytes that are not a certificate.
  fs.writeFileSync(path.join(dir, 'broken.crt'), `-----BEGIN CERTIFICATE-----\n${Buffer.alloc(300, 7).toString('base64')}\n-----END CERTIFICATE-----\n`);
  pki = { dir, file: (n) => path.join(dir, n), read: (n) => fs.readFileSync(path.join(dir, n)) };
});

test.after(() => {
  if (pki) fs.rmSync(pki.dir, { recursive: true, force: true });
});

const serverTls = (extra = {}) => ({ cert: pki.read('server.crt'), key: pki.read('server.key'), ...extra });

// ------------------------------------------------------------------ helpers

/** A raw TLS client that records every byte it receives (cf. rawConnect). */
function tlsRaw(port, opts = {}) {
  const sock = tls.connect({ host: '127.0.0.1', port, ca: pki.read('ca.crt'), ...opts });
  const rec = { sock, chunks: [], closed: false, error: null };
  rec.text = () => Buffer.concat(rec.chunks).toString('utf8');
  rec.lines = () => {
    const parts = rec.text().split('\n');
    parts.pop();
    return parts;
  };
  sock.on('data', (c) => rec.chunks.push(c));
  sock.on('error', (e) => (rec.error = e));
  rec.closedP = new Promise((resolve) => sock.on('close', () => ((rec.closed = true), resolve())));
  return rec;
}

/** A raw TLS client through the password handshake. */
async function tlsAuth(port, password, opts) {
  const rec = tlsRaw(port, opts);
  await until(() => rec.text().startsWith(PASSWORD_PROMPT) || rec.closed, 10000, 'prompt over TLS');
  rec.sock.write(`${password}\n`);
  await until(() => rec.text().includes('\n') || rec.closed, 10000, 'auth answer over TLS');
  return rec;
}

/** Starts the daemon serving TLS on a free port; resolves once it is watching. */
async function startDaemon(t, extraArgs) {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const cp = daemon(t, [
      '--tcp',
      String(port),
      '--bind',
      '127.0.0.1',
      '--auth-file',
      pki.file('pw'),
      '--tls-cert',
      pki.file('server.crt'),
      '--tls-key',
      pki.file('server.key'),
      '-e',
      'fork,exec,exit',
      ...extraArgs,
    ]);
    try {
      await cp.ready;
    } catch (e) {
      if (/in use/i.test(cp.err) && attempt < 3) continue; // the port was taken meanwhile
      throw e;
    }
    cp.port = port;
    return cp;
  }
}

/**
 * Runs procMonitor-client; stops it (SIGTERM) once stopWhen(stdout) holds, if given (also
 * checked by `r.check()`, for a condition that changed without new output). Killed after 30 s
 * whatever it does: `done` resolves with `timedOut` then, never hangs.
 */
function runClient(args, stopWhen) {
  const cp = spawn(process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PROCMONITOR_AUTH: '' } });
  const r = { cp, out: '', err: '', timedOut: false };
  r.check = () => {
    if (stopWhen && !r.stopped && stopWhen(r.out)) {
      r.stopped = true;
      cp.kill('SIGTERM');
    }
  };
  cp.stdout.on('data', (d) => {
    r.out += d;
    r.check();
  });
  cp.stderr.on('data', (d) => (r.err += d));
  const deadline = setTimeout(() => {
    r.timedOut = true;
    cp.kill('SIGKILL');
  }, 30000);
  r.done = new Promise((resolve) =>
    cp.on('exit', (code, signal) => {
      clearTimeout(deadline);
      resolve({ code, signal, out: r.out, err: r.err, timedOut: r.timedOut });
    }),
  );
  return r;
}

const oneLine = (s) => s.trim().split('\n').length === 1 && !/\n\s+at /.test(s);

/** NDJSON lines of a client's stdout about pid. */
function jsonAbout(out, pid) {
  return out
    .split('\n')
    .slice(0, -1) // (the last piece is a line still coming, or empty)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((e) => e.child_pid === pid || e.pid === pid);
}

/** Runs procMonitor-client against a daemon until it has printed a child's exit; returns that child's events. */
async function clientSeesChild(daemon, clientArgs) {
  const before = (daemon.err.match(/connected \(/g) ?? []).length;
  let pid = null;
  const c = runClient(
    ['--tcp', '--port', String(daemon.port), '--auth-file', pki.file('pw'), '--json', ...clientArgs],
    (out) => pid !== null && jsonAbout(out, pid).some((e) => e.event === 'exit'),
  );
  await until(() => (daemon.err.match(/connected \(/g) ?? []).length > before || c.cp.exitCode !== null, 15000, 'the client to be served');
  assert.equal(c.cp.exitCode, null, `the client runs: ${c.err}`);
  pid = (await run('/bin/sh', ['-c', 'exit 5', 'pm-tls-cli'])).pid;
  // Its lines may all be in already: on a quiet host no more output would come to check them.
  c.check();
  const r = await c.done;
  assert.ok(!r.timedOut, `the client printed the exit of ${pid} within 30 s; it printed:\n${r.out}\n${r.err}`);
  assert.equal(r.code, 0, r.err);
  return jsonAbout(r.out, pid);
}

// ------------------------------------------------------------------ options

test('options: bad TLS material is refused with one clear message naming it', () => {
  const source = new FakeSource();
  const mk = (t) => () => createBroadcastServer({ source, tcp: { port: 0, password: PW, tls: t } });
  const bad = (t, re) => assert.throws(mk(t), (e) => e instanceof BroadcastServerError && e.code === 'EINVAL' && re.test(e.message) && !e.message.includes('\n'), re.source);
  bad(serverTls({ cert: 'not a certificate' }), /^tcp\.tls\.cert: no PEM certificate in it/);
  bad(serverTls({ cert: pki.read('broken.crt') }), /^tcp\.tls\.cert: certificate 1 cannot be read/);
  bad(serverTls({ key: 'nope' }), /^tcp\.tls\.key: no PEM private key in it/);
  bad(serverTls({ key: pki.read('client.key') }), /^tcp\.tls\.key is not the private key of the certificate in tcp\.tls\.cert/);
  bad(serverTls({ ca: pki.read('garbage.pem') }), /^tcp\.tls\.ca: no PEM certificate/);
  bad({ cert: pki.read('server.crt') }, /needs both cert and key/);
  bad(serverTls({ cert: 42 }), /tcp\.tls\.cert must be PEM text/);
  // Strings work as well as Buffers; a CA list as well as one.
  const ok = createBroadcastServer({
    source,
    tcp: {
      port: 0,
      password: PW,
      tls: { cert: pki.read('server.crt').toString(), key: pki.read('server.key').toString(), ca: [pki.read('ca.crt'), pki.read('other-ca.crt').toString()] },
    },
  });
  assert.ok(ok);
  // The client's options.
  assert.throws(() => connect({ path: '/tmp/x.sock', tls: true }), TypeError);
  assert.throws(() => connect({ port: 1234, password: PW, tls: { cert: pki.read('client.crt') } }), /tls\.cert and tls\.key go together/);
  assert.throws(
    () => connect({ port: 1234, password: PW, tls: { ca: 'garbage' } }),
    (e) => e instanceof TypeError && /^tls\.ca: no PEM certificate in it/.test(e.message),
  );
  assert.throws(
    () => connect({ port: 1234, password: PW, tls: { cert: pki.read('client.crt'), key: pki.read('server.key') } }),
    /^TypeError: tls\.key is not the private key of the certificate in tls\.cert$/,
  );
  assert.throws(() => connect({ port: 1234, password: PW, tls: 'yes' }), /tls must be true or an object/);
});

// ------------------------------------------------------------------ library

test('events flow over TLS from the real connector to connect(): fork, exec, exit of our child', async (t) => {
  const conn = new ProcConnector({ events: 'fork,exec,exit' });
  conn.start();
  t.after(() => conn.stop());
  const logs = [];
  const srv = await serve(t, { source: conn, tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() }, log: (l) => logs.push(l) });
  assert.ok(
    logs.some((l) => /^listening on tcp 127\.0\.0\.1:\d+ with TLS \(certificate CN=localhost, valid until \d{4}-\d\d-\d\d\)$/.test(l)),
    logs.join('\n'),
  );
  const client = connect({ port: srv.address().tcp.port, password: PW, tls: { ca: pki.read('ca.crt') } });
  t.after(() => client.close());
  await client.ready();
  const seen = [];
  client.on('event', (e) => seen.push(e));
  const { pid } = await run('/bin/sh', ['-c', 'exit 7', 'pm-tls-lib']);
  await until(() => seen.some((e) => e.event === 'exit' && e.pid === pid), 10000, 'the exit of our child over TLS');
  const mine = seen.filter((e) => e.child_pid === pid || e.pid === pid);
  assert.deepEqual(
    mine.map((e) => e.event),
    ['fork', 'exec', 'exit'],
  );
  assert.equal(mine[0].parent_pid, process.pid);
  assert.equal(mine[2].code, 7);
  // The name in the certificate is checked too: localhost is in it, example.com is not.
  const byName = connect({ host: 'localhost', port: srv.address().tcp.port, password: PW, tls: { ca: pki.read('ca.crt') } });
  await byName.ready();
  await byName.close();
  await assert.rejects(
    connect({ port: srv.address().tcp.port, password: PW, tls: { ca: pki.read('ca.crt'), servername: 'example.com' } }).ready(),
    (e) => e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' && /^TLS handshake failed: /.test(e.message),
  );
});

test("a wrong password inside TLS gets the seed's refusal and is closed", async (t) => {
  const source = new FakeSource();
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() }, authFailureDelayMs: 0 });
  const port = srv.address().tcp.port;
  const rejected = [];
  srv.on('reject', (r) => rejected.push(r.reason));
  const raw = await tlsAuth(port, 'not the password');
  await raw.closedP;
  assert.equal(raw.text(), PASSWORD_PROMPT + AUTH_FAILED);
  assert.equal(raw.sock.authorized, true, 'the client verified the server');
  await assert.rejects(connect({ port, password: 'wrong too', tls: { ca: pki.read('ca.crt') } }).ready(), (e) => e.code === 'EAUTH' && /Authentication failed/.test(e.message));
  const good = await tlsAuth(port, PW);
  assert.equal(good.text(), PASSWORD_PROMPT + AUTH_SUCCESS);
  source.batch(2);
  await until(() => events(good).length === 2);
  good.sock.destroy();
  assert.deepEqual(rejected, ['auth-failed', 'auth-failed']);
});

test('a plain TCP client on the TLS port gets nothing and is closed within the handshake timeout', async (t) => {
  const source = new FakeSource();
  const logs = [];
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() }, authTimeoutMs: 300, log: (l) => logs.push(l) });
  const port = srv.address().tcp.port;
  const reasons = [];
  srv.on('reject', (r) => reasons.push(r.reason));
  // Waits for a prompt that never comes (the seed's client): closed by the timeout.
  const silent = rawConnect({ port });
  await silent.connected;
  await until(() => srv.stats().pending === 1, 5000, 'the connection to be pending');
  source.batch(3);
  await silent.closedP;
  assert.equal(silent.text(), '', 'not a byte, not even the prompt');
  // Sends its password in clear: the TLS handshake fails at once.
  const talker = rawConnect({ port });
  await talker.connected;
  talker.sock.write(`${PW}\n`);
  await talker.closedP;
  assert.equal(talker.text(), '');
  assert.deepEqual(reasons, ['auth-timeout', 'tls-failed']);
  assert.ok(
    logs.some((l) => /TLS handshake failed \(ERR_SSL_/.test(l)),
    logs.join('\n'),
  );
  assert.equal(srv.stats().pending, 0);
  assert.equal(srv.stats().sentEvents, 0);
  // The library client and the command without TLS fail rather than hang; the command says why.
  await assert.rejects(connect({ port, password: PW, handshakeTimeoutMs: 5000 }).ready());
  const r = await runClient(['--tcp', '--port', String(port), '--auth', PW]).done;
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.equal(r.err, 'procMonitor-client: the server closed the connection before any prompt (if it serves TLS, add --tls)\n');
  // The other way round: a TLS client on a plain port is told what is likely wrong.
  const plain = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW } });
  await assert.rejects(
    connect({ port: plain.address().tcp.port, password: PW, tls: { ca: pki.read('ca.crt') } }).ready(),
    (e) => e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' && /^TLS handshake failed: wrong version number \(is the server serving TLS on this port\?\)$/.test(e.message),
  );
});

test('connections in their TLS handshake count against the pending limits', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() }, maxPending: 2, authTimeoutMs: 30000 });
  const port = srv.address().tcp.port;
  const reasons = [];
  srv.on('reject', (r) => reasons.push(r.reason));
  const holders = [rawConnect({ port }), rawConnect({ port })];
  await until(() => srv.stats().pending === 2, 5000, 'two handshakes pending');
  // No slot: closed before any handshake (nothing can be said in clear to a TLS client).
  await assert.rejects(connect({ port, password: PW, tls: { ca: pki.read('ca.crt') } }).ready());
  assert.deepEqual(reasons, ['too-many-pending']);
  for (const h of holders) h.sock.destroy();
  await until(() => srv.stats().pending === 0, 5000, 'the slots to free');
  const ok = connect({ port, password: PW, tls: { ca: pki.read('ca.crt') } });
  await ok.ready();
  await ok.close();
  assert.deepEqual(reasons, ['too-many-pending', 'closed-before-auth', 'closed-before-auth']);
});

test('pending slots full of handshakes from other networks: a TLS newcomer from a quiet network takes the place of the oldest, which is closed without a word', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() }, maxPending: 2, authTimeoutMs: 30000 });
  const port = srv.address().tcp.port;
  const reasons = [];
  srv.on('reject', (r) => reasons.push(r.reason));
  // Two silent connections, each from a network of its own, in their TLS handshake.
  const first = rawConnect({ port, localAddress: '127.0.5.1' });
  await until(() => srv.stats().pending === 1, 5000, 'one handshake pending');
  const second = rawConnect({ port, localAddress: '127.0.6.1' });
  t.after(() => [first, second].forEach((h) => h.sock.destroy()));
  await until(() => srv.stats().pending === 2, 5000, 'two handshakes pending');
  const ok = connect({ port, password: PW, tls: { ca: pki.read('ca.crt') } });
  await ok.ready();
  await ok.close();
  await first.closedP;
  assert.equal(first.text(), '', 'nothing is said in clear to a connection in its TLS handshake');
  assert.equal(second.closed, false, 'the younger one keeps its place');
  assert.deepEqual(reasons, ['too-many-pending']);
});

test('a client that verifies against another CA refuses the server', async (t) => {
  const srv = await serve(t, { source: new FakeSource(), tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() } });
  const port = srv.address().tcp.port;
  await assert.rejects(
    connect({ port, password: PW, tls: { ca: pki.read('other-ca.crt') } }).ready(),
    (e) => e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' && /^TLS handshake failed: unable to verify the first certificate(;[^\n]*)?$/.test(e.message),
  );
  // With Node's own root CAs (tls: true) the test CA is unknown as well.
  await assert.rejects(connect({ port, password: PW, tls: true }).ready(), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  // No password was ever sent, so none was refused.
  assert.equal(srv.stats().rejected['auth-failed'], 0);
  // The same through the command.
  const r = await runClient(['--tcp', '--port', String(port), '--auth', PW, '--tls-ca', pki.file('other-ca.crt')]).done;
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.ok(oneLine(r.err), r.err);
  assert.match(r.err, /^procMonitor-client: TLS handshake failed: unable to verify the first certificate(;[^\n]*)?\n$/);
});

test('slow client and max clients over TLS: the others get everything, the slow one a lost line; one too many is told', async (t) => {
  const source = new FakeSource();
  // A ring smaller than the storm, so that the slow one cannot catch up on everything.
  const srv = await serve(t, { source, tcp: { port: 0, host: '127.0.0.1', password: PW, tls: serverTls() }, clientBufferBytes: 256 * 1024, maxClients: 2, replayEvents: 5000 });
  const port = srv.address().tcp.port;
  let joined = 0;
  srv.on('client', () => joined++);
  const slow = await tlsAuth(port, PW);
  slow.sock.pause(); // never reads while the storm lasts
  const fast = await tlsAuth(port, PW);
  await until(() => joined === 2 && srv.stats().perClient.every((c) => c.mode !== 'request'));
  // A third is told, inside TLS, that the server is full.
  const third = tlsRaw(port);
  await third.closedP;
  assert.equal(third.text(), tooManyClientsLine(2));
  await assert.rejects(connect({ port, password: PW, tls: { ca: pki.read('ca.crt') } }).ready(), (e) => e.code === 'EBUSY');
  const total = 1000 * 50;
  await source.stream(1000, 50, 100, 2);
  await until(() => events(fast).length === total, 30000, 'the fast client gets everything');
  checkAccounting(events(fast), total);
  const slowStats = srv.stats().perClient.find((c) => c.mode === 'catch-up');
  assert.ok(slowStats, `the slow client fell behind: ${JSON.stringify(srv.stats().perClient)}`);
  assert.ok(slowStats.buffered <= 256 * 1024 + 64 * 1024, `memory bounded: ${slowStats.buffered}`);
  slow.sock.resume();
  await until(
    () => {
      try {
        checkAccounting(events(slow), total);
        return true;
      } catch {
        return false;
      }
    },
    30000,
    'the slow stream accounts for every event',
  );
  const acc = checkAccounting(events(slow), total);
  assert.equal(acc.lost, srv.stats().perClient.find((c) => c.id === slowStats.id).dropped);
  assert.equal(acc.lostLines, 1);
  source.batch(5);
  await until(() => events(slow).length === acc.received + 1 + 5 && events(fast).length === total + 5);
  checkAccounting(events(slow), total + 5);
  slow.sock.destroy();
  fast.sock.destroy();
});

// ------------------------------------------------------------------ the commands

test('procMonitor --tls-cert/--tls-key and procMonitor-client --tls-ca: events of our child', async (t) => {
  const d = await startDaemon(t, []);
  assert.match(d.err, /listening on tcp 127\.0\.0\.1:\d+ with TLS \(certificate CN=localhost, valid until [\d-]+\)/);
  assert.match(d.err, /serving tcp\+tls:127\.0\.0\.1:\d+/);
  const mine = await clientSeesChild(d, ['--tls-ca', pki.file('ca.crt')]);
  assert.deepEqual(
    mine.map((e) => e.event),
    ['fork', 'exec', 'exit'],
  );
  assert.equal(mine[2].code, 5);
  // --insecure connects without verifying, and says so.
  const insecure = await clientSeesChild(d, ['--tls', '--insecure']);
  assert.deepEqual(
    insecure.map((e) => e.event),
    ['fork', 'exec', 'exit'],
  );
  // A wrong password inside TLS: the seed's message, exit status 1.
  const wrong = await runClient(['--tcp', '--port', String(d.port), '--auth', 'nope', '--tls-ca', pki.file('ca.crt')]).done;
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /^procMonitor-client: server: Authentication failed\. Disconnecting\.\n$/);
  assert.equal((await d.stop()).code, 0);
});

test("procMonitor --tls-ca: no certificate or another CA's is refused; a valid one gets events", async (t) => {
  const d = await startDaemon(t, ['--tls-ca', pki.file('ca.crt')]);
  assert.match(d.err, /client certificates required, signed by CN=procMonitor test CA/);
  const base = ['--tcp', '--port', String(d.port), '--auth-file', pki.file('pw'), '--tls-ca', pki.file('ca.crt')];
  const none = await runClient(base).done;
  assert.equal(none.code, 1);
  assert.equal(none.out, '');
  assert.match(none.err, /^procMonitor-client: server: Client certificate refused\. Disconnecting\.\n$/);
  const other = await runClient([...base, '--tls-cert', pki.file('other-client.crt'), '--tls-key', pki.file('other-client.key')]).done;
  assert.equal(other.code, 1);
  assert.equal(other.out, '');
  assert.match(other.err, /^procMonitor-client: server: Client certificate refused\. Disconnecting\.\n$/);
  assert.match(d.err, /client certificate refused \(none given\)/);
  assert.match(d.err, /client certificate refused \(CN=impostor: /);
  const mine = await clientSeesChild(d, ['--tls-ca', pki.file('ca.crt'), '--tls-cert', pki.file('client.crt'), '--tls-key', pki.file('client.key')]);
  assert.deepEqual(
    mine.map((e) => e.event),
    ['fork', 'exec', 'exit'],
  );
  // The library client with the same certificate, and without.
  const lib = connect({ port: d.port, password: PW, tls: { ca: pki.read('ca.crt'), cert: pki.read('client.crt'), key: pki.read('client.key') } });
  await lib.ready();
  await lib.close();
  await assert.rejects(
    connect({ port: d.port, password: PW, tls: { ca: pki.read('ca.crt') } }).ready(),
    (e) => e.code === 'EAUTH' && e.message === `server: ${CLIENT_CERT_REFUSED.trim()}`,
  );
  assert.equal((await d.stop()).code, 0);
});

test('bad TLS options: one line on stderr, exit status 2, no stack trace', () => {
  const f = pki.file;
  const daemonCases = [
    [['--tls-cert', f('server.crt'), '--tls-key', f('server.key')], /^procMonitor: --tls-cert needs --tcp PORT$/],
    [['--socket', '/tmp/x.sock', '--tls-ca', f('ca.crt')], /^procMonitor: --tls-ca needs --tcp PORT$/],
    [['--tcp', '8080', '-a', 'x', '--tls-cert', f('server.crt')], /^procMonitor: --tls-cert and --tls-key go together$/],
    [['--tcp', '8080', '-a', 'x', '--tls-ca', f('ca.crt')], /^procMonitor: --tls-ca needs --tls-cert and --tls-key$/],
    [['--tcp', '8080', '-a', 'x', '--tls-cert', f('garbage.pem'), '--tls-key', f('server.key')], /^procMonitor: --tls-cert \S+garbage\.pem: no PEM certificate in it/],
    [['--tcp', '8080', '-a', 'x', '--tls-cert', f('broken.crt'), '--tls-key', f('server.key')], /^procMonitor: --tls-cert \S+broken\.crt: certificate 1 cannot be read \(/],
    [['--tcp', '8080', '-a', 'x', '--tls-cert', f('server.crt'), '--tls-key', f('garbage.pem')], /^procMonitor: --tls-key \S+garbage\.pem: no PEM private key in it/],
    [
      ['--tcp', '8080', '-a', 'x', '--tls-cert', f('server.crt'), '--tls-key', f('client.key')],
      /^procMonitor: --tls-key \S+client\.key is not the private key of the certificate in --tls-cert \S+server\.crt$/,
    ],
    [
      ['--tcp', '8080', '-a', 'x', '--tls-cert', f('server.crt'), '--tls-key', f('server.key'), '--tls-ca', f('garbage.pem')],
      /^procMonitor: --tls-ca \S+garbage\.pem: no PEM certificate in it/,
    ],
    [['--tcp', '8080', '-a', 'x', '--tls-cert', f('missing.crt'), '--tls-key', f('server.key')], /^procMonitor: cannot read --tls-cert \S+missing\.crt: ENOENT$/],
    [['--tcp', '8080', '-a', 'x', '--tls-cert', pki.dir, '--tls-key', f('server.key')], /^procMonitor: cannot read --tls-cert \S+: EISDIR$/],
  ];
  for (const [args, re] of daemonCases) {
    const r = spawnSync(process.execPath, [DAEMON, ...args], { encoding: 'utf8', timeout: 15000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.ok(oneLine(r.stderr), r.stderr);
    assert.match(r.stderr.trim(), re);
  }
  const clientCases = [
    [['--socket', '/tmp/x.sock', '--tls'], /TLS .* is for --tcp connections, not --socket/],
    [['--tls'], /--tcp needs a password/],
    [['--port', '1', '-a', 'x', '--tls-ca', f('garbage.pem')], /^procMonitor-client: --tls-ca \S+garbage\.pem: no PEM certificate in it/],
    [['--port', '1', '-a', 'x', '--tls-ca', f('broken.crt')], /certificate 1 cannot be read/],
    [['--port', '1', '-a', 'x', '--tls-cert', f('client.crt')], /--tls-cert and --tls-key go together/],
    [['--port', '1', '-a', 'x', '--tls-cert', f('client.crt'), '--tls-key', f('server.key')], /is not the private key of the certificate/],
    [['--port', '1', '-a', 'x', '--tls-ca', f('ca.crt'), '--insecure'], /either --tls-ca or --insecure/],
    [['--port', '1', '-a', 'x', '--tls-ca', f('nope.crt')], /cannot read --tls-ca \S+nope\.crt: ENOENT/],
  ];
  for (const [args, re] of clientCases) {
    const r = spawnSync(process.execPath, [CLIENT, ...args], { encoding: 'utf8', timeout: 15000, env: { ...process.env, PROCMONITOR_AUTH: '' } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.ok(oneLine(r.stderr), r.stderr);
    assert.match(r.stderr.trim(), re);
  }
});

test('--help of both commands lists the TLS options', () => {
  const d = spawnSync(process.execPath, [DAEMON, '--help'], { encoding: 'utf8' });
  for (const opt of ['--tls-cert FILE', '--tls-key FILE', '--tls-ca FILE']) assert.ok(d.stdout.includes(opt), opt);
  const c = spawnSync(process.execPath, [CLIENT, '--help'], { encoding: 'utf8' });
  for (const opt of ['--tls ', '--tls-ca FILE', '--tls-cert FILE', '--tls-key FILE', '--tls-servername NAME', '--insecure']) assert.ok(c.stdout.includes(opt), opt);
  const { parseClientArgs } = require('../dist/cli/client');
  assert.deepEqual(parseClientArgs(['--tls', '--port', '9', '-a', 'x']).connect, { host: 'localhost', port: 9, password: 'x', tls: true });
  assert.deepEqual(parseClientArgs(['--port', '9', '-a', 'x', '--insecure', '--tls-servername', 'pm.example']).connect.tls, {
    servername: 'pm.example',
    rejectUnauthorized: false,
  });
  assert.deepEqual(parseClientArgs(['--port', '9', '-a', 'x']).connect, { host: 'localhost', port: 9, password: 'x' });
});
