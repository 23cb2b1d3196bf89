'use strict';
// --syslog: a real daemon (bin/procMonitor) sending to a real rsyslogd of the test's own
// (foreground, own config, inputs on a temp socket and on loopback ports), which writes what
// it received to a file; the test parses that file as RFC 5424.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { run } = require('./helpers');
const { tmpDir, until } = require('./server-helpers');
const { BIN, daemon } = require('./daemon');

function findRsyslogd() {
  for (const p of ['/usr/sbin/rsyslogd', '/sbin/rsyslogd']) if (fs.existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v rsyslogd'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const RSYSLOGD = findRsyslogd();
if (!RSYSLOGD && process.env.CI === 'true') {
  // CI installs rsyslog (.ci/run): its absence there is a failure, never a skip.
  test('rsyslogd is installed', () => assert.fail('rsyslogd not found: apt-get install rsyslog'));
}
const opts = { skip: RSYSLOGD ? false : 'rsyslogd is not installed (apt-get install rsyslog)' };

function freeUdpPort() {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts rsyslogd in the foreground with its own config: imuxsock on DIR/log.sock (RFC 5424
 * parsing on), imtcp on a free port, optionally imudp; every message goes to DIR/out.log as
 * `facility severity version app procid msgid sd <TAB> rawmessage`.
 */
async function rsyslogd(t, dir, { udpPort, socket = path.join(dir, 'log.sock') } = {}) {
  const out = path.join(dir, 'out.log');
  const portFile = path.join(dir, 'tcp.port');
  const conf = path.join(dir, 'rsyslog.conf');
  fs.writeFileSync(
    conf,
    `global(workDirectory="${dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="${socket}" UseSpecialParser="off" ParseHostname="on")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="${portFile}")
${udpPort ? `module(load="imudp")\ninput(type="imudp" address="127.0.0.1" port="${udpPort}")` : ''}
template(name="fields" type="string" string="%syslogfacility% %syslogseverity% %protocol-version% %app-name% %procid% %msgid% %structured-data%\\t%rawmsg%\\n")
*.* action(type="omfile" file="${out}" template="fields")
`,
  );
  const cp = spawn(RSYSLOGD, ['-n', '-f', conf, '-i', path.join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  cp.err = '';
  cp.stderr.on('data', (d) => (cp.err += d));
  cp.exited = new Promise((resolve) => cp.on('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (cp.exitCode === null && cp.signalCode === null) cp.kill('SIGTERM');
    await cp.exited;
  });
  await until(
    () =>
      cp.exitCode !== null ? Promise.reject(new Error(`rsyslogd exited: ${cp.err}`)) : fs.existsSync(socket) && fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim(),
    15000,
    'rsyslogd to listen',
  );
  cp.socket = socket;
  cp.tcpPort = Number(fs.readFileSync(portFile, 'utf8').trim());
  cp.out = out;
  /** The messages received so far, parsed (only procMonitor's). */
  cp.messages = () =>
    (fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '')
      .split('\n')
      .filter(Boolean)
      .map(parseLine)
      .filter((m) => m.app === 'procMonitor');
  cp.waitFor = (pred, what) => until(() => cp.messages().find(pred), 15000, what);
  return cp;
}

// RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
const RFC5424 =
  /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) ([\x21-\x7e]{1,128}) ([\x21-\x7e]{1,32}) (-|\[.*?\]) (.*)$/;

function parseLine(line) {
  const tab = line.indexOf('\t');
  const [facility, severity, version, app, procid, msgid, sd] = line.slice(0, tab).split(' ');
  const raw = line.slice(tab + 1);
  const m = RFC5424.exec(raw);
  return {
    rsyslog: { facility: Number(facility), severity: Number(severity), version, app, procid, msgid, sd },
    app,
    raw,
    rfc5424: m ? { pri: Number(m[1]), timestamp: m[2], hostname: m[3], app: m[4], procid: m[5], msgid: m[6], sd: m[7], msg: m[8] } : null,
  };
}

/** Asserts a message is well-formed RFC 5424 from procMonitor with this facility/severity, parsed alike by rsyslogd. */
function assertRfc5424(m, { pid, facility, severity }) {
  assert.ok(m.rfc5424, `not RFC 5424: ${m.raw}`);
  const r = m.rfc5424;
  assert.equal(r.pri, facility * 8 + severity, m.raw);
  assert.equal(r.app, 'procMonitor');
  assert.equal(r.procid, String(pid));
  assert.equal(r.msgid, '-');
  assert.equal(r.sd, '-');
  assert.ok(!Number.isNaN(Date.parse(r.timestamp)), r.timestamp);
  assert.ok(Math.abs(Date.parse(r.timestamp) - Date.now()) < 10 * 60 * 1000, `timestamp ${r.timestamp} is about now`);
  // rsyslogd understood it the same way.
  assert.deepEqual(m.rsyslog, { facility, severity, version: '1', app: 'procMonitor', procid: String(pid), msgid: '-', sd: '-' });
}

test('--syslog to a unix socket (logger): log lines as daemon.info / daemon.err, events as local0.info, RFC 5424', opts, async (t) => {
  const dir = tmpDir(t, 'pm-syslog-');
  const rs = await rsyslogd(t, dir);
  const sockPath = path.join(dir, 'pm.sock');
  const cp = daemon(t, ['--socket', sockPath, '-e', 'exec,exit', '--syslog', '--syslog-socket', rs.socket, '--syslog-events']);
  await cp.ready;

  const watching = await rs.waitFor((m) => m.rfc5424?.msg.startsWith('watching exec,exit'), 'the "watching" log line');
  assertRfc5424(watching, { pid: cp.pid, facility: 3, severity: 6 });
  assert.equal(watching.rfc5424.msg, `watching exec,exit, serving unix:${sockPath}, 10 clients at most`);

  // A process the test runs (alive long enough for its argv to be read): its exec and exit
  // arrive as JSON lines.
  const { pid } = await run('/bin/sh', ['-c', 'sleep 0.1; exit 3', 'pm-syslog-marker']);
  const isMine = (event) => (m) => m.rfc5424 && m.rfc5424.msg.startsWith('{') && JSON.parse(m.rfc5424.msg).event === event && JSON.parse(m.rfc5424.msg).pid === pid;
  const exec = await rs.waitFor(isMine('exec'), `the exec of ${pid}`);
  assertRfc5424(exec, { pid: cp.pid, facility: 16, severity: 6 });
  const ev = JSON.parse(exec.rfc5424.msg);
  assert.deepEqual(ev.argv, ['/bin/sh', '-c', 'sleep 0.1; exit 3', 'pm-syslog-marker']);
  const exit = await rs.waitFor(isMine('exit'), `the exit of ${pid}`);
  assert.equal(JSON.parse(exit.rfc5424.msg).code, 3);

  // An event too long for a syslog message (rsyslog's default limit, 8 KiB, is in force here)
  // still arrives as one valid JSON line, marked truncated.
  const long = 'x'.repeat(20000);
  const big = (await run('/bin/sh', ['-c', 'sleep 0.1', long])).pid;
  const bigExec = JSON.parse((await rs.waitFor((m) => m.rfc5424?.msg.startsWith(`{"event":"exec","pid":${big},`), `the exec of ${big}`)).rfc5424.msg);
  assert.equal(bigExec.truncated, true);
  assert.ok(bigExec.cmdline.startsWith('/bin/sh -c sleep 0.1 xxxx'));
  assert.ok(bigExec.cmdline.length < 8192 && bigExec.cmdline.length > 4000, String(bigExec.cmdline.length));

  // An error line (another daemon on the same socket path fails): daemon.err, sent before it exits.
  const other = daemon(t, ['--socket', sockPath, '--syslog', '--syslog-socket', rs.socket]);
  assert.equal((await other.exited).code, 1);
  const err = await rs.waitFor((m) => m.rfc5424?.procid === String(other.pid) && /another process is listening/.test(m.rfc5424.msg), 'the error line');
  assertRfc5424(err, { pid: other.pid, facility: 3, severity: 3 });

  // The stop is logged too, and the daemon still exits 0 at once.
  cp.kill('SIGTERM');
  assert.deepEqual(await cp.exited, { code: 0, signal: null });
  await rs.waitFor((m) => m.rfc5424?.procid === String(cp.pid) && m.rfc5424.msg === 'SIGTERM: stopping', 'the stop line');
  assert.doesNotMatch(cp.err, /syslog unix:/, 'no syslog trouble reported');
});

test('--syslog-events with --match, --exclude and --redact-defaults: only the events that match are logged, their secrets redacted', opts, async (t) => {
  const dir = tmpDir(t, 'pm-syslog-');
  const rs = await rsyslogd(t, dir);
  const sockPath = path.join(dir, 'pm.sock');
  const args = ['--socket', sockPath, '-e', 'fork,exec,exit', '--syslog', '--syslog-socket', rs.socket, '--syslog-events'];
  const cp = daemon(t, [...args, '--match', 'argv=*pm-syslog-flt*', '--exclude', 'event=fork', '--redact-defaults']);
  await cp.ready;
  const event = (m) => (m.rfc5424?.msg.startsWith('{') ? JSON.parse(m.rfc5424.msg) : null);
  // The other runs first: by the time the kept one's exit is logged, its events would be.
  const other = await run('/bin/sh', ['-c', 'sleep 0.1', 'pm-syslog-other', '--token', 'hunter2']);
  const kept = await run('/bin/sh', ['-c', 'sleep 0.1', 'pm-syslog-flt', '--token', 'hunter2']);
  const exec = await rs.waitFor((m) => event(m)?.event === 'exec' && event(m).pid === kept.pid, `the exec of ${kept.pid}`);
  await rs.waitFor((m) => event(m)?.event === 'exit' && event(m).pid === kept.pid, `the exit of ${kept.pid}`);
  assert.deepEqual(event(exec).argv, ['/bin/sh', '-c', 'sleep 0.1', 'pm-syslog-flt', '--token', '***']);
  const logged = rs.messages().map(event).filter(Boolean);
  assert.deepEqual(
    logged.filter((e) => e.pid === kept.pid || e.child_pid === kept.pid).map((e) => e.event),
    ['exec', 'exit'],
  );
  assert.deepEqual(
    logged.filter((e) => e.pid === other.pid || e.child_pid === other.pid),
    [],
  );
  assert.ok(!rs.messages().some((m) => (m.rfc5424?.msg ?? '').includes('hunter2')), 'no secret in syslog');
  cp.kill('SIGTERM');
  assert.deepEqual(await cp.exited, { code: 0, signal: null });
});

test('--syslog-target tcp:// (octet-counted) and udp://, with --syslog-facility', opts, async (t) => {
  const dir = tmpDir(t, 'pm-syslog-');
  const udpPort = await freeUdpPort();
  const rs = await rsyslogd(t, dir, { udpPort });
  for (const [target, facility] of [
    [`tcp://127.0.0.1:${rs.tcpPort}`, 'local3'],
    [`udp://127.0.0.1:${udpPort}`, 'user'],
  ]) {
    const cp = daemon(t, ['--direct', '-e', 'exec', '--syslog', '--syslog-target', target, '--syslog-events', '--syslog-facility', facility]);
    await cp.ready;
    const code = { local3: 19, user: 1 }[facility];
    const watching = await rs.waitFor((m) => m.rfc5424?.procid === String(cp.pid) && m.rfc5424.msg.startsWith('watching exec'), `${target}: the "watching" line`);
    assertRfc5424(watching, { pid: cp.pid, facility: 3, severity: 6 });
    const { pid } = await run('/bin/true', ['pm-syslog-marker']);
    const exec = await rs.waitFor(
      (m) => m.rfc5424?.procid === String(cp.pid) && m.rfc5424.msg.startsWith('{"event":"exec"') && JSON.parse(m.rfc5424.msg).pid === pid,
      `${target}: the exec of ${pid}`,
    );
    assertRfc5424(exec, { pid: cp.pid, facility: code, severity: 6 });
    assert.equal(exec.rfc5424.hostname, os.hostname());
    assert.match(exec.rfc5424.timestamp, /Z$/);
    cp.kill('SIGTERM');
    assert.deepEqual(await cp.exited, { code: 0, signal: null });
  }
});

test('an absent syslog never stops the daemon: it serves clients, says so once, and delivers once syslog is there', opts, async (t) => {
  const dir = tmpDir(t, 'pm-syslog-');
  const logSock = path.join(dir, 'later.sock');
  const sockPath = path.join(dir, 'pm.sock');
  const cp = daemon(t, ['--socket', sockPath, '-e', 'exec', '--syslog', '--syslog-socket', logSock, '--syslog-events']);
  await cp.ready;
  await cp.saw(/syslog unix:\S+later\.sock: .*No such file or directory; retrying/);

  // Clients are served as usual meanwhile.
  const client = net.connect(sockPath);
  t.after(() => client.destroy());
  let got = '';
  client.setEncoding('utf8');
  client.on('data', (d) => (got += d));
  await cp.saw(/client \d+ connected/);
  const { pid } = await run('/bin/true', ['pm-syslog-absent']);
  await until(() => got.includes(`"pid":${pid},`), 15000, `the client's exec of ${pid}`);

  // Syslog appears: what waited is delivered, the daemon says it sends again.
  const rs = await rsyslogd(t, dir, { socket: logSock });
  const exec = await rs.waitFor((m) => m.rfc5424?.msg.includes(`"pid":${pid},`), `the exec of ${pid}, delivered late`);
  assertRfc5424(exec, { pid: cp.pid, facility: 16, severity: 6 });
  await rs.waitFor((m) => m.rfc5424?.msg.startsWith('watching exec'), 'the "watching" line, delivered late');
  await cp.saw(/syslog unix:\S+: sending again/);
  assert.equal(cp.err.match(/retrying/g).length, 1, `one line about the absence: ${cp.err}`);
  cp.kill('SIGTERM');
  assert.deepEqual(await cp.exited, { code: 0, signal: null });
});

test('--syslog usage errors: one line, exit status 2', () => {
  const cases = [
    [['--syslog-socket', '/dev/log'], /--syslog-socket needs --syslog/],
    [['--syslog-events'], /--syslog-events needs --syslog/],
    [['--syslog', '--syslog-target', 'ftp://x:1'], /--syslog-target must be unix:PATH, udp:\/\/HOST:PORT or tcp:\/\/HOST:PORT/],
    [['--syslog', '--syslog-target', 'tcp://127.0.0.1:0'], /port must be from 1 to 65535/],
    [['--syslog', '--syslog-target', 'unix:relative'], /absolute path/],
    [['--syslog', '--syslog-socket', '/a', '--syslog-target', 'udp://h:1'], /either --syslog-socket or --syslog-target/],
    [['--syslog', '--syslog-events', '--syslog-facility', 'bogus'], /unknown facility "bogus"/],
    [['--syslog', '--syslog-facility', 'local1'], /--syslog-facility applies to --syslog-events/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, `${args.join(' ')}: status ${r.status}, stderr ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0], re, args.join(' '));
  }
});

test("library: the sender takes the reader's lines as they are; only an over-long one is parsed and cut; lost lines are warnings", async (t) => {
  const { SyslogSender } = require('../dist/outputs/syslog');
  const { linesOf } = require('../dist/events');
  const rx = dgram.createSocket('udp4');
  const got = [];
  rx.on('message', (m) => got.push(m.toString('utf8')));
  await new Promise((r) => rx.bind(0, '127.0.0.1', r));
  t.after(() => rx.close());
  const sender = new SyslogSender({ target: { kind: 'udp', host: '127.0.0.1', port: rx.address().port } });
  t.after(() => sender.close());
  const small = { event: 'exec', time: '2026-12-07T00:00:00.000Z', pid: 42, user: 'root', uid: 0, cmdline: 'sh -c true', argv: ['sh', '-c', 'true'] };
  const huge = { ...small, pid: 43, cmdline: 'x'.repeat(20000), argv: ['x'.repeat(20000)] };
  const lost = { event: 'lost', time: '2026-12-07T00:00:00.000Z', count: 7, source: 'kernel' };
  sender.lines(linesOf([small, huge, lost]));
  await until(() => got.length === 3, 5000, 'three messages');
  const msg = (m) => m.slice(m.indexOf('{'));
  assert.equal(msg(got[0]), JSON.stringify(small));
  assert.ok(got[0].startsWith('<134>1 '), got[0].slice(0, 20)); // local0.info
  const cut = JSON.parse(msg(got[1]));
  assert.equal(cut.truncated, true);
  assert.equal(cut.pid, 43);
  assert.deepEqual(cut.argv, []);
  assert.equal(msg(got[2]), JSON.stringify(lost));
  assert.ok(got[2].startsWith('<132>1 '), got[2].slice(0, 20)); // local0.warning
});
