'use strict';
// The procMonitor command as a user runs it: a child process, real clients, real signals.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { run } = require('./helpers');
const { tmpDir, until } = require('./server-helpers');
const { nobodyWith } = require('./kernel');
const { BIN, NOBODY, daemon, freePort, connectTo, ndjsonReader, ndjsonClient, NATS_SERVER, natsServer } = require('./daemon');

const sawExit = (pid) => (evs) => evs.some((e) => e.event === 'exit' && e.pid === pid);

test('--help lists every flag the parser knows, each with its default, and the seed examples; --version', () => {
  const r = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stderr, '');
  const help = r.stdout;
  for (const line of help.split('\n')) assert.ok(line.length <= 100, `wider than 100 columns (${line.length}): ${line}`);
  // Each option's entry: its label line (`  -x, --long ARG` or `      --long ARG`) and the
  // indented lines after it.
  const entries = new Map();
  let current = null;
  for (const line of help.split('\n')) {
    const m = /^ {2}(?:-(\w), | {4})--([\w-]+)/.exec(line);
    if (m) entries.set(m[2], (current = { short: m[1] ?? null, text: line }));
    else if (current && /^ {25}\S/.test(line)) current.text += '\n' + line;
    else current = null;
  }
  const { DAEMON_FLAGS } = require('../dist/cli/daemon');
  const known = [...DAEMON_FLAGS.string, ...DAEMON_FLAGS.boolean];
  assert.deepEqual([...entries.keys()].sort(), [...known].sort(), 'the flags in --help are the flags the parser knows');
  for (const flag of known) {
    const e = entries.get(flag);
    const short = Object.keys(DAEMON_FLAGS.short).find((k) => DAEMON_FLAGS.short[k] === flag) ?? null;
    assert.equal(e.short, short, `--${flag}: its short flag in --help`);
    // --help, --version and --print-config do something rather than set something: no default to give.
    if (flag === 'help' || flag === 'version' || flag === 'print-config') continue;
    assert.match(e.text, /\bdefault:\s+\S/, `--${flag} gives its default:\n${e.text}`);
  }
  assert.match(entries.get('clients').text, /default: 10\)/);
  assert.match(entries.get('socket').text, /default: \/var\/run\/procMonitor\.sock;/);
  assert.match(entries.get('auth').text, /visible to every user in `ps`/i);
  for (const env of ['PROCMONITOR_AUTH', 'NO_COLOR', 'FORCE_COLOR']) assert.match(help, new RegExp(`^  ${env} `, 'm'));
  assert.ok(help.includes('procMonitor --clients 20 --socket /tmp/procMonitor.sock -e exec,fork,exit'));
  assert.ok(help.includes('procMonitor --tcp 8080 --auth mysecretpassword --clients 50 -e exec,fork,exit'));
  assert.ok(help.includes('procMonitor --direct -e exec,fork,exit'));
  // docs/cli.md shows it verbatim.
  const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'cli.md'), 'utf8');
  const head = '## The `procMonitor` command\n\n```\n';
  const at = doc.indexOf(head) + head.length;
  assert.ok(at > head.length, 'docs/cli.md has the section');
  assert.equal(doc.slice(at, doc.indexOf('```\n', at)), help, "docs/cli.md's copy of --help is the output of --help");
  const v = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' });
  assert.equal(v.status, 0);
  assert.match(v.stdout, /^procMonitor \d+\.\d+\.\d+\n$/);
});

test('bad input: one clear line on stderr, exit status 2', async (t) => {
  const busy = net.createServer();
  await new Promise((r) => busy.listen(0, '0.0.0.0', r));
  const busyPort = busy.address().port;
  const dir = tmpDir(t, 'pm-cli-');
  const emptyFile = path.join(dir, 'empty-password');
  fs.writeFileSync(emptyFile, '', { mode: 0o600 });
  // Password files that are not secrets' files: a FIFO (would block a plain read forever), one
  // every user may change, one too big to be a password.
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const writable = path.join(dir, 'writable');
  fs.writeFileSync(writable, 'pw\n');
  fs.chmodSync(writable, 0o666);
  const groupWritable = path.join(dir, 'group-writable');
  fs.writeFileSync(groupWritable, 'pw\n');
  fs.chmodSync(groupWritable, 0o620);
  const big = path.join(dir, 'big');
  fs.writeFileSync(big, 'x'.repeat(5000), { mode: 0o600 });
  const cases = [
    [['-e', 'exec,bogus'], /unknown event "bogus"/],
    [['-e', ''], /needs a value|empty event list/],
    [['-e', ','], /empty event list/],
    [['--tcp', '0', '-a', 'x'], /--tcp must be a whole number from 1 to 65535/],
    [['--tcp', '65536', '-a', 'x'], /from 1 to 65535/],
    [['--tcp', 'http', '-a', 'x'], /from 1 to 65535/],
    [['--tcp', '8080'], /--tcp needs a password/],
    [['--bogus'], /unknown option --bogus/],
    [['-x'], /unknown option -x/],
    [['--socket'], /--socket needs a value/],
    [['--clients', '0'], /--clients must be a whole number from 1/],
    [['--clients', '-1'], /--clients must be a whole number from 1 to 100000, got "-1"/],
    [['-c', '-5'], /--clients must be a whole number from 1 to 100000, got "-5"/],
    [['--tcp', '-1', '-a', 'x'], /--tcp must be a whole number from 1 to 65535, got "-1"/],
    [['-t', '-8080', '-a', 'x'], /--tcp must be a whole number from 1 to 65535, got "-8080"/],
    [['--rcvbuf', '-1'], /--rcvbuf must be a whole number from 1 /],
    [['--replay', '-3'], /--replay must be a whole number from 0 /],
    [['--clients'], /--clients needs a value/],
    [['--slow-client', 'maybe'], /drop or disconnect/],
    [['--stall-timeout', 'soon'], /--stall-timeout must be a whole number from 0/],
    [['--direct', '--format', 'xml'], /json or text/],
    [['--direct', '--cwd', 'maybe'], /^procMonitor: --cwd must be yes or no, got "maybe"$/],
    [['--direct', '--cgroups', '0'], /^procMonitor: --cgroups must be yes or no, got "0"$/],
    [['--tcp', String(busyPort), '-a', 'pw', '--quiet'], /in use/i],
    [['--tcp', '8080', '--auth-file', emptyFile], new RegExp(`the password file ${emptyFile} is empty; refusing to serve events unauthenticated$`)],
    [['--tcp', '8080', '--auth-file', path.join(os.tmpdir(), 'pm-surely-no-such-file')], /cannot read --auth-file .*pm-surely-no-such-file: ENOENT/],
    [['--tcp', '8080', '--auth-file', '/dev/zero'], /^procMonitor: --auth-file \/dev\/zero is not a regular file \(a character device\); give a file holding the password$/],
    [['--tcp', '8080', '--auth-file', fifo], /--auth-file \S+fifo is not a regular file \(a FIFO\)/],
    [['--tcp', '8080', '--auth-file', dir], /--auth-file \S+ is not a regular file \(a directory\)/],
    [['--tcp', '8080', '--auth-file', writable], /--auth-file \S+writable can be changed by its group and every user \(mode 0666\); refusing it: chmod go-w /],
    [['--tcp', '8080', '--auth-file', groupWritable], /can be changed by its group \(mode 0620\); refusing it/],
    [['--tcp', '8080', '--auth-file', big], /--auth-file \S+big is 5000 bytes; a password file holds at most 4096$/],
    [['--socket', '/tmp/x.sock', '--socket-group', '4294967295'], /--socket-group must be a group name or a gid below 4294967295, got "4294967295"/],
    [['--tcp', '8080', '-a', 'pw', '--bind', '999.1.1.1'], /--bind must be an IP address .* got "999\.1\.1\.1"/],
    [['--tcp', '8080', '-a', 'pw', '--bind', 'bad host!'], /--bind must be an IP address/],
    [['--tcp', '8080', '-a', 'pw', '--bind', '10.255.255.254', '--quiet'], /cannot listen on tcp 10\.255\.255\.254:8080: .*EADDRNOTAVAIL/],
  ];
  try {
    for (const [args, re] of cases) {
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, PROCMONITOR_AUTH: '' }, timeout: 10000 });
      assert.equal(r.status, 2, `${args.join(' ')}: status ${r.status}, stderr ${r.stderr}`);
      assert.equal(r.stdout, '', args.join(' '));
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
      assert.match(lines[0], /^procMonitor: /);
      assert.match(lines[0], re, args.join(' '));
    }
  } finally {
    busy.close();
  }
});

test('warnings once up, even with --quiet: a password file others may read, a password under 12 characters, plain TCP beyond loopback', async (t) => {
  const pwFile = path.join(tmpDir(t, 'pm-cli-'), 'pw');
  fs.writeFileSync(pwFile, 'filesecret\n');
  fs.chmodSync(pwFile, 0o644);
  const cp = daemon(t, ['--tcp', String(await freePort()), '--bind', '127.0.0.1', '--auth-file', pwFile, '--quiet', '-e', 'exec']);
  await cp.ready;
  await until(() => cp.err.split('\n').length >= 3, 5000, 'two warnings');
  assert.equal(
    cp.err,
    `procMonitor: warning: --auth-file ${pwFile} can be read by its group and every user (mode 0644): chmod 600 ${pwFile}\n` +
      'procMonitor: warning: the TCP password is 10 characters long: at the 5 guesses a second an attacker gets at most, use 12 or more (see docs/threat-model.md)\n',
  );
  assert.equal((await cp.stop('SIGTERM', 5000)).code, 0);
  // Every interface, no TLS: the password crosses the network in clear.
  const open = daemon(t, ['--tcp', String(await freePort()), '--auth', 'a long enough password', '--quiet', '-e', 'exec']);
  await open.ready;
  await until(() => open.err.includes('\n'), 5000, 'the warning');
  assert.equal(
    open.err,
    'procMonitor: warning: TCP on 0.0.0.0 without TLS: the password and the events cross the network in clear (give --tls-cert and --tls-key, or --bind 127.0.0.1)\n',
  );
  assert.equal((await open.stop('SIGTERM', 5000)).code, 0);
  // Loopback and a long password: nothing to say.
  const quiet = daemon(t, ['--tcp', String(await freePort()), '--bind', '127.0.0.1', '--auth', 'a long enough password', '--quiet', '-e', 'exec']);
  await quiet.ready;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(quiet.err, '');
  assert.equal((await quiet.stop('SIGTERM', 5000)).code, 0);
});

test('runtime failures: a clear line and a non-zero status, never a stack trace', async (t) => {
  const dir = tmpDir(t, 'pm-cli-');
  // A socket path held by a live instance.
  const sock = path.join(dir, 'live.sock');
  const live = net.createServer().listen(sock);
  await new Promise((r) => live.on('listening', r));
  let r = spawnSync(process.execPath, [BIN, '--socket', sock], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1, 'a runtime failure, not a usage error');
  assert.match(r.stderr, /another instance|in use|live|another procMonitor/i);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // The same with TCP served too: still a runtime failure (status 1), not the port's 2.
  const port = await freePort();
  r = spawnSync(process.execPath, [BIN, '--socket', sock, '--tcp', String(port), '--bind', '127.0.0.1', '--auth', 'pw'], { encoding: 'utf8', timeout: 10000 });
  live.close();
  assert.equal(r.status, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // A directory that does not exist.
  r = spawnSync(process.execPath, [BIN, '--socket', path.join(dir, 'no', 'such', 'dir.sock')], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // A regular file in the way is never removed.
  const file = path.join(dir, 'file');
  fs.writeFileSync(file, 'keep me');
  r = spawnSync(process.execPath, [BIN, '--socket', file], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
  // The kernel refuses (EPERM) or never answers (ENOACK) in a user namespace: either way it is said.
  r = spawnSync('unshare', ['-U', process.execPath, BIN, '--direct'], { encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^procMonitor: the kernel (refused|never acknowledged) the subscription.*user namespace other than the host's/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('unprivileged: the default socket in /var/run is refused with the remedy named; so is a port below 1024', (t) => {
  const asNobody = (args, env) => spawnSync(NOBODY[0], [...NOBODY.slice(1), process.execPath, BIN, ...args], { encoding: 'utf8', timeout: 10000, env });
  const noXdg = { ...process.env };
  delete noXdg.XDG_RUNTIME_DIR;
  let r = asNobody([], noXdg);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^procMonitor: cannot create the socket in \/var\/run: EACCES/);
  assert.ok(r.stderr.endsWith('; use --socket PATH in a directory you can write (e.g. --socket $XDG_RUNTIME_DIR/procMonitor.sock), or --direct\n'), r.stderr);
  // With XDG_RUNTIME_DIR set, the example is the real path.
  r = asNobody(['--socket', '/var/run/procMonitor-test.sock'], { ...noXdg, XDG_RUNTIME_DIR: '/run/user/65534' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /use --socket PATH in a directory you can write \(e\.g\. --socket \/run\/user\/65534\/procMonitor\.sock\), or --direct\n$/);
  // (Only where the kernel keeps low ports privileged, as it does by default.)
  if (Number(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) <= 81)
    return t.skip('this kernel lets anyone bind port 81 (ip_unprivileged_port_start): the low-port refusal was not tested');
  r = asNobody(['--tcp', '81', '--auth', 'pw', '--bind', '127.0.0.1'], noXdg);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /127\.0\.0\.1:81.*EACCES.*; a port below 1024 needs CAP_NET_BIND_SERVICE: use one from 1024 up\n$/);
});

test('direct mode: only events on stdout, logs on stderr; --quiet; --format text', async (t) => {
  const cp = daemon(t, ['--direct', '-e', 'exec,fork,exit']);
  await cp.ready;
  const { pid } = await run('/bin/sleep', ['0.1']);
  await new Promise((r) => setTimeout(r, 300));
  const st = await cp.stop('SIGINT');
  assert.equal(st.code, 0);
  const lines = cp.out.trim().split('\n');
  for (const l of lines) assert.ok(l.startsWith('{"event":'), `stdout has only events: ${l}`);
  const mine = lines.map((l) => JSON.parse(l)).filter((e) => e.pid === pid || e.child_pid === pid);
  assert.deepEqual(
    mine.map((e) => e.event),
    ['fork', 'exec', 'exit'],
  );
  assert.deepEqual(mine[1].argv, ['/bin/sleep', '0.1']);
  assert.equal(mine[1].cwd, process.cwd(), 'the working directory, on exec and exit');
  assert.equal(mine[2].cwd, process.cwd());
  assert.match(cp.err, /watching exec,fork,exit/);

  // --cwd no: none, and not missing either.
  const nc = daemon(t, ['--direct', '--cwd', 'no', '-e', 'exec']);
  await nc.ready;
  const other = await run('/bin/sleep', ['0.1']);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await nc.stop('SIGINT')).code, 0);
  const execOf = nc.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((e) => e.pid === other.pid);
  assert.ok(execOf && !('cwd' in execOf) && !(execOf.missing ?? []).includes('cwd'), JSON.stringify(execOf));

  const q = daemon(t, ['--direct', '--quiet', '--format', 'text', '-e', 'exec']);
  await q.ready;
  // --quiet says nothing when it is up: run marked processes until one shows (a slow start,
  // e.g. under a sanitizer, just takes a few more).
  let line;
  let tpid;
  for (let i = 0; i < 50 && !line; i++) {
    tpid = (await run('/bin/sleep', ['0.1'])).pid;
    await new Promise((r) => setTimeout(r, 200));
    line = q.out.split('\n').find((l) => l.includes(` ${tpid} `));
  }
  await q.stop();
  assert.equal(q.err, '');
  assert.match(line, new RegExp(`exec\\s+${tpid} root\\s+/bin/sleep 0\\.1`));
  assert.doesNotMatch(line, /\x1b\[/, 'no colour when stdout is not a terminal');
});

/**
 * Runs `procMonitor --direct --format text -e exec` with stdout on a terminal (a pty made by
 * script(1) from util-linux) or on a pipe; resolves with the line of a marker process's exec.
 */
async function textLine(t, { pty, env = {} }) {
  const cmd = `exec ${process.execPath} ${BIN} --direct --format text -e exec`;
  const cp = pty
    ? spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    : spawn('/bin/sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  cp.stdout.on('data', (d) => (out += d));
  cp.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => cp.on('exit', resolve));
  // The daemon is script's child (exec'd in place of its shell), or the shell itself.
  const daemonPid = () => (pty ? Number(fs.readFileSync(`/proc/${cp.pid}/task/${cp.pid}/children`, 'utf8').trim()) : cp.pid);
  t.after(() => {
    try {
      process.kill(daemonPid(), 'SIGKILL');
    } catch {}
    cp.kill('SIGKILL');
  });
  await until(() => /watching exec/.test(out), 15000, 'the daemon to start');
  let line;
  for (let i = 0; i < 20 && !line; i++) {
    const { pid } = await run('/bin/sleep', ['0.05']);
    await until(() => out.includes(` ${pid} `), 3000, `the exec of ${pid}`).catch(() => {});
    line = out.split('\n').find((l) => l.includes(` ${pid} `));
  }
  process.kill(daemonPid(), 'SIGTERM');
  await exited;
  assert.ok(line, out.slice(-500));
  return line.replace(/\r$/, '');
}

test('--format text: colour on a terminal (a pty), none with NO_COLOR or on a pipe; FORCE_COLOR', async (t) => {
  const GREEN = '\x1b[32m';
  const RESET = '\x1b[0m';
  let line = await textLine(t, { pty: true, env: { NO_COLOR: '', FORCE_COLOR: undefined } });
  assert.ok(line.startsWith(GREEN) && line.endsWith(RESET), `an exec line in green: ${JSON.stringify(line)}`);
  assert.match(line, /exec\s+\d+ root/);
  line = await textLine(t, { pty: true, env: { NO_COLOR: '1', FORCE_COLOR: undefined } });
  assert.doesNotMatch(line, /\x1b\[/, `NO_COLOR: ${JSON.stringify(line)}`);
  assert.match(line, /exec\s+\d+ root/);
  line = await textLine(t, { pty: true, env: { FORCE_COLOR: '0' } });
  assert.doesNotMatch(line, /\x1b\[/, `FORCE_COLOR=0: ${JSON.stringify(line)}`);
  line = await textLine(t, { pty: false, env: { FORCE_COLOR: undefined } });
  assert.doesNotMatch(line, /\x1b\[/, `on a pipe: ${JSON.stringify(line)}`);
  line = await textLine(t, { pty: false, env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
  assert.ok(line.startsWith(GREEN) && line.endsWith(RESET), `FORCE_COLOR=1 on a pipe: ${JSON.stringify(line)}`);
});

test('Unix socket mode (seed example 1): clients get the stream; SIGTERM with a stalled client exits 0 and removes the socket', async (t) => {
  const sockPath = '/tmp/procMonitor.sock';
  const cp = daemon(t, ['--clients', '20', '--socket', sockPath, '-e', 'exec,fork,exit']);
  await cp.ready;
  assert.equal(fs.statSync(sockPath).mode & 0o777, 0o666);
  const a = await connectTo(t, sockPath);
  const stalled = await connectTo(t, sockPath);
  stalled.pause();
  const ra = ndjsonReader(a);
  await new Promise((r) => setTimeout(r, 100));
  const { pid } = await run('/bin/sh', ['-c', 'exit 5']);
  await ra.until(sawExit(pid));
  const exit = ra.events.find((e) => e.event === 'exit' && e.pid === pid);
  assert.equal(exit.exit_code, 1280);
  assert.equal(exit.code, 5);
  // A storm while one client never reads.
  await run('/bin/sh', ['-c', 'for i in $(seq 300); do /bin/true; done']);
  const t0 = Date.now();
  const st = await cp.stop();
  assert.ok(Date.now() - t0 < 1000, `exited ${Date.now() - t0} ms after SIGTERM`);
  assert.equal(st.code, 0);
  assert.equal(fs.existsSync(sockPath), false);
  assert.match(cp.err, /SIGTERM/);
  // Log lines name a Unix client plainly.
  assert.match(cp.err, /^procMonitor: unix: client 1 connected \(1\/20\), uid 0, pid \d+$/m);
  assert.match(cp.err, /^procMonitor: unix: client 2 closed \(server-close; \d+ events sent, \d+ dropped\)$/m);
  a.destroy();
  stalled.destroy();
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`${sig} with stalled clients, a stalled syslog, metrics and NATS: exit 0 in under 1000 ms, socket gone`, async (t) => {
    const dir = tmpDir(t, 'pm-cli-');
    const sockPath = path.join(dir, 'pm.sock');
    // A syslog collector that takes the connection and never reads.
    const syslogConns = [];
    const syslog = net.createServer((s) => (s.pause(), syslogConns.push(s)));
    await new Promise((r) => syslog.listen(0, '127.0.0.1', r));
    t.after(() => (syslogConns.forEach((s) => s.destroy()), syslog.close()));
    // NATS (where nats-server is installed, as in CI): a real server, stopped with SIGSTOP
    // once the daemon publishes to it.
    const nats = NATS_SERVER ? await natsServer(t, await freePort()) : null;
    const args = [
      '--socket',
      sockPath,
      '-c',
      '20',
      '-e',
      'all',
      '--syslog',
      '--syslog-target',
      `tcp://127.0.0.1:${syslog.address().port}`,
      '--syslog-events',
      '--metrics',
      '127.0.0.1:0',
    ];
    if (nats) args.push('--nats', `nats://127.0.0.1:${nats.port}`);
    const cp = daemon(t, args);
    await cp.ready;
    if (nats) await until(() => /nats: connected/.test(cp.err), 15000, 'the daemon to connect to NATS');
    const r = await ndjsonClient(t, sockPath);
    const stalled = [];
    for (let i = 0; i < 3; i++) stalled.push(await connectTo(t, sockPath));
    for (const s of stalled) s.pause();
    // A metrics request that never finishes.
    const url = new URL(/metrics at (\S+)/.exec(cp.err)[1]);
    const http = net.connect(Number(url.port), url.hostname);
    t.after(() => http.destroy());
    await new Promise((res) => http.on('connect', res));
    http.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    if (nats) nats.kill('SIGSTOP');
    // A storm: more than the stalled clients' socket buffers hold.
    const { pid } = await run('/bin/sh', ['-c', 'for i in $(seq 1500); do /bin/true; done']);
    await r.until(sawExit(pid));
    const t0 = Date.now();
    cp.kill(sig);
    const st = await cp.exited;
    const ms = Date.now() - t0;
    assert.equal(st.code, 0, cp.err);
    assert.ok(ms < 1000, `exited ${ms} ms after ${sig}`);
    assert.equal(fs.existsSync(sockPath), false);
    assert.match(cp.err, new RegExp(`^procMonitor: ${sig}: stopping$`, 'm'));
    assert.doesNotMatch(cp.err, /\n\s+at /);
  });
}

test('--threads: a thread of a process shows (fork and exit with "thread": true) only with --threads', async (t) => {
  const script = 'import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()';
  for (const threads of [false, true]) {
    const cp = daemon(t, ['--direct', '-e', 'fork,exec,exit', ...(threads ? ['--threads'] : [])]);
    await cp.ready;
    assert.equal(/watching fork,exec,exit \(with threads\)/.test(cp.err), threads, cp.err);
    const { pid } = await run('python3', ['-c', script]);
    // (Whole lines only: the last may still be on its way.)
    const events = () =>
      cp.out
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l));
    await until(() => events().some((e) => e.event === 'exit' && e.pid === pid && !e.thread), 15000, `the exit of ${pid}`);
    assert.equal((await cp.stop()).code, 0);
    const mine = events().filter((e) => e.pid === pid || e.tgid === pid || e.child_tgid === pid || e.child_pid === pid);
    const ofThread = mine.filter((e) => e.thread);
    if (!threads) {
      assert.deepEqual(ofThread, [], 'no thread events without --threads');
    } else {
      const fork = ofThread.find((e) => e.event === 'fork' && e.child_tgid === pid);
      assert.ok(fork, `the thread's fork: ${JSON.stringify(mine)}`);
      assert.notEqual(fork.child_pid, pid);
      assert.ok(
        ofThread.some((e) => e.event === 'exit' && e.pid === fork.child_pid && e.tgid === pid),
        `the thread's exit: ${JSON.stringify(mine)}`,
      );
    }
    assert.equal(mine.filter((e) => e.event === 'exit' && !e.thread).length, 1, 'the process exits once either way');
  }
});

test('--slow-client disconnect: a stalled client is disconnected in a storm, a reading one keeps a complete stream', async (t) => {
  const sockPath = path.join(tmpDir(t, 'pm-cli-'), 'pm.sock');
  const cp = daemon(t, ['--socket', sockPath, '--slow-client', 'disconnect', '-e', 'all']);
  await cp.ready;
  const r = await ndjsonClient(t, sockPath);
  const stalled = await connectTo(t, sockPath);
  stalled.pause();
  let stalledClosed = false;
  stalled.on('close', () => (stalledClosed = true));
  await until(() => (cp.err.match(/: client \d+ connected/g) || []).length === 2, 15000, 'both clients');
  // A storm until the stalled client's buffer (4 MiB past its socket's) overflows.
  const gen = spawn('/bin/sh', ['-c', 'for i in $(seq 200000); do /bin/true; done'], { stdio: 'ignore' });
  t.after(() => gen.kill('SIGKILL'));
  await until(() => /^procMonitor: unix: client 2 too slow \(\d+ bytes buffered\), disconnecting$/m.test(cp.err), 60000, 'the stalled client to be disconnected');
  gen.kill('SIGKILL');
  // The stalled client reads what was left in its socket, then the end.
  stalled.resume();
  await until(() => stalledClosed, 15000, 'the stalled client to see its connection end');
  await until(() => /^procMonitor: unix: client 2 closed \(slow; \d+ events sent, 0 dropped\)$/m.test(cp.err), 15000, 'the close to be logged');
  // The reading client is still served, and missed nothing: no "lost" line, seq without a gap.
  const { pid } = await run('/bin/sh', ['-c', 'exit 4']);
  await r.until(sawExit(pid));
  assert.doesNotMatch(cp.err, /client 1 (too slow|closed)/);
  const seqs = r.events.map((e) => e.seq);
  assert.ok(seqs.length > 5000, `a storm was streamed (${seqs.length} events)`);
  assert.deepEqual(
    r.events.filter((e) => e.event === 'lost'),
    [],
  );
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `seq ${seqs[i - 1]} then ${seqs[i]}`);
  assert.equal((await cp.stop()).code, 0);
});

test('socket mode and group; SIGHUP is not fatal', async (t) => {
  const sockPath = path.join(tmpDir(t, 'pm-cli-'), 'pm.sock');
  const cp = daemon(t, ['--socket', sockPath, '--socket-mode', '0660', '--socket-group', 'nogroup']);
  await cp.ready;
  const st = fs.statSync(sockPath);
  assert.equal(st.mode & 0o777, 0o660);
  assert.equal(st.gid, 65534);
  cp.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(cp.exitCode, null, 'still running after SIGHUP');
  const r = await ndjsonClient(t, sockPath);
  await cp.saw(/unix: client \d+ connected/); // taken on: what comes next is its
  const { pid } = await run('/bin/true', []);
  await r.until(sawExit(pid));
  r.sock.destroy();
  assert.equal((await cp.stop('SIGINT')).code, 0);
  assert.equal(fs.existsSync(sockPath), false);
});

function tcpClient(port, password) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.setEncoding('utf8');
    const onData = (d) => {
      got += d;
      if (got === 'Password: ') s.write(password + '\n');
      if (got.startsWith('Password: Authentication successful.\n')) {
        s.off('data', onData);
        resolve(s);
      } else if (got.includes('failed')) {
        s.off('data', onData);
        resolve(null);
      }
    };
    s.on('data', onData);
    s.on('error', reject);
  });
}

test('TCP mode (seed example 2) with password from --auth, --auth-file and PROCMONITOR_AUTH; Unix and TCP together', async (t) => {
  const dir = tmpDir(t, 'pm-cli-');
  const pwFile = path.join(dir, 'pw');
  fs.writeFileSync(pwFile, 'filesecret\n', { mode: 0o600 });
  const sockPath = path.join(dir, 'both.sock');
  const variants = [
    { args: ['--tcp', '8080', '--auth', 'mysecretpassword', '--clients', '50', '-e', 'exec,fork,exit'], pw: 'mysecretpassword', port: 8080 },
    { args: ['--tcp', '0', '--auth-file', pwFile, '--bind', '127.0.0.1', '--socket', sockPath], pw: 'filesecret' },
    { args: ['--tcp', '0', '--bind', '127.0.0.1'], pw: 'envsecret', env: { PROCMONITOR_AUTH: 'envsecret' } },
  ];
  for (const v of variants) {
    const port0 = v.args[1] === '0';
    if (port0) {
      // ask the kernel for a free port first
      v.port = await freePort();
      v.args[1] = String(v.port);
    }
    const cp = daemon(t, v.args, { env: v.env });
    await cp.ready;
    assert.equal(await tcpClient(v.port, 'wrong'), null);
    const s = await tcpClient(v.port, v.pw);
    assert.ok(s, 'authenticated');
    const r = ndjsonReader(s);
    let u = null;
    if (v.args.includes('--socket')) u = await ndjsonClient(t, sockPath);
    await new Promise((res) => setTimeout(res, 100));
    const { pid } = await run('/bin/true', []);
    await r.until(sawExit(pid));
    if (u) await u.until(sawExit(pid));
    s.destroy();
    assert.equal((await cp.stop()).code, 0);
    assert.doesNotMatch(cp.err, /mysecretpassword|filesecret|envsecret/, 'passwords are not logged');
    assert.match(cp.err, /^procMonitor: tcp 127\.0\.0\.1:\d+: client \d+ connected \(1\/\d+\)$/m);
  }
});

test('an unexpected failure inside main(): one line "NAME: message", status 1, no stack trace', (t) => {
  const dir = tmpDir(t, 'pm-cli-');
  // A preload that breaks stdout: printing the help then throws inside main().
  const preload = path.join(dir, 'break-stdout.js');
  fs.writeFileSync(preload, "process.stdout.write = () => { throw new Error('stdout is broken\\nsecond line'); };\n");
  for (const [bin, name] of [
    [BIN, 'procMonitor'],
    [path.join(__dirname, '..', 'bin', 'procMonitor-client'), 'procMonitor-client'],
  ]) {
    const r = spawnSync(process.execPath, ['-r', preload, bin, '--help'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 1, `${name}: ${r.stderr}`);
    assert.equal(r.stderr, `${name}: stdout is broken\n`);
  }
});

test('--stall-timeout: seconds, 0 turns it off, 60 by default', () => {
  const { parseArgs } = require('../dist/cli/daemon');
  assert.equal(parseArgs([]).stallTimeout, 60);
  assert.equal(parseArgs(['--stall-timeout', '5']).stallTimeout, 5);
  assert.equal(parseArgs(['--stall-timeout', '0']).stallTimeout, 0);
});

const UNIT_CONFIG = path.join(__dirname, '..', 'contrib', 'procmonitor.yaml');

test('the systemd unit: its command line is valid and systemd accepts the unit', (t) => {
  const unit = fs.readFileSync(path.join(__dirname, '..', 'contrib', 'procmonitor.service'), 'utf8');
  const exec = /^ExecStart=\/usr\/bin\/env procMonitor (.*)$/m.exec(unit);
  assert.ok(exec, 'ExecStart runs procMonitor');
  // (Its config file, /etc/procmonitor/procmonitor.yaml, is contrib/procmonitor.yaml.)
  const unitArgs = (line) => line.replace('/etc/procmonitor/procmonitor.yaml', UNIT_CONFIG).split(/\s+/);
  const { parseArgs } = require('../dist/cli/daemon');
  const opts = parseArgs(unitArgs(exec[1]), {});
  assert.equal(opts.socket, '/run/procmonitor/procMonitor.sock');
  assert.equal(opts.socketMode, 0o660);
  assert.equal(opts.socketGroup, 'procmonitor');
  assert.equal(opts.clients, 10);
  assert.deepEqual(opts.events, ['exec', 'fork', 'exit']);
  assert.match(unit, /^AmbientCapabilities=CAP_NET_ADMIN CAP_SYS_PTRACE$/m);
  assert.match(unit, /^DynamicUser=yes$/m);
  // Its TCP variant: the password from systemd's credential copy (%d), owned by the service's
  // user and readable by it alone: taken without a warning, on loopback.
  const tcpLine = /^#\s+ExecStart=\/usr\/bin\/env procMonitor (.*--auth-file %d\/password.*)$/m.exec(unit);
  assert.ok(tcpLine, 'the unit shows the TCP variant with LoadCredential=');
  assert.match(unit, /^#\s+LoadCredential=password:\/etc\/procmonitor\/password$/m);
  const creds = tmpDir(t, 'pm-creds-');
  fs.writeFileSync(path.join(creds, 'password'), 'a password of twenty-four\n', { mode: 0o400 });
  const tcpOpts = parseArgs(unitArgs(tcpLine[1].replaceAll('%d', creds)), {});
  assert.equal(tcpOpts.tcp.host, '127.0.0.1');
  assert.equal(tcpOpts.tcp.password, 'a password of twenty-four');
  assert.deepEqual(tcpOpts.warnings, []);
  const v = spawnSync('systemd-analyze', ['verify', path.join(__dirname, '..', 'contrib', 'procmonitor.service')], { encoding: 'utf8' });
  if (v.error) return t.skip(`systemd-analyze cannot run (${v.error.code}): the unit was not verified by systemd`);
  assert.equal(v.status, 0, v.stderr);
});

test("the systemd unit's privileges are enough: its command line as nobody with only its ambient capabilities serves every user's events with exe", async (t) => {
  const unit = fs.readFileSync(path.join(__dirname, '..', 'contrib', 'procmonitor.service'), 'utf8');
  const caps = /^AmbientCapabilities=(.*)$/m
    .exec(unit)[1]
    .trim()
    .split(/\s+/)
    .map((c) => c.replace(/^CAP_/, '').toLowerCase());
  const args = /^ExecStart=\/usr\/bin\/env procMonitor (.*)$/m.exec(unit)[1].replace('/etc/procmonitor/procmonitor.yaml', UNIT_CONFIG).split(/\s+/);
  // Its own socket path, and a group that exists here, in place of its config file's (the command line decides).
  const sockPath = path.join(tmpDir(t, 'pm-unit-'), 'pm.sock');
  fs.chmodSync(path.dirname(sockPath), 0o777);
  args.push('--socket', sockPath, '--socket-group', 'nogroup');
  const cp = daemon(t, args, { wrap: nobodyWith(...caps) });
  await cp.ready;
  const r = await ndjsonClient(t, sockPath);
  await cp.saw(/unix: client \d+ connected/);
  // (It lives a moment, so that its exe is there to read when the exec is.)
  const { pid } = await run('/bin/sh', ['-c', 'sleep 0.2; exit 5']);
  await r.until(sawExit(pid));
  const ex = r.events.find((e) => e.event === 'exec' && e.pid === pid);
  assert.equal(ex.user, 'root');
  assert.equal(ex.exe, fs.realpathSync('/bin/sh'), "CAP_SYS_PTRACE reads root's exe");
  assert.equal(r.events.find((e) => e.event === 'exit' && e.pid === pid).code, 5);
  r.sock.destroy();
  assert.equal((await cp.stop('SIGTERM', 5000)).code, 0);
});
