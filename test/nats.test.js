'use strict';
// Publishing to NATS: the real daemon and the library against a real nats-server (Debian's
// nats-server package), real subscribers and JetStream consumers, real child processes.
// Without nats-server these tests are skipped, except in CI (CI=true) where they fail.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { run } = require('./helpers');
const { tmpDir, until } = require('./server-helpers');
const { BIN, daemon, freePort, ndjsonClient, NATS_SERVER, natsServer } = require('./daemon');

const ROOT = path.join(__dirname, '..');
const skip = NATS_SERVER || process.env.CI ? false : 'nats-server is not installed (apt-get install nats-server)';
const T = { skip, timeout: 90000 };

const pm = require('..');
const { connect: natsConnect, StringCodec } = require('nats');
const HOST = pm.natsToken(os.hostname());
const sc = StringCodec();

// Whatever a test starts is closed at the end of the file, the last first (clients and
// publishers before their server).
const cleanups = [];
test.after(async () => {
  for (const f of cleanups.reverse()) await f();
});
/** Stands for a test (`t`) in the shared helpers: their cleanups join the list above. */
const FILE = { after: (f) => cleanups.push(f) };
/** How long a wait of this file may take. */
const WAIT = 20000;

/** Starts nats-server on 127.0.0.1:port (JetStream with storage in `jsDir` when given); resolves once it is ready. */
function startNats(port, jsDir, extra = []) {
  return natsServer(FILE, port, [...(jsDir ? ['-js', '-sd', jsDir] : []), ...extra]);
}

async function client(port, opts = {}) {
  const nc = await natsConnect({ servers: `127.0.0.1:${port}`, reconnectTimeWait: 100, maxReconnectAttempts: -1, ...opts });
  cleanups.push(() => nc.close().catch(() => {}));
  return nc;
}

/** Subscribes and records every message as { subject, text, ev }. */
async function record(nc, subject) {
  const msgs = [];
  const sub = nc.subscribe(subject, {
    callback: (err, m) => {
      if (!err) msgs.push({ subject: m.subject, text: sc.decode(m.data), ev: JSON.parse(sc.decode(m.data)) });
    },
  });
  await nc.flush(); // the server knows the subscription from here on
  return { msgs, sub };
}

const mine = (pid) => (m) => (m.ev.event === 'fork' && m.ev.child_pid === pid) || (m.ev.pid === pid && (m.ev.event === 'exec' || m.ev.event === 'exit'));
const kinds = (msgs, pid) => msgs.filter(mine(pid)).map((m) => m.ev.event);
const complete = (msgs, pid) => ['fork', 'exec', 'exit'].every((k) => kinds(msgs, pid).includes(k));

/**
 * NDJSON events from a Unix socket, as messages ({ ev }) like those from NATS. Resolves once
 * the daemon has taken the client on (its log says so): an event before that is not the
 * client's, though its connect() already returned.
 */
async function unixReader(p, cp) {
  const before = (cp.err.match(/unix: client \d+ connected/g) || []).length;
  const r = await ndjsonClient(FILE, p);
  await until(() => (cp.err.match(/unix: client \d+ connected/g) || []).length > before, WAIT, 'the daemon to take the client on');
  return { msgs: () => r.events.map((ev) => ({ ev })) };
}

/** Every message of a JetStream stream from the start, read with an ordered consumer, until pred(msgs). */
async function readStream(nc, stream, pred, what) {
  const js = nc.jetstream();
  const c = await js.consumers.get(stream);
  const msgs = [];
  const it = await c.consume();
  const done = (async () => {
    for await (const m of it) {
      msgs.push({ subject: m.subject, seq: m.seq, text: sc.decode(m.data), ev: JSON.parse(sc.decode(m.data)) });
      if (pred(msgs)) break;
    }
  })();
  try {
    await until(() => pred(msgs), WAIT, what);
  } finally {
    it.stop();
    await done.catch(() => {});
  }
  return msgs;
}

/** A publisher closed at the end whatever happens (else it would reconnect forever). */
function publisher(opts) {
  const p = pm.createNatsPublisher(opts);
  cleanups.push(() => p.close());
  return p;
}

/** A source of hand-made events for the library tests (any emitter of 'batch' is a source). */
function execEvent(i) {
  return {
    event: 'exec',
    pid: 100000 + i,
    user: 'root',
    cmdline: `/bin/true ${i}`,
    time: new Date().toISOString(),
    ppid: 1,
    uid: 0,
    argv: ['/bin/true', String(i)],
    comm: 'true',
    exe: '/usr/bin/true',
  };
}

// ---------------------------------------------------------------------------------------------

test('require("procmonitor") does not load the nats client; starting a publisher does', () => {
  const script = `
    const pm = require(${JSON.stringify(ROOT)});
    const loaded = () => Object.keys(require.cache).some((k) => k.includes('/node_modules/nats/'));
    const before = loaded();
    const p = pm.createNatsPublisher({ source: new (require('node:events'))(), servers: 'nats://127.0.0.1:1', reconnectMinMs: 5000 });
    const afterCreate = loaded();
    p.start();
    const afterStart = loaded();
    p.close().then(() => console.log(JSON.stringify({ before, afterCreate, afterStart, api: typeof pm.createNatsPublisher })));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { before: false, afterCreate: false, afterStart: true, api: 'function' });
});

test('library: bad options are NatsPublisherError EINVAL; natsToken and parseNatsServers', () => {
  const source = new EventEmitter();
  const bad = [
    { servers: 'http://x' },
    { servers: '' },
    { servers: [] },
    { servers: 'nats://host:99999' },
    { servers: 'nats://host:0' },
    { servers: 'nats://host/path' },
    { servers: 'nats://a:4222,tls://b:4222' },
    { servers: 'nats://u:p@a,nats://b' },
    { servers: 'a', subjectPrefix: 'a..b' },
    { servers: 'a', subjectPrefix: 'a.*' },
    { servers: 'a', subjectPrefix: 'a.>' },
    { servers: 'a', subjectPrefix: '' },
    { servers: 'a', jetstream: 'a.b' },
    { servers: 'a', jetstream: { stream: '' } },
    { servers: 'a', maxPendingBytes: 0 },
    { servers: 'a', reconnectMinMs: 100, reconnectMaxMs: 50 },
  ];
  for (const o of bad) {
    assert.throws(
      () => pm.createNatsPublisher({ source, ...o }),
      (e) => e instanceof pm.NatsPublisherError && e.code === 'EINVAL' && e.message.length > 10,
      JSON.stringify(o),
    );
  }
  assert.throws(() => pm.createNatsPublisher({ servers: 'a' }), /source/);
  assert.equal(pm.natsToken('web-01.example.com'), 'web-01_example_com');
  assert.equal(pm.natsToken('a b*>'), 'a_b__');
  assert.equal(pm.natsToken(''), 'unknown');
  assert.deepEqual(pm.parseNatsServers('nats://u:p%40ss@n1:4223, n2 ,tls://[::1]'), [
    { url: 'nats://n1:4223', hostport: 'n1:4223', tls: false, user: 'u', pass: 'p@ss' },
    { url: 'nats://n2:4222', hostport: 'n2:4222', tls: false },
    { url: 'tls://[::1]:4222', hostport: '[::1]:4222', tls: true },
  ]);
  assert.deepEqual(pm.parseNatsServers(['nats://tok@h']), [{ url: 'nats://h:4222', hostport: 'h:4222', tls: false, token: 'tok' }]);
  const p = pm.createNatsPublisher({ source, servers: 'h', hostname: 'db.example.org', subjectPrefix: 'org.pm' });
  assert.equal(p.subject('exec'), 'org.pm.db_example_org.exec');
  assert.equal(p.stats().state, 'idle');
});

test('daemon: bad --nats options are usage errors (exit 2, one line, no stack trace)', () => {
  const cases = [
    [['--nats', 'http://127.0.0.1:4222', '--direct'], /--nats: bad NATS server "http:\/\/127.0.0.1:4222": unsupported scheme http/],
    [['--nats', 'nats://127.0.0.1:70000', '--direct'], /--nats: bad NATS server .*(port|not a URL)/],
    [['--nats', 'nats://127.0.0.1:4222,', '--direct'], /--nats: empty NATS server/],
    [['--nats', '', '--direct'], /--nats needs a value/],
    [['--nats'], /--nats needs a value/],
    [['--nats', 'h', '--nats-subject', 'a.*'], /--nats-subject: bad subject prefix "a\.\*"/],
    [['--nats', 'h', '--nats-jetstream', 'a.b'], /--nats-jetstream: bad JetStream stream name/],
    [['--nats', 'h', '--nats-buffer', '12'], /--nats-buffer must be a whole number from 1024/],
    [['--nats', 'h', '--nats-subject', 'x', '--nats-subject', 'y'], /--nats-subject given more than once/],
    [['--nats-subject', 'x', '--direct'], /--nats-subject needs --nats URL/],
    [['--nats-jetstream', 'S'], /--nats-jetstream needs --nats URL/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, `${args.join(' ')}: status ${r.status}, stderr ${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
    assert.match(lines[0], /^procMonitor: /);
    assert.match(lines[0], re, args.join(' '));
  }
  const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  for (const opt of ['--nats URL', '--nats-subject', '--nats-name', '--nats-jetstream', '--nats-buffer']) assert.ok(help.stdout.includes(opt), opt);
});

test('core NATS: fork, exec and exit of a child on procmon.HOST.EVENT, the same bytes as stdout; wildcards', T, async () => {
  const port = await freePort();
  await startNats(port);
  const nc = await client(port);
  const all = await record(nc, 'procmon.>');
  const execs = await record(nc, 'procmon.*.exec');
  const cp = await daemon(FILE, ['--nats', `nats://127.0.0.1:${port}`, '--direct', '-e', 'fork,exec,exit']).ready;
  await cp.saw(/nats: connected to 127\.0\.0\.1:\d+/);
  // The shell waits for its stdin to close, so /proc still has its argv when the exec is read.
  const sh = spawn('/bin/sh', ['-c', 'read x; exit 3', 'pm-nats-core'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const pid = sh.pid;
  const exited = new Promise((resolve) => sh.on('exit', resolve));
  await until(() => kinds(execs.msgs, pid).length === 1, WAIT, `exec of ${pid} on NATS`);
  sh.stdin.end();
  assert.equal(await exited, 3);
  await until(() => complete(all.msgs, pid) && kinds(execs.msgs, pid).length === 1, WAIT, `fork, exec, exit of ${pid} on NATS`);
  assert.deepEqual(kinds(all.msgs, pid), ['fork', 'exec', 'exit']);
  assert.deepEqual(kinds(execs.msgs, pid), ['exec']);
  assert.ok(
    execs.msgs.every((m) => m.ev.event === 'exec'),
    'procmon.*.exec carries only exec events',
  );
  for (const m of all.msgs.filter(mine(pid))) {
    assert.equal(m.subject, `procmon.${HOST}.${m.ev.event}`);
    assert.ok(m.text.endsWith('}\n'), 'the message is the JSON line');
    // The very line the daemon printed on stdout.
    await until(() => cp.out.includes(m.text), WAIT, `the ${m.ev.event} line on stdout`);
  }
  const exit = all.msgs.find((m) => m.ev.event === 'exit' && m.ev.pid === pid).ev;
  assert.equal(exit.exit_code, 768);
  assert.deepEqual(all.msgs.find((m) => m.ev.event === 'exec' && m.ev.pid === pid).ev.argv, ['/bin/sh', '-c', 'read x; exit 3', 'pm-nats-core']);
  assert.equal((await cp.stop()).code, 0);
  assert.match(cp.err, /nats: closed/);
});

test('--match, --exclude and --redact-defaults with NATS: only the events that match are published, their secrets redacted', T, async () => {
  const port = await freePort();
  await startNats(port);
  const nc = await client(port);
  const all = await record(nc, 'procmon.>');
  const args = ['--nats', `nats://127.0.0.1:${port}`, '--direct', '-e', 'fork,exec,exit', '--match', 'argv=*pm-nats-flt*', '--exclude', 'event=fork', '--redact-defaults'];
  const cp = await daemon(FILE, args).ready;
  await cp.saw(/nats: connected to 127\.0\.0\.1:\d+/);
  // Each shell waits for its stdin to close, so /proc still has its argv when its exec is read.
  const start = (name) => spawn('/bin/sh', ['-c', 'read x; exit 0', name, '--password=hunter2'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const other = start('pm-nats-other');
  const kept = start('pm-nats-flt');
  await until(() => kinds(all.msgs, kept.pid).length === 1, WAIT, `exec of ${kept.pid} on NATS`);
  // The other ends first: by the time the kept one's exit is published, its events would be.
  other.stdin.end();
  await new Promise((r) => other.on('exit', r));
  kept.stdin.end();
  await until(() => kinds(all.msgs, kept.pid).includes('exit'), WAIT, `exit of ${kept.pid} on NATS`);
  assert.deepEqual(kinds(all.msgs, kept.pid), ['exec', 'exit']);
  assert.deepEqual(kinds(all.msgs, other.pid), []);
  const exec = all.msgs.find((m) => m.ev.event === 'exec' && m.ev.pid === kept.pid).ev;
  assert.deepEqual(exec.argv, ['/bin/sh', '-c', 'read x; exit 0', 'pm-nats-flt', '--password=***']);
  assert.ok(!all.msgs.some((m) => m.text.includes('hunter2')), 'no secret on NATS');
  assert.ok(!cp.out.includes('hunter2'), 'nor on stdout');
  assert.equal((await cp.stop()).code, 0);
});

test('--nats-subject and --nats-name; --nats repeated and comma-separated with a dead server in the list', T, async () => {
  const port = await freePort();
  const dead = await freePort();
  await startNats(port);
  const nc = await client(port);
  const got = await record(nc, 'org.pm.*.*');
  const cp = await daemon(FILE, [
    '--nats',
    `nats://127.0.0.1:${dead},127.0.0.1:${port}`,
    '--nats',
    `nats://127.0.0.1:${dead}`,
    '--nats-subject',
    'org.pm',
    '--nats-name',
    'web-1.example.com',
    '--direct',
    '-e',
    'exec,exit',
  ]).ready;
  await cp.saw(/nats: connected to 127\.0\.0\.1:\d+/);
  const { pid } = await run('/bin/true', []);
  await until(() => got.msgs.some((m) => m.ev.event === 'exit' && m.ev.pid === pid), WAIT, `exit of ${pid} on org.pm.*.*`);
  const ex = got.msgs.find((m) => m.ev.event === 'exec' && m.ev.pid === pid);
  assert.equal(ex.subject, 'org.pm.web-1_example_com.exec');
  assert.match(
    cp.err,
    new RegExp(
      `connecting to nats://127\\.0\\.0\\.1:${dead}, nats://127\\.0\\.0\\.1:${port}, nats://127\\.0\\.0\\.1:${dead} \\(subjects org\\.pm\\.web-1_example_com\\.<event>\\)`,
    ),
  );
  assert.equal((await cp.stop()).code, 0);
});

test('credentials in the URL and TLS (tls://): events flow, the password is never logged; a wrong password is retried, not fatal', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const port = await freePort();
  await startNats(port, null, ['--user', 'pm', '--pass', 's3cret!', '--tls', '--tlscert', cert, '--tlskey', key]);
  // A host name, not an IP address: the nats client checks the certificate against the name.
  const nc = await client(port, { servers: `localhost:${port}`, user: 'pm', pass: 's3cret!', tls: { ca: fs.readFileSync(cert) } });
  const got = await record(nc, 'procmon.>');
  const env = { NODE_EXTRA_CA_CERTS: cert };
  const cp = await daemon(FILE, ['--nats', `tls://pm:s3cret%21@localhost:${port}`, '--direct', '-e', 'exec'], { env }).ready;
  await cp.saw(/nats: connected to /);
  const { pid } = await run('/bin/true', []);
  await until(() => got.msgs.some((m) => m.ev.event === 'exec' && m.ev.pid === pid), WAIT, `exec of ${pid} over TLS`);
  assert.match(cp.err, new RegExp(`connecting to tls://localhost:${port} `));
  assert.doesNotMatch(cp.err, /s3cret/);
  assert.equal((await cp.stop()).code, 0);

  const bad = await daemon(FILE, ['--nats', `tls://pm:wrong@localhost:${port}`, '--direct', '-e', 'exec'], { env }).ready;
  await bad.saw(/nats: cannot connect to tls:\/\/localhost:\d+: .*(Authorization|AUTHORIZATION).*\(attempt 2\)/);
  assert.equal(bad.exitCode, null, 'still running');
  assert.doesNotMatch(bad.err, /wrong/);
  assert.equal((await bad.stop()).code, 0);
});

test('NATS down when the daemon starts: it runs, serves its socket, retries, and publishes once a server is up', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const sock = path.join(dir, 'pm.sock');
  const port = await freePort();
  const cp = await daemon(FILE, ['--nats', `nats://127.0.0.1:${port}`, '--socket', sock, '-e', 'fork,exec,exit']).ready;
  await cp.saw(/nats: cannot connect to nats:\/\/127\.0\.0\.1:\d+: .*; retrying in [\d.]+ s \(attempt 1\)/);
  const u = await unixReader(sock, cp);
  const a = await run('/bin/true', []);
  await until(() => complete(u.msgs(), a.pid), WAIT, `fork, exec, exit of ${a.pid} on the Unix socket`);
  assert.equal(cp.exitCode, null, 'still running');

  await startNats(port);
  const nc = await client(port);
  const got = await record(nc, 'procmon.>');
  await cp.saw(/nats: connected to 127\.0\.0\.1:\d+/);
  const b = await run('/bin/true', []);
  await until(() => complete(got.msgs, b.pid), WAIT, `fork, exec, exit of ${b.pid} on NATS`);
  await until(() => complete(u.msgs(), b.pid), WAIT, `fork, exec, exit of ${b.pid} on the Unix socket`);
  assert.equal((await cp.stop()).code, 0);
});

test('nats-server killed and restarted: the Unix client gets every event meanwhile; NATS gets events again and one loss report', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const jsDir = path.join(dir, 'js');
  const sock = path.join(dir, 'pm.sock');
  const port = await freePort();
  let server = await startNats(port, jsDir);
  // A stream that keeps whatever the daemon publishes, so that the loss report can be read
  // back whenever it was sent; the daemon itself publishes plain core NATS here.
  const nc = await client(port);
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'CAPTURE', subjects: ['procmon.>'] });
  const live = await record(nc, 'procmon.*.exec');
  const cp = await daemon(FILE, ['--nats', `nats://127.0.0.1:${port}`, '--socket', sock, '--nats-buffer', '16384', '-e', 'fork,exec,exit']).ready;
  await cp.saw(/nats: connected to/);
  const u = await unixReader(sock, cp);
  const first = await run('/bin/true', []);
  await until(() => kinds(live.msgs, first.pid).includes('exec'), WAIT, 'the first exec on NATS');

  const killedAt = Date.now();
  await server.stop('SIGKILL');
  await cp.saw(/nats: disconnected from 127\.0\.0\.1:\d+/);
  // Meanwhile: 20 children (60 events of 300 bytes and more), more than the 16 KiB the daemon
  // holds for NATS. (Once it is back, a batch must overflow 16 KiB to drop again.)
  const pids = [];
  for (let i = 0; i < 20; i++) pids.push((await run('/bin/sh', ['-c', 'exit 0', `pm-nats-gap-${i}`])).pid);
  await until(() => pids.every((pid) => complete(u.msgs(), pid)), WAIT, 'every event of the 20 children on the Unix socket');
  for (const pid of pids) assert.deepEqual(kinds(u.msgs(), pid), ['fork', 'exec', 'exit'], `pid ${pid} on the Unix socket`);
  await cp.saw(/nats: not connected and \d+ bytes are pending: dropping events/);
  await cp.saw(/nats: reconnecting to 127\.0\.0\.1:\d+ \(attempt 1\)/);

  server = await startNats(port, jsDir);
  await cp.saw(/nats: reconnected to 127\.0\.0\.1:\d+/);
  await cp.saw(/nats: reporting \d+ lost events/);
  // Live subscribers get events again (once they are back themselves).
  await until(
    async () =>
      !nc.isClosed() &&
      (await nc.flush().then(
        () => true,
        () => false,
      )),
    WAIT,
    'the test client to reconnect',
  );
  const after = await run('/bin/true', []);
  await until(() => kinds(live.msgs, after.pid).includes('exec'), WAIT, `exec of ${after.pid} on NATS after the restart`);
  await until(() => complete(u.msgs(), after.pid), WAIT, 'the Unix client still streaming');

  // The stream has the loss report (source "nats"), before the events that followed the recovery.
  const msgs = await readStream(nc, 'CAPTURE', (ms) => ms.some((m) => m.ev.event === 'exec' && m.ev.pid === after.pid), 'the post-restart exec in the stream');
  // (On a busy host the 16 KiB may fill before the first connection too: that loss is
  // reported as well, before the kill, and is not this test's.)
  const reports = msgs.filter((m) => m.ev.event === 'lost' && m.ev.source === 'nats' && Date.parse(m.ev.time) >= killedAt);
  assert.equal(reports.length, 1, `${JSON.stringify(reports.map((m) => m.ev))}\n${cp.err}`);
  const report = reports[0];
  assert.equal(report.subject, `procmon.${HOST}.lost`);
  assert.ok(Number.isInteger(report.ev.count) && report.ev.count > 0);
  assert.deepEqual(Object.keys(report.ev), ['event', 'time', 'count', 'source']);
  const afterExec = msgs.find((m) => m.ev.event === 'exec' && m.ev.pid === after.pid);
  assert.ok(report.seq < afterExec.seq, 'the report comes before the events after the recovery');
  // Every event of the outage reached NATS or is in the count: the Unix client has them all
  // (with seq), from the first exec NATS had before the kill to the first fork after the
  // restart; what the server had not confirmed when it went away was published again (so an
  // event may come twice, and is counted once here). The count is what the daemon dropped:
  // equal to what is missing, unless the killed server itself lost something it had
  // confirmed but not yet stored in the stream (then more is missing than counted).
  const onNats = new Set(msgs.map((m) => m.text));
  const unixEvs = u.msgs().map((m) => m.ev);
  const seqOf = (pred) => unixEvs.find(pred).seq;
  const from = seqOf((e) => e.event === 'exec' && e.pid === first.pid);
  const to = seqOf((e) => e.event === 'fork' && e.child_pid === after.pid);
  const missing = unixEvs.filter((e) => e.seq > from && e.seq < to).filter(({ seq: _seq, ...ev }) => !onNats.has(`${JSON.stringify(ev)}\n`));
  assert.ok(
    missing.length >= report.ev.count && missing.length - report.ev.count <= 3,
    `${missing.length} events of the outage missing on NATS, ${report.ev.count} reported\n${cp.err}`,
  );
  assert.equal(cp.exitCode, null);
  assert.equal((await cp.stop()).code, 0);
});

test('JetStream: --nats-jetstream creates the stream (or adds the subject), events are read back with a consumer', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const port = await freePort();
  await startNats(port, path.join(dir, 'js'));
  const nc = await client(port);
  const cp = await daemon(FILE, ['--nats', `nats://127.0.0.1:${port}`, '--nats-jetstream', 'PROCMON', '--direct', '-e', 'fork,exec,exit']).ready;
  await cp.saw(/nats: JetStream stream PROCMON created \(subjects procmon\.>\)/);
  const { pid } = await run('/bin/sh', ['-c', 'exit 7', 'pm-nats-js']);
  const msgs = await readStream(nc, 'PROCMON', (ms) => complete(ms, pid), `fork, exec, exit of ${pid} in the stream`);
  assert.deepEqual(kinds(msgs, pid), ['fork', 'exec', 'exit']);
  assert.equal(msgs.find((m) => m.ev.event === 'exit' && m.ev.pid === pid).ev.code, 7);
  for (const m of msgs.filter(mine(pid))) {
    assert.equal(m.subject, `procmon.${HOST}.${m.ev.event}`);
    await until(() => cp.out.includes(m.text), WAIT, `the ${m.ev.event} line on stdout`);
  }
  const jsm = await nc.jetstreamManager();
  assert.deepEqual((await jsm.streams.info('PROCMON')).config.subjects, ['procmon.>']);
  assert.equal((await cp.stop()).code, 0);

  // A stream that exists without the subjects gets them added; its other subjects stay.
  await jsm.streams.add({ name: 'MIXED', subjects: ['other.>'] });
  const cp2 = await daemon(FILE, ['--nats', `127.0.0.1:${port}`, '--nats-jetstream', 'MIXED', '--nats-subject', 'pm2', '--direct', '-e', 'exec']).ready;
  await cp2.saw(/nats: JetStream stream MIXED: subject pm2\.> added/);
  const b = await run('/bin/true', []);
  await readStream(nc, 'MIXED', (ms) => ms.some((m) => m.ev.event === 'exec' && m.ev.pid === b.pid && m.subject === `pm2.${HOST}.exec`), `exec of ${b.pid} in MIXED`);
  assert.deepEqual((await jsm.streams.info('MIXED')).config.subjects, ['other.>', 'pm2.>']);
  assert.equal((await cp2.stop()).code, 0);
});

test('library, core NATS: a stalled server (SIGSTOP) makes events beyond the bound drop; once it resumes, one lost message with the exact count', T, async () => {
  const port = await freePort();
  const server = await startNats(port);
  const nc = await client(port);
  const got = await record(nc, 'lib.>');
  const source = new EventEmitter();
  const lines = [];
  const pub = publisher({ source, servers: [`nats://127.0.0.1:${port}`], subjectPrefix: 'lib', hostname: 'h', maxPendingBytes: 2000, log: (l) => lines.push(l) });
  const lostEvents = [];
  pub.on('lost', (ev) => lostEvents.push(ev));
  await new Promise((resolve) => pub.once('connect', resolve).start());
  assert.equal(pub.stats().state, 'connected');
  source.emit('batch', [execEvent(0)]);
  await until(() => got.msgs.length === 1, WAIT, 'the first event');
  await until(() => pub.stats().confirmed === 1, WAIT, 'its confirmation');

  server.kill('SIGSTOP');
  try {
    const N = 40;
    for (let i = 1; i <= N; i++) source.emit('batch', [execEvent(i)]);
    const s = pub.stats();
    assert.ok(s.dropped > 0, 'events beyond 2000 bytes were dropped');
    assert.ok(s.pendingBytes <= 2000, `pending ${s.pendingBytes}`);
    assert.equal(s.published - 1 + s.dropped, N);
    assert.equal(s.unreported, s.dropped);
  } finally {
    server.kill('SIGCONT');
  }
  await until(() => lostEvents.length === 1, WAIT, 'the loss report');
  const dropped = pub.stats().dropped;
  await until(() => got.msgs.some((m) => m.ev.event === 'lost'), WAIT, 'the lost message on NATS');
  const events = got.msgs.filter((m) => m.ev.event === 'exec');
  const lost = got.msgs.filter((m) => m.ev.event === 'lost');
  assert.equal(lost.length, 1);
  assert.equal(lost[0].subject, 'lib.h.lost');
  assert.equal(lost[0].ev.source, 'nats');
  assert.equal(lost[0].ev.count, dropped);
  assert.equal(events.length - 1 + dropped, 40, 'every event was delivered or counted');
  assert.deepEqual(
    events.map((m) => m.ev.pid),
    [...events.map((m) => m.ev.pid)].sort((a, b) => a - b),
    'in order',
  );
  // Publishing goes on after the report.
  source.emit('batch', [execEvent(99)]);
  await until(() => got.msgs.some((m) => m.ev.pid === 100099), WAIT, 'an event after the report');
  assert.ok(got.msgs.findIndex((m) => m.ev.event === 'lost') < got.msgs.findIndex((m) => m.ev.pid === 100099));
  assert.ok(
    lines.some((l) => /not keeping up/.test(l)),
    lines.join('\n'),
  );
  await pub.close();
  const st = pub.stats();
  assert.equal(st.state, 'closed');
  assert.equal(st.unreported, 0);
  assert.equal(st.lostReports, 1);
});

test('library, JetStream: events held while the server is down are stored after it comes up, the rest reported exactly', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const port = await freePort();
  const source = new EventEmitter();
  const pub = publisher({
    source,
    servers: `127.0.0.1:${port}`,
    subjectPrefix: 'jlib',
    hostname: 'h',
    jetstream: { stream: 'JLIB' },
    maxPendingBytes: 1500,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
  });
  const reconnecting = [];
  pub.on('reconnecting', (server, attempt) => reconnecting.push(attempt));
  pub.start();
  await until(() => reconnecting.length >= 2, WAIT, 'connection attempts');
  const N = 30;
  for (let i = 0; i < N; i++) source.emit('batch', [execEvent(i)]);
  const held = pub.stats();
  assert.equal(held.state, 'connecting');
  assert.ok(held.queued > 0 && held.dropped > 0 && held.queued + held.dropped === N, JSON.stringify(held));
  assert.ok(held.pendingBytes <= 1500);

  await startNats(port, path.join(dir, 'js'));
  await until(() => pub.stats().lostReports === 1 && pub.stats().pendingBytes === 0, WAIT, 'the queue drained and the loss reported');
  const nc = await client(port);
  const msgs = await readStream(nc, 'JLIB', (ms) => ms.some((m) => m.ev.event === 'lost'), 'the loss report in the stream');
  assert.deepEqual(
    msgs.map((m) => (m.ev.event === 'lost' ? `lost ${m.ev.count}` : m.ev.pid - 100000)),
    [...Array.from({ length: held.queued }, (_, i) => i), `lost ${held.dropped}`],
    'the events held, in order, then the count of the others',
  );
  const st = pub.stats();
  assert.equal(st.confirmed, held.queued + 1);
  assert.equal(st.unconfirmed, 0);
  await pub.close();
});

test('library, JetStream: a stream deleted under it is made again; the events that failed meanwhile are reported exactly', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const port = await freePort();
  await startNats(port, path.join(dir, 'js'));
  const nc = await client(port);
  const jsm = await nc.jetstreamManager();
  const source = new EventEmitter();
  const lines = [];
  const pub = publisher({ source, servers: `127.0.0.1:${port}`, subjectPrefix: 'jdel', hostname: 'h', jetstream: 'JDEL', log: (l) => lines.push(l) });
  await new Promise((resolve) => pub.once('connect', resolve).start());
  source.emit('batch', [execEvent(0)]);
  await until(() => pub.stats().confirmed === 1, WAIT, 'the first ack');
  await jsm.streams.delete('JDEL');
  for (let i = 1; i <= 5; i++) source.emit('batch', [execEvent(i)]);
  await until(() => pub.stats().lostReports === 1 && pub.stats().pendingBytes === 0, WAIT, 'the stream made again and the loss reported').catch((e) => {
    throw new Error(`${e.message}: ${JSON.stringify(pub.stats())}\n${lines.join('\n')}`);
  });
  source.emit('batch', [execEvent(6)]);
  const msgs = await readStream(nc, 'JDEL', (ms) => ms.some((m) => m.ev.pid === 100006), 'the event after the report');
  assert.deepEqual(
    msgs.map((m) => (m.ev.event === 'lost' ? `lost ${m.ev.count} ${m.ev.source}` : m.ev.pid - 100000)),
    ['lost 5 nats', 6],
  );
  const st = pub.stats();
  assert.equal(st.unconfirmed, 5);
  assert.equal(st.dropped, 0);
  assert.ok(
    lines.some((l) => /publish failed: no JetStream stream answered/.test(l)),
    lines.join('\n'),
  );
  assert.equal(lines.filter((l) => /JetStream stream JDEL created/.test(l)).length, 2, lines.join('\n'));
  await pub.close();
});

test('library, JetStream: acks outstanding when the server dies are written off and reported exactly after it is back', T, async () => {
  const dir = tmpDir(FILE, 'pm-nats-');
  const jsDir = path.join(dir, 'js');
  const port = await freePort();
  let server = await startNats(port, jsDir);
  const source = new EventEmitter();
  const pub = publisher({ source, servers: `127.0.0.1:${port}`, subjectPrefix: 'jdie', hostname: 'h', jetstream: 'JDIE', reconnectMinMs: 50, reconnectMaxMs: 200 });
  await new Promise((resolve) => pub.once('connect', resolve).start());
  source.emit('batch', [execEvent(0), execEvent(1)]);
  await until(() => pub.stats().confirmed === 2, WAIT, 'the first acks');
  server.kill('SIGSTOP'); // it reads nothing more, acks nothing more
  source.emit('batch', [execEvent(2), execEvent(3), execEvent(4)]);
  assert.equal(pub.stats().published, 5);
  const disconnected = new Promise((resolve) => pub.once('disconnect', resolve));
  await server.stop('SIGKILL');
  await disconnected;
  assert.equal(pub.stats().unconfirmed, 3);
  source.emit('batch', [execEvent(5)]); // held until the server is back
  assert.equal(pub.stats().queued, 1);
  server = await startNats(port, jsDir);
  await until(() => pub.stats().lostReports === 1 && pub.stats().pendingBytes === 0, WAIT, 'the loss reported after the restart');
  const nc = await client(port);
  const msgs = await readStream(nc, 'JDIE', (ms) => ms.some((m) => m.ev.event === 'lost'), 'the loss report in the stream');
  assert.deepEqual(
    msgs.map((m) => (m.ev.event === 'lost' ? `lost ${m.ev.count}` : m.ev.pid - 100000)),
    [0, 1, 5, 'lost 3'],
  );
  await pub.close();
});
