'use strict';
// ProcConnector against the real kernel: real processes, their real events, field by field.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ProcConnector, ProcConnectorError, toLine } = require('..');
const { record, run, about, exited, SELF_COMM } = require('./helpers');

const ROOT = path.join(__dirname, '..');

function started(opts) {
  const c = new ProcConnector(opts);
  c.start();
  return c;
}

test('fork, exec and exit of a short-lived process, field by field', async (t) => {
  const c = started({ events: 'fork,exec,exit' });
  t.after(() => c.stop());
  const arg = 'two words é ☃';
  const rec = record(c);
  // The shell waits for its stdin to close, so /proc still has it when the exec is read. It
  // runs in a directory of its own, named with a space and non-ASCII.
  const { spawn } = require('node:child_process');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm cwd é-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cp = spawn('/bin/sh', ['-c', 'read x; exit 3', 'sh-name', arg], { stdio: ['pipe', 'ignore', 'ignore'], cwd: dir });
  const pid = cp.pid;
  const code = await new Promise((resolve) => {
    cp.on('exit', resolve);
    rec.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === pid)).then(() => cp.stdin.end());
  });
  assert.equal(code, 3);
  await rec.until(exited(pid));
  const mine = rec.of(pid);
  assert.deepEqual(
    mine.map((e) => e.event),
    ['fork', 'exec', 'exit'],
    JSON.stringify(mine),
  );
  const [fork, exec, exit] = mine;
  assert.equal(fork.child_pid, pid);
  assert.equal(fork.parent_pid, process.pid);
  assert.equal(fork.user, 'root');
  assert.equal(fork.uid, 0);
  assert.equal(fork.comm, SELF_COMM); // the parent's program, as forked
  assert.ok(fork.cmdline.length > 0);
  assert.equal(fork.thread, undefined);
  assert.match(fork.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  assert.equal(exec.pid, pid);
  assert.deepEqual(exec.argv, ['/bin/sh', '-c', 'read x; exit 3', 'sh-name', arg]);
  assert.equal(exec.cmdline, `/bin/sh -c read x; exit 3 sh-name ${arg}`);
  assert.equal(exec.ppid, process.pid);
  assert.equal(exec.user, 'root');
  assert.equal(exec.comm, 'sh');
  assert.equal(exec.exe, fs.realpathSync('/bin/sh'));
  assert.equal(exec.cwd, dir);
  assert.equal(exec.missing, undefined);
  // The fork says what the child runs until it execs: its parent's program, where it ran it.
  assert.equal(fork.cwd, process.cwd(), "the fork: its parent's (this process's, learned from /proc)");
  assert.equal(fork.exe, process.execPath);

  assert.equal(exit.pid, pid);
  assert.equal(exit.exit_code, 768);
  assert.equal(exit.code, 3);
  assert.equal(exit.signal, null);
  assert.equal(exit.core, false);
  assert.equal(exit.comm, 'sh');
  assert.equal(exit.cmdline, exec.cmdline);
  assert.equal(exit.user, 'root');
  assert.equal(exit.ppid, process.pid);
  assert.equal(exit.cwd, dir, 'carried to the exit');
  assert.equal(exit.exe, exec.exe);
  assert.ok(exit.duration_ms > 0 && exit.duration_ms < 60000, String(exit.duration_ms));
  const lag = Date.now() - Date.parse(exit.time);
  assert.ok(lag >= -1000 && lag < 60000, `event time ${exit.time} is close to now`);

  // The wire form: "event" first, the seed's fields keep their names.
  const line = toLine(exit);
  assert.ok(line.startsWith('{"event":"exit","pid":'));
  assert.ok(line.endsWith('}\n'));
  assert.deepEqual(JSON.parse(line), exit);
});

test('exit by signal: code null, signal name, raw status kept', async (t) => {
  const c = started({ events: 'exit' });
  t.after(() => c.stop());
  const rec = record(c);
  const { pid, signal } = await run('/bin/sh', ['-c', 'kill -KILL $$']);
  assert.equal(signal, 'SIGKILL');
  await rec.until(exited(pid));
  const [exit] = rec.of(pid);
  assert.equal(exit.exit_code, 9);
  assert.equal(exit.code, null);
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.core, false);
});

test('user names: a process run as nobody', async (t) => {
  const c = started({ events: 'exec,exit' });
  t.after(() => c.stop());
  const rec = record(c);
  // Lives 100 ms, so /proc still has it when the exec is read.
  const { pid } = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/sleep', '0.1']);
  await rec.until(exited(pid));
  const mine = rec.of(pid);
  const exec = mine.filter((e) => e.event === 'exec').at(-1);
  assert.deepEqual(exec.argv, ['/bin/sleep', '0.1']);
  assert.equal(exec.user, 'nobody');
  assert.equal(exec.uid, 65534);
  const exit = mine.find((e) => e.event === 'exit');
  assert.equal(exit.user, 'nobody');
});

test('threads are reported only when asked for', async () => {
  const script = 'import threading; t=threading.Thread(target=lambda: None); t.start(); t.join()';
  for (const threads of [false, true]) {
    const c = started({ events: 'fork,exec,exit', threads });
    const rec = record(c);
    const { pid } = await run('python3', ['-c', script]);
    await rec.until(exited(pid));
    c.stop();
    const mine = rec.of(pid);
    const threadEvents = mine.filter((e) => e.thread);
    if (!threads) {
      assert.equal(threadEvents.length, 0, JSON.stringify(threadEvents));
    } else {
      const tf = threadEvents.find((e) => e.event === 'fork');
      assert.ok(tf, 'thread fork seen: ' + JSON.stringify(mine));
      assert.equal(tf.child_tgid, pid);
      assert.notEqual(tf.child_pid, pid);
      const te = threadEvents.find((e) => e.event === 'exit');
      assert.ok(te, 'thread exit seen');
      assert.equal(te.tgid, pid);
    }
    // The process exit is reported once either way.
    assert.equal(mine.filter((e) => e.event === 'exit' && !e.thread).length, 1);
  }
});

test('kernel filter on and off: the same events, filtering in the kernel or here', async () => {
  for (const kernelFilter of [true, false]) {
    const c = started({ events: 'exec', kernelFilter });
    assert.equal(c.stats().kernelFilter, kernelFilter);
    const rec = record(c);
    const { pid } = await run('/bin/true', ['x']);
    await rec.until((evs) => evs.some(about(pid)));
    c.stop();
    const all = rec.events;
    const mine = rec.of(pid);
    assert.deepEqual(
      mine.map((e) => e.event),
      ['exec'],
    );
    assert.ok(
      all.every((e) => e.event === 'exec' || e.event === 'lost'),
      'only exec events',
    );
  }
});

test('all event kinds: comm and uid events', async (t) => {
  const c = started({ events: 'all' });
  t.after(() => c.stop());
  const rec = record(c);
  const { pid } = await run('python3', ['-c', 'import os; open("/proc/self/comm","w").write("renamed"); os.setuid(65534)']);
  await rec.until(exited(pid));
  const mine = rec.of(pid);
  const comm = mine.find((e) => e.event === 'comm');
  assert.equal(comm?.comm, 'renamed');
  const uid = mine.find((e) => e.event === 'uid');
  assert.deepEqual([uid?.ruid, uid?.euid], [65534, 65534]);
  const exit = mine.find((e) => e.event === 'exit');
  assert.equal(exit.comm, 'renamed');
  assert.equal(exit.user, 'nobody');
});

test('stop() is idempotent and emits close; async iteration ends with an AbortSignal', async () => {
  const c = started({ events: 'exec' });
  const ac = new AbortController();
  const seen = [];
  let marker = -1;
  const loop = (async () => {
    for await (const ev of c.events({ signal: ac.signal })) {
      seen.push(ev);
      if (seen.some((e) => e.event === 'exec' && e.pid === marker)) ac.abort();
    }
  })();
  const { spawn } = require('node:child_process');
  marker = spawn('/bin/true', [], { stdio: 'ignore' }).pid;
  await loop;
  assert.ok(seen.some((e) => e.pid === marker));
  let closes = 0;
  c.on('close', () => closes++);
  c.stop();
  c.stop();
  assert.equal(closes, 1);
  assert.equal(c.running, false);
  // for await over the connector itself ends when it stops
  const c2 = started({ events: 'exec' });
  const it = (async () => {
    for await (const ev of c2) if (ev.event === 'exec' && ev.pid === marker2) c2.stop();
  })();
  const marker2 = require('node:child_process').spawn('/bin/true', [], { stdio: 'ignore' }).pid;
  await it;
});

test('bad options are refused with clear errors', () => {
  assert.throws(() => new ProcConnector({ events: 'exec,bogus' }), /unknown event "bogus"/);
  assert.throws(() => new ProcConnector({ events: '' }), /empty event list/);
  assert.throws(() => new ProcConnector({ rcvbuf: -1 }), /rcvbuf must be an integer/);
  assert.throws(() => new ProcConnector({ queueMax: 0 }), /queueMax/);
});

test('the kernel drops events when the receive buffer is tiny: a lost event says how many', async (t) => {
  // Kernel filter off so sequence gaps are exact.
  const c = started({ events: 'all', rcvbuf: 1, kernelFilter: false });
  t.after(() => c.stop());
  const lost = [];
  c.on('lost', (e) => lost.push(e));
  for (let i = 0; i < 5 && lost.length === 0; i++) {
    await run('/bin/sh', ['-c', 'for i in $(seq 300); do /bin/true; done']);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(lost.length > 0, 'a lost event was emitted');
  assert.equal(lost[0].source, 'kernel');
  assert.ok(lost[0].count > 0);
  assert.ok(c.stats().lostKernel >= lost[0].count);
});

test('a blocked JS thread overflows the bounded queue: lost events with source "queue"', async (t) => {
  const c = started({ events: 'fork,exec,exit', queueMax: 20 });
  t.after(() => c.stop());
  const lost = [];
  c.on('lost', (e) => lost.push(e));
  // execFileSync blocks this thread while the reader thread keeps reading.
  execFileSync('/bin/sh', ['-c', 'for i in $(seq 100); do /bin/true; done']);
  await new Promise((r) => setTimeout(r, 200));
  const q = lost.filter((e) => e.source === 'queue');
  assert.ok(q.length > 0, JSON.stringify(lost));
  assert.ok(q[0].count > 0);
  assert.equal(
    c.stats().lostQueue,
    q.reduce((a, e) => a + e.count, 0),
  );
});

// ------------------------------------------------------------------ privilege, as probed
// Whether a process without privileges may subscribe depends on the kernel's build: the
// probe (test/kernel.js) tries it, and each test asserts what this kernel does.
const kernel = require('./kernel');
const UNPRIVILEGED = kernel.unprivileged();

/** Runs `script` (JS, with ROOT's exports as `pm`) under `wrap`; resolves with the child once it printed "ready". */
function under(wrap, script) {
  const { spawn } = require('node:child_process');
  const src = `const pm = require(${JSON.stringify(ROOT)});\n${script}`;
  const cp = spawn(wrap[0], [...wrap.slice(1), process.execPath, '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
  cp.out = '';
  cp.err = '';
  cp.stderr.on('data', (d) => (cp.err += d));
  cp.done = new Promise((resolve) => cp.on('exit', (code) => resolve(code)));
  cp.ready = new Promise((resolve, reject) => {
    cp.stdout.on('data', (d) => {
      cp.out += d;
      if (cp.out.startsWith('ready\n')) resolve(cp);
    });
    cp.done.then((code) => reject(new Error(`exited ${code} before it was ready: ${cp.err}${cp.out}`)));
  });
  return cp;
}

// Reports the exec of the command whose argv ends with `marker`, with the connector's stats.
const EXEC_OF_MARKER = `
  const c = new pm.ProcConnector({ events: 'exec' }).start();
  c.on('exec', (e) => { if (e.argv[e.argv.length - 1] === process.argv[1]) { console.log(JSON.stringify({ e, s: c.stats() })); c.stop(); } });
  process.stdout.write('ready\\n');
  setTimeout(() => { console.log('timeout'); process.exit(1); }, 10000).unref();
`;

/** Starts `script` under wrap, then runs a root-owned process marked with a unique last argument; resolves with what the child printed. */
async function seeRootExec(wrap) {
  const marker = `marker-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const cp = under(wrap, EXEC_OF_MARKER.replace('process.argv[1]', JSON.stringify(marker)));
  await cp.ready;
  await run('/bin/sh', ['-c', 'sleep 0.1', 'sh', marker]);
  const code = await cp.done;
  assert.equal(code, 0, cp.err + cp.out);
  return { ...JSON.parse(cp.out.split('\n')[1]), marker };
}

test(
  'unprivileged (nobody, no capabilities): subscribes and receives events where the kernel admits it',
  { skip: UNPRIVILEGED.ok ? false : kernel.REFUSES_UNPRIVILEGED },
  async () => {
    const { e, s, marker } = await seeRootExec(kernel.NOBODY);
    assert.deepEqual(e.argv, ['/bin/sh', '-c', 'sleep 0.1', 'sh', marker]);
    assert.equal(e.user, 'root');
    assert.equal(s.rcvbufForced, false, 'SO_RCVBUFFORCE needs privilege: plain SO_RCVBUF used');
    // Other users' exe cannot be read without CAP_SYS_PTRACE: marked missing, not guessed.
    assert.equal(e.exe, '');
    assert.ok(e.missing.includes('exe'));
  },
);

test(
  'unprivileged (nobody, no capabilities) where the kernel refuses: EPERM naming root, CAP_NET_ADMIN and such kernels, no version claimed',
  { skip: UNPRIVILEGED.ok ? 'kernel admits unprivileged proc connector subscribers: nothing is refused' : false },
  (t) => {
    t.diagnostic(`this kernel refuses unprivileged proc connector subscribers (${UNPRIVILEGED.code})`);
    const r = kernel.tryStart(kernel.NOBODY);
    assert.equal(r.ok, false);
    assert.equal(r.code, 'EPERM');
    assert.match(r.message, /\(EPERM\)/);
    assert.match(r.message, /run as root or with CAP_NET_ADMIN/);
    assert.match(r.message, /a kernel that lets unprivileged processes subscribe/);
    assert.doesNotMatch(r.message, /Linux \d|6\.6/, 'no version threshold: the kernel build decides');
    assert.equal(r.name, 'ProcConnectorError');
    assert.equal(r.coded, true, 'an instance of ProcConnectorError');
  },
);

test("least privilege (nobody with CAP_NET_ADMIN alone, as the systemd unit grants): subscribes, receives events, forces its buffer; other users' exe marked missing", async () => {
  const { e, s, marker } = await seeRootExec(kernel.NET_ADMIN_ONLY);
  assert.deepEqual(e.argv, ['/bin/sh', '-c', 'sleep 0.1', 'sh', marker]);
  assert.equal(e.user, 'root');
  assert.equal(e.uid, 0);
  assert.equal(s.rcvbufForced, true, 'CAP_NET_ADMIN grants SO_RCVBUFFORCE');
  assert.equal(e.exe, '', "reading root's /proc/PID/exe needs CAP_SYS_PTRACE");
  assert.ok(e.missing.includes('exe'));
  assert.equal(e.cwd, undefined, 'nor its /proc/PID/cwd');
  assert.ok(e.missing.includes('cwd'));
});

test("with CAP_NET_ADMIN and CAP_SYS_PTRACE (the systemd unit's pair): other users' exe is read too", async () => {
  const { e } = await seeRootExec(kernel.nobodyWith('net_admin', 'sys_ptrace'));
  assert.equal(e.exe, fs.realpathSync('/bin/sh'));
  assert.ok(!(e.missing ?? []).includes('exe'));
  assert.equal(e.cwd, process.cwd());
});

test('in a new user namespace: a clear error naming the namespace, whatever the kernel answers (EPERM or no acknowledgement), no hang', (t) => {
  const script = `
    const { ProcConnector } = require(${JSON.stringify(ROOT)});
    const t0 = Date.now();
    try { new ProcConnector({ events: 'exec', ackTimeout: 300 }).start(); console.log('started?'); }
    catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, ms: Date.now() - t0 })); }
  `;
  const r = spawnSync('unshare', ['-U', process.execPath, '-e', script], { encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, r.stderr);
  const e = JSON.parse(r.stdout);
  t.diagnostic(`in a new user namespace this kernel answers ${e.code}`);
  assert.equal(e.name, 'ProcConnectorError');
  assert.ok(['EPERM', 'ENOACK'].includes(e.code), e.code);
  assert.match(e.message, /user namespace other than the host's/);
  assert.match(e.message, /run it in the host's user namespace/);
  assert.ok(e.ms < 5000, `answered in ${e.ms} ms`);
});

test('inHostUserNamespace(): true on the host, false under unshare -U', () => {
  const { inHostUserNamespace } = require('../dist/connector');
  assert.equal(inHostUserNamespace(), true);
  const r = spawnSync('unshare', ['-U', process.execPath, '-e', `console.log(require(${JSON.stringify(path.join(ROOT, 'dist', 'connector'))}).inHostUserNamespace())`], {
    encoding: 'utf8',
    timeout: 15000,
  });
  assert.equal(r.stdout.trim(), 'false', r.stderr);
});

test("an unref'd connector does not keep the process alive; a ref'd one does", () => {
  const script = (unref) => `
    const { ProcConnector } = require(${JSON.stringify(ROOT)});
    const c = new ProcConnector({ events: 'exec' }).start();
    ${unref ? 'c.unref();' : ''}
  `;
  const r = spawnSync(process.execPath, ['-e', script(true)], { timeout: 10000 });
  assert.equal(r.status, 0);
  assert.equal(r.signal, null);
  const r2 = spawnSync(process.execPath, ['-e', script(false)], { timeout: 1500 });
  assert.equal(r2.signal, 'SIGTERM', 'still running when the timeout killed it');
});

test('start/stop 100 times leaks no file descriptors or threads', () => {
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  // The reader threads by their name: Node's own threads come and go on their own.
  const readers = () =>
    fs.readdirSync('/proc/self/task').filter((tid) => {
      try {
        return fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'procmon-reader';
      } catch {
        return false; // a thread that ended meanwhile
      }
    }).length;
  const c = new ProcConnector({ events: 'exec' });
  c.start();
  // (The thread names itself once it runs: give it a moment.)
  for (let i = 0; i < 200 && readers() === 0; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  assert.equal(readers(), 1, 'a running connector has its reader thread');
  c.stop();
  // A joined thread can still be listed for a moment while the kernel reaps it: a leaked one
  // stays. So the count is taken once it settles (within a second).
  const settled = () => {
    for (let i = 0; i < 200 && readers() > 0; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    return [fds(), readers()];
  };
  const before = settled();
  assert.equal(before[1], 0);
  for (let i = 0; i < 100; i++) c.start().stop();
  assert.deepEqual(settled(), before);
});

test('errors are ProcConnectorError with a code', () => {
  const e = new ProcConnectorError('EPERM', 'x');
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'EPERM');
});

test('a running connector nobody holds is not garbage-collected; a stopped one is released', () => {
  const script = `
    const { ProcConnector } = require(${JSON.stringify(ROOT)});
    const { spawn } = require('node:child_process');
    const fs = require('node:fs');
    let child = -1;
    new ProcConnector({ events: 'exec' })
      .on('exec', function (e) { if (e.pid === child) { console.log('seen'); this.stop(); } })
      .start();
    for (let i = 0; i < 5; i++) global.gc();
    setTimeout(() => {
      global.gc();
      child = spawn('/bin/sleep', ['0.05'], { stdio: 'ignore' }).pid;
    }, 50);
    process.on('exit', () => {
      // stopped and dropped: collected, its socket closed
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const before = fds();
      for (let i = 0; i < 20; i++) new ProcConnector({ events: 'exec' }).start().stop();
      global.gc();
      if (fds() !== before) console.log('fd leak');
    });
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'seen');
});

test('a process started before the connector is known at its exit', async (t) => {
  const { spawn } = require('node:child_process');
  const cp = spawn('/bin/sleep', ['0.6'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 200));
  const c = started({ events: 'exit' });
  t.after(() => c.stop());
  const rec = record(c);
  await rec.until(exited(cp.pid));
  const [exit] = rec.of(cp.pid);
  assert.equal(exit.comm, 'sleep');
  assert.equal(exit.cmdline, '/bin/sleep 0.6');
  assert.equal(exit.user, 'root');
  assert.equal(exit.ppid, process.pid);
  assert.ok(exit.duration_ms >= 500 && exit.duration_ms < 5000, String(exit.duration_ms));
  assert.equal(exit.missing, undefined);
});
