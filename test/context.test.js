'use strict';
// Who, where and from which login: the context fields (options login, tty, namespaces, env)
// against real processes: a login uid set in a child, a process on a pty, one in new pid and
// mount namespaces, an environment. The hazards: a field showing the reader's own context or
// a parent's stale one, a daemon's unset login uid shown as 4294967295, a container's pid
// taken for the host's, an environment variable not asked for leaking out.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const { ProcConnector } = require('..');
const { record, exited } = require('./helpers');
const { runNativeUnit, TABLE_SOURCES } = require('./native-unit');
const { daemon, refusedUsage } = require('./daemon');
const { until } = require('./server-helpers');

test('context parsers and the table (test/native/context_test.cc)', (t) => runNativeUnit(t, 'context_test', ['test/native/context_test.cc', ...TABLE_SOURCES]));

const nsInode = (pid, ns) => Number(/\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/${ns}`))[1]);

/** Runs cmd, args with a connector of `options` recording; resolves with the events and the child's status. */
async function traced(options, cmd, args, spawnOpts = {}) {
  const c = new ProcConnector({ events: 'fork,exec,exit', ...options }).start();
  try {
    const rec = record(c);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise((r) => child.on('close', r));
    await rec.until(exited(child.pid));
    return { events: rec.events, code, out, pid: child.pid };
  } finally {
    c.stop();
  }
}

/** The exec of `sh -c ': MARKER; ...'`, and the exit of its process. */
function byMarker(events, marker) {
  const exec = events.find((e) => e.event === 'exec' && e.argv[0] === 'sh' && e.argv[2]?.startsWith(`: ${marker};`));
  assert.ok(exec, `the exec of ${marker}`);
  return { exec, exit: events.find((e) => e.event === 'exit' && e.pid === exec.pid && !e.thread) };
}

test('login identity (root): a login uid set in a child is the auid and login_user of it and all it starts, with a session of its own, across a change of uid', async (t) => {
  if (process.getuid() !== 0) return t.skip('needs root: setting a login uid once set needs CAP_AUDIT_CONTROL');
  const probe = spawnSync('sh', ['-c', 'echo 1000 > /proc/self/loginuid'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip(`this kernel refuses to set a login uid: ${probe.stderr.trim()}`);
  const name = spawnSync('getent', ['passwd', '1000'], { encoding: 'utf8' }).stdout.split(':')[0] || 'unknown';
  const ownSession = fs.readFileSync('/proc/self/sessionid', 'utf8').trim();
  // The child logs in as 1000 (as login and sshd do), then runs a program as root and one as nobody.
  const script =
    'echo 1000 > /proc/self/loginuid && exec sh -c ": pm-ctx-login; /bin/true; setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \\": pm-ctx-su; sleep 0.05\\"; exit 0"';
  const { events, code, pid } = await traced({}, 'sh', ['-c', script]);
  assert.equal(code, 0);
  const { exec, exit } = byMarker(events, 'pm-ctx-login');
  assert.equal(exec.auid, 1000);
  assert.equal(exec.login_user, name);
  assert.equal(typeof exec.sessionid, 'number');
  assert.notEqual(String(exec.sessionid), ownSession, 'a new session: set with the login uid');
  assert.equal(exit.auid, 1000);
  const kids = events.filter((e) => e.event === 'fork' && e.parent_pid === exec.pid);
  assert.ok(kids.length >= 2, JSON.stringify(kids));
  for (const f of kids) assert.equal(f.auid, 1000, 'inherited at fork');
  const su = byMarker(events, 'pm-ctx-su');
  assert.equal(su.exec.uid, 65534);
  assert.equal(su.exec.auid, 1000, 'the login uid stays across a change of uid');
  assert.equal(su.exec.sessionid, exec.sessionid);
  // Before its login (its fork from this process): no login uid (unset here), nothing missing.
  const parent = events.find((e) => e.event === 'fork' && e.child_pid === pid);
  if (fs.readFileSync('/proc/self/loginuid', 'utf8').trim() === '4294967295') {
    assert.equal(parent.auid, undefined);
    assert.equal(parent.login_user, undefined);
  }
  assert.ok(!(parent.missing ?? []).includes('auid'));
});

test('tty: a process on a pseudo-terminal (script) has it, as `tty` prints it; one in a new session without one has null', async (t) => {
  const hasScript = spawnSync('script', ['--version']).status === 0;
  if (!hasScript) return t.skip('no script(1) here (util-linux/bsdutils)');
  const { events, out } = await traced({}, 'script', ['-qec', 'sh -c "tty; exec sh -c \\": pm-ctx-tty; sleep 0.05; exit 0\\""', '/dev/null']);
  const m = /\/dev\/(pts\/\d+)/.exec(out);
  assert.ok(m, `tty printed: ${JSON.stringify(out)}`);
  const { exec, exit } = byMarker(events, 'pm-ctx-tty');
  assert.equal(exec.tty, m[1]);
  assert.equal(exit.tty, m[1]);
  const none = await traced({}, 'setsid', ['sh', '-c', ': pm-ctx-notty; sleep 0.05; exit 0']);
  const n = byMarker(none.events, 'pm-ctx-notty');
  assert.equal(n.exec.tty, null);
  assert.ok(!(n.exec.missing ?? []).includes('tty'));
});

test('namespaces: a process in new pid and mount namespaces (unshare -pfm --mount-proc) has its own pidns and mntns, nspid 1, the host netns; its child nspid 2', async (t) => {
  const probe = spawnSync('unshare', ['-pfm', '--mount-proc', 'true']);
  if (probe.status !== 0) return t.skip(`unshare -pfm is refused here: ${String(probe.stderr).trim()}`);
  const { events, code } = await traced({ namespaces: true }, 'unshare', ['-pfm', '--mount-proc', 'sh', '-c', ': pm-ctx-ns; sleep 0.05; exit 0']);
  assert.equal(code, 0);
  const { exec, exit } = byMarker(events, 'pm-ctx-ns');
  assert.equal(exec.nspid, 1);
  assert.notEqual(exec.pidns, nsInode('self', 'pid'));
  assert.notEqual(exec.mntns, nsInode('self', 'mnt'));
  assert.equal(exec.netns, nsInode('self', 'net'));
  assert.equal(exit.pidns, exec.pidns);
  const child = events.find((e) => e.event === 'fork' && e.parent_pid === exec.pid);
  assert.equal(child.nspid, 2, JSON.stringify(child));
  assert.equal(child.pidns, exec.pidns);
  // A host process: the host's namespaces, its nspid its pid.
  const host = events.find((e) => e.event === 'exec' && e.argv[0] === 'unshare');
  assert.equal(host.pidns, nsInode('self', 'pid'));
  assert.equal(host.nspid, host.pid);
  assert.deepEqual(exec.missing ?? [], []);
});

test('env: the variables asked for, as the program was started with them; nothing else of its environment', async () => {
  const env = { PATH: process.env.PATH, PM_CTX_A: 'a value with = and spaces', PM_CTX_SECRET: 'hunter2' };
  const { events } = await traced({ env: ['PM_CTX_A', 'PM_CTX_ABSENT'] }, 'sh', ['-c', ': pm-ctx-env; sleep 0.05; exit 0'], { env });
  const { exec, exit } = byMarker(events, 'pm-ctx-env');
  assert.deepEqual(exec.env, { PM_CTX_A: 'a value with = and spaces' });
  assert.deepEqual(exit.env, exec.env);
  assert.ok(!JSON.stringify(events).includes('hunter2'));
});

test('defaults: login identity and tty on, namespaces and env off; each turned off says nothing; bad options refused', async () => {
  const on = await traced({}, 'sh', ['-c', ': pm-ctx-default; sleep 0.05; exit 0']);
  const d = byMarker(on.events, 'pm-ctx-default').exec;
  assert.ok('tty' in d, JSON.stringify(d));
  for (const k of ['pidns', 'mntns', 'netns', 'nspid', 'env']) assert.ok(!(k in d), k);
  const off = await traced({ login: false, tty: false }, 'sh', ['-c', ': pm-ctx-off; sleep 0.05; exit 0']);
  const o = byMarker(off.events, 'pm-ctx-off').exec;
  for (const k of ['auid', 'login_user', 'sessionid', 'tty']) assert.ok(!(k in o), k);
  assert.throws(() => new ProcConnector({ env: ['A=B'] }), /^TypeError: env: each name must be 1 to 256 characters without "="/);
  assert.throws(() => new ProcConnector({ env: 'PATH' }), /^TypeError: env must be an array/);
  assert.throws(() => new ProcConnector({ namespaces: 'yes' }), TypeError);
});

test('snapshot() and ancestry(): the table holds the context read', async () => {
  const c = new ProcConnector({ namespaces: true, env: ['PM_CTX_SNAP'] }).start();
  try {
    const rec0 = record(c);
    const child = spawn('sleep', ['5'], { env: { ...process.env, PM_CTX_SNAP: 'yes' } });
    await rec0.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === child.pid));
    const [rec] = c.ancestry(child.pid);
    child.kill();
    assert.equal(rec.pid, child.pid);
    assert.equal(rec.pidns, nsInode('self', 'pid'));
    assert.equal(rec.nspid, child.pid);
    assert.deepEqual(rec.env, { PM_CTX_SNAP: 'yes' });
    assert.ok('tty' in rec);
    const self = c.snapshot().find((r) => r.pid === process.pid);
    assert.equal(self.pidns, nsInode('self', 'pid'));
  } finally {
    c.stop();
  }
});

test('procMonitor --direct --namespaces yes --env LIST: the fields on the wire; bad values exit 2', async (t) => {
  const cp = daemon(t, ['--direct', '-e', 'exec', '--namespaces', 'yes', '--env', 'PM_CTX_CLI', '--tty', 'no']);
  await cp.ready;
  const child = spawn('sh', ['-c', ': pm-ctx-cli; sleep 0.05; exit 0'], { env: { ...process.env, PM_CTX_CLI: '1' } });
  await new Promise((r) => child.on('exit', r));
  await until(() => cp.out.includes('pm-ctx-cli'), 10000, 'the exec on stdout');
  assert.equal((await cp.stop('SIGINT')).code, 0);
  const line = cp.out.split('\n').find((l) => l.includes('pm-ctx-cli'));
  assert.ok(line, cp.out);
  const ev = JSON.parse(line);
  assert.equal(ev.nspid, ev.pid);
  assert.deepEqual(ev.env, { PM_CTX_CLI: '1' });
  assert.ok(!('tty' in ev));
  for (const [args, re] of [
    [['--env', 'A=B'], /^procMonitor: --env must be a comma list of at most 64 variable names/],
    [['--login', 'maybe'], /^procMonitor: --login must be yes or no, got "maybe"$/],
    [['--namespaces', '1'], /^procMonitor: --namespaces must be yes or no/],
  ])
    refusedUsage(args, re);
});
