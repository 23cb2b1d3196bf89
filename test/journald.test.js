'use strict';
// --journald: events and the daemon's log lines as structured journal entries, sent by the
// addon in journald's native protocol, read back with journalctl from a real systemd-journald
// the test starts outside PID 1 (in a mount namespace of its own whose /run is a temp
// directory, so its sockets and journal files are there). The hazards: a field lost or
// changed on the way (a newline, a large argv, an entry over a datagram's size), events lost
// while journald restarts, a full queue that drops silently or says it in the wrong place,
// errors filed as info under systemd.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { daemon, BIN } = require('./daemon');
const { JournaldOutput } = require('..');

const JOURNALD = ['/lib/systemd/systemd-journald', '/usr/lib/systemd/systemd-journald'].find((p) => fs.existsSync(p)) ?? null;
const JOURNALCTL = spawnSync('sh', ['-c', 'command -v journalctl'], { encoding: 'utf8' }).stdout.trim() || null;
const SYSTEMD_CAT = spawnSync('sh', ['-c', 'command -v systemd-cat'], { encoding: 'utf8' }).stdout.trim() || null;
/** Why journald cannot run here, or null. */
function journaldProblem() {
  if (!JOURNALD || !JOURNALCTL) return 'systemd-journald or journalctl is not installed (apt-get install systemd)';
  if (process.getuid() !== 0) return 'starting a journald of our own (a mount namespace) needs root';
  const r = spawnSync('unshare', ['-m', 'true']);
  if (r.status !== 0) return `unshare -m fails here: ${r.stderr}`;
  return null;
}
const PROBLEM = journaldProblem();
if (PROBLEM && process.env.CI === 'true') {
  // CI installs systemd (.ci/run) and runs as root: journald not running there is a failure, never a skip.
  test('a journald of our own can run', () => assert.fail(PROBLEM));
}
const opts = { skip: PROBLEM ?? false };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A temp directory, removed after the test (after what is registered later has stopped). */
function tmp(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-journald-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Starts systemd-journald with DIR/run as its /run (its socket DIR/run/systemd/journal/socket,
 * its journal under DIR/run/log/journal); resolves once the socket is there. j.stop() stops
 * it (also after the test); j.entries(...match) reads the journal back as objects.
 */
async function startJournald(t, dir) {
  const run = path.join(dir, 'run');
  fs.mkdirSync(run, { recursive: true });
  const socket = path.join(run, 'systemd', 'journal', 'socket');
  try {
    fs.unlinkSync(socket); // (a journald before this one)
  } catch {}
  const cp = spawn('unshare', ['-m', 'sh', '-c', `mount --bind "$0" /run && exec ${JOURNALD}`, run], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  cp.stderr.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => cp.on('exit', resolve));
  const stop = async () => {
    if (cp.exitCode === null && cp.signalCode === null) cp.kill('SIGTERM');
    await exited;
  };
  t.after(stop);
  for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await sleep(50);
  assert.ok(fs.existsSync(socket), `journald made its socket: ${err}`);
  return {
    socket,
    run,
    stop,
    /** Entries matching `match` (journalctl's FIELD=VALUE terms), oldest first; every field whole (--all). */
    entries(...match) {
      const r = spawnSync(JOURNALCTL, ['-D', path.join(run, 'log', 'journal'), '-o', 'json', '--all', '--no-pager', ...match], { encoding: 'utf8', maxBuffer: 256 << 20 });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    },
  };
}

/** Polls `fn` each 200 ms until it returns something true (journalctl is a process each time). */
async function eventually(fn, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** journald's text of a field: a string, or (binary, e.g. with a newline) an array of bytes. */
const textOf = (v) => (Array.isArray(v) ? Buffer.from(v).toString('utf8') : v);

test(
  '--journald: each event of a job as a structured entry (journalctl PROCMON_EVENT=exec PROCMON_PID=N finds it), the same as --direct says; log lines as log lines',
  opts,
  async (t) => {
    const dir = tmp(t);
    const j = await startJournald(t, dir);
    const cp = await daemon(t, ['--journald', '--journald-socket', j.socket, '--direct', '-e', 'fork,exec,exit']).ready;
    // A job whose last program fails, with a newline, a long argument (over 64 KiB) and text
    // that is not ASCII in its argv.
    const big = 'b'.repeat(100 * 1024);
    const job = spawn('sh', ['-c', 'sh -c "sleep 0.2; exit 3" pm-journald-x "$1" "$2" "$3"', 'sh', 'line one\nline two', big, 'héllo wörld ✓'], { stdio: 'ignore' });
    await new Promise((r) => job.on('exit', r));
    const direct = () =>
      cp.out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    // Ground truth: the job's processes, from --direct.
    const inJob = (evs) => {
      const pids = new Set([job.pid]);
      const out = [];
      for (const e of evs) {
        if (e.event === 'fork' && pids.has(e.parent_pid)) pids.add(e.child_pid);
        const pid = e.event === 'fork' ? e.child_pid : e.pid;
        if (pids.has(pid)) out.push(e);
      }
      return out;
    };
    const truth = await eventually(() => {
      const evs = inJob(direct());
      return evs.some((e) => e.event === 'exit' && e.pid === job.pid) && evs;
    }, 'the job on stdout');
    const entriesOf = () =>
      inJob(
        j
          .entries('-t', 'procMonitor')
          .filter((e) => e.PROCMON_EVENT)
          .map((e) => ({ e, event: e.PROCMON_EVENT, pid: Number(e.PROCMON_PID), parent_pid: Number(e.PROCMON_PARENT_PID), child_pid: Number(e.PROCMON_CHILD_PID) })),
      );
    const got = await eventually(() => {
      const g = entriesOf();
      return g.length >= truth.length && g;
    }, 'the job in the journal');
    // Every event of the job, once, in order, with the same fields.
    assert.deepEqual(
      got.map((g) => `${g.event} ${g.pid}`),
      truth.map((e) => `${e.event} ${e.event === 'fork' ? e.child_pid : e.pid}`),
    );
    for (let i = 0; i < truth.length; i++) {
      const e = truth[i];
      const entry = got[i].e;
      assert.equal(entry.SYSLOG_IDENTIFIER, 'procMonitor');
      assert.equal(entry._TRANSPORT, 'journal');
      assert.equal(entry.PRIORITY, '6');
      for (const [k, v] of Object.entries(e)) {
        const field = `PROCMON_${k.toUpperCase()}`;
        if (v === null) assert.equal(entry[field], undefined, field);
        else if (Array.isArray(v)) assert.deepEqual(JSON.parse(textOf(entry[field])), v, field);
        else if (typeof v !== 'object') assert.equal(textOf(entry[field]), String(v), field);
      }
    }
    // The failing program: its argv whole (newline and 100 KiB included), its exit code, the message.
    const exec = got.find((g) => g.event === 'exec' && JSON.parse(textOf(g.e.PROCMON_ARGV))[3] === 'pm-journald-x');
    assert.ok(exec, 'the exec of the failing program');
    const argv = JSON.parse(textOf(exec.e.PROCMON_ARGV));
    assert.ok(argv.length === 7 && argv[4] === 'line one\nline two' && argv[5] === big && argv[6] === 'héllo wörld ✓', 'its argv whole');
    const exit = got.find((g) => g.event === 'exit' && g.pid === exec.pid);
    assert.equal(exit.e.PROCMON_CODE, '3');
    assert.match(textOf(exit.e.MESSAGE), new RegExp(`^exit ${exec.pid} root code 3 after [0-9.]+ ms: sh -c sleep 0.2; exit 3`));
    // journalctl's own query by field.
    const byField = j.entries('PROCMON_EVENT=exit', `PROCMON_PID=${exec.pid}`);
    assert.equal(byField.length, 1);
    // A fork's child is its PROCMON_PID too.
    const fork = got.find((g) => g.event === 'fork');
    assert.equal(fork.e.PROCMON_PID, fork.e.PROCMON_CHILD_PID);
    // The daemon's own log lines: no PROCMON_ fields, facility daemon, info.
    const watching = j.entries('-t', 'procMonitor', 'SYSLOG_FACILITY=3').find((e) => /^watching /.test(e.MESSAGE));
    assert.ok(watching, 'the "watching" line');
    assert.equal(watching.PRIORITY, '6');
    assert.equal(Object.keys(watching).filter((k) => k.startsWith('PROCMON_')).length, 0);
    assert.equal((await cp.stop('SIGTERM')).code, 0);
    assert.ok(
      j.entries('-t', 'procMonitor').some((e) => e.MESSAGE === 'SIGTERM: stopping'),
      'the last log line reaches journald before the daemon exits',
    );
  },
);

test('--journald: journald stopped and started again, nothing lost (events wait for it, then go in order); its absence said on stderr once', opts, async (t) => {
  const dir = tmp(t);
  let j = await startJournald(t, dir);
  const cp = await daemon(t, ['--journald', '--journald-socket', j.socket, '-e', 'fork,exec,exit']).ready;
  // Each run's exec and exit, by its pid (a process this short may leave no argv to read).
  const runs = [];
  const runOne = () => runs.push(spawnSync('/bin/true').pid);
  for (let i = 0; i < 5; i++) runOne();
  // (Taken before it stops: a journald that stops with datagrams in its socket's queue loses
  // them, whoever sent them. Under systemd the socket is PID 1's and outlives a restart.)
  const mine = (e) => (e.PROCMON_EVENT === 'exec' || e.PROCMON_EVENT === 'exit') && runs.includes(Number(e.PROCMON_PID));
  await eventually(() => j.entries('-t', 'procMonitor').filter(mine).length === 10, 'the first 5 runs in the journal');
  await j.stop();
  fs.unlinkSync(j.socket); // (as after a stop: nobody listens there)
  for (let i = 5; i < 25; i++) runOne(); // while journald is absent
  await cp.saw(/journald: cannot send to .*: (ENOENT|ECONNREFUSED) \(is systemd-journald running\?\)/);
  j = await startJournald(t, dir);
  for (let i = 25; i < 30; i++) runOne();
  await cp.saw(/journald: sending again/, 10000);
  const seen = await eventually(() => {
    const got = j.entries('-t', 'procMonitor').filter(mine);
    return got.length >= 60 && got.map((e) => `${e.PROCMON_EVENT} ${e.PROCMON_PID}`);
  }, 'the 30 runs in the journal');
  assert.deepEqual(
    seen,
    runs.flatMap((pid) => [`exec ${pid}`, `exit ${pid}`]),
  );
  assert.equal(j.entries('PROCMON_EVENT=lost').length, 0, 'nothing lost');
  assert.equal(cp.err.match(/cannot send/g).length, 1, 'said once');
  await cp.stop();
});

test('JournaldOutput: a full queue while journald is absent drops events, and one lost entry with their exact count stands where they are missing', opts, async (t) => {
  const dir = tmp(t);
  const socket = path.join(dir, 'run', 'systemd', 'journal', 'socket');
  const { EventEmitter } = require('node:events');
  const src = new EventEmitter();
  const reports = [];
  const out = new JournaldOutput({ source: src, socketPath: socket, identifier: 'pmqueue', bufferBytes: 64 * 1024, report: (l) => reports.push(l) }).start();
  t.after(() => out.close(0));
  const ev = (i) => ({ event: 'exec', pid: 100000 + i, time: new Date().toISOString(), user: 'root', uid: 0, cmdline: `x ${i}`, argv: ['x', String(i), 'p'.repeat(200)] });
  for (let i = 0; i < 1000; i++) src.emit('batch', [ev(i)]);
  const held = 1000 - out.stats().lost;
  assert.ok(held > 10 && held < 1000, `some held (${held}), the rest dropped`);
  assert.match(reports.join('\n'), /cannot send .*ENOENT/);
  const j = await startJournald(t, dir);
  await eventually(() => out.stats().failing === null && out.stats().queuedBytes === 0, 'the held events sent');
  for (let i = 1000; i < 1010; i++) src.emit('batch', [ev(i)]);
  const got = await eventually(
    () => {
      const g = j.entries('-t', 'pmqueue');
      return g.length >= held + 1 + 10 && g;
    },
    'the held events, the lost entry, the later ones',
    30000,
  );
  const order = got.map((e) => (e.PROCMON_EVENT === 'lost' ? `lost ${e.PROCMON_COUNT} ${e.PROCMON_SOURCE}` : Number(e.PROCMON_PID) - 100000));
  const expected = [...Array.from({ length: held }, (_, i) => i), `lost ${1000 - held} journald`, ...Array.from({ length: 10 }, (_, i) => 1000 + i)];
  assert.deepEqual(order, expected);
  assert.equal(got[held].PRIORITY, '4', 'lost is a warning');
  assert.deepEqual({ ...out.stats(), queuedBytes: 0 }, { entries: held + 11, events: held + 10, lost: 1000 - held, failing: null, queuedBytes: 0 });
});

test('JournaldOutput: an entry larger than a datagram can be (net.core.wmem_max) goes whole, as a sealed memfd', opts, async (t) => {
  const dir = tmp(t);
  const j = await startJournald(t, dir);
  const wmem = Number(fs.readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
  const size = Math.max(wmem, 8 << 20) + (1 << 20);
  const out = new JournaldOutput({ socketPath: j.socket, identifier: 'pmbig' });
  const line = `big ${'m'.repeat(size)}`;
  out.log(line, 'notice');
  await out.close(5000);
  assert.deepEqual({ ...out.stats(), queuedBytes: 0 }, { entries: 1, events: 0, lost: 0, failing: null, queuedBytes: 0 });
  const got = await eventually(() => j.entries('-t', 'pmbig')[0], 'the big entry');
  assert.equal(got.MESSAGE.length, line.length);
  assert.equal(got.MESSAGE, line);
  assert.equal(got.PRIORITY, '5');
});

test('under systemd (stderr is the JOURNAL_STREAM), log lines carry <N> priority prefixes: errors are errors; elsewhere none', opts, async (t) => {
  if (!SYSTEMD_CAT) {
    if (process.env.CI === 'true') assert.fail('systemd-cat not found (apt-get install systemd)');
    t.skip('systemd-cat is not installed');
    return;
  }
  const dir = tmp(t);
  const j = await startJournald(t, dir);
  // As systemd starts a service: stderr connected to journald's stream socket, JOURNAL_STREAM naming it.
  const underJournal = (tag, args) =>
    spawnSync(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        `mount --bind "$0" /run && exec ${SYSTEMD_CAT} -t ${tag} sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" "$@"' "$@"`,
        j.run,
        process.execPath,
        BIN,
        ...args,
      ],
      { encoding: 'utf8', timeout: 20000 },
    );
  const bad = underJournal('pmprio-bad', ['--events', 'nonsense']);
  assert.equal(bad.status, 2);
  const run = spawnSync(
    'unshare',
    [
      '-m',
      'sh',
      '-c',
      `mount --bind "$0" /run && exec ${SYSTEMD_CAT} -t pmprio-run sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec timeout --preserve-status -s INT 2 "$0" "$@"' "$@"`,
      j.run,
      process.execPath,
      BIN,
      '--direct',
      '-e',
      'exec',
    ],
    { encoding: 'utf8', timeout: 20000 },
  );
  assert.equal(run.status, 0, run.stderr);
  const errs = await eventually(() => j.entries('-t', 'pmprio-bad').length > 0 && j.entries('-t', 'pmprio-bad'), 'the usage error');
  assert.equal(errs.length, 1);
  assert.match(errs[0].MESSAGE, /^procMonitor: --events: /);
  assert.equal(errs[0].PRIORITY, '3', 'an error');
  const lines = await eventually(() => {
    const g = j.entries('-t', 'pmprio-run');
    return g.some((e) => e.MESSAGE === 'procMonitor: SIGINT: stopping') && g;
  }, 'the run');
  assert.ok(
    lines.some((e) => /^procMonitor: watching exec/.test(e.MESSAGE) && e.PRIORITY === '6'),
    'info as info',
  );
  assert.ok(
    lines.every((e) => !e.MESSAGE.startsWith('<')),
    'no prefix left in a message',
  );
  // JOURNAL_STREAM naming another stream (stderr here is a pipe): no prefix.
  const plain = spawnSync(process.execPath, [BIN, '--events', 'nonsense'], { encoding: 'utf8', env: { ...process.env, JOURNAL_STREAM: '1:1' } });
  assert.match(plain.stderr, /^procMonitor: --events: /);
});

test('--journald usage: --journald-socket needs --journald and an absolute path', async (t) => {
  for (const [args, re] of [
    [['--journald-socket', '/x'], /--journald-socket needs --journald/],
    [['--journald', '--journald-socket', 'rel/sock'], /--journald-socket needs an absolute path/],
    [['--journald', '--journald-socket', `/${'x'.repeat(120)}`], /at most 107 bytes/],
  ]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
  assert.throws(() => new JournaldOutput({ socketPath: 'relative' }), { code: 'EINVAL' });
  assert.throws(() => new JournaldOutput({ bufferBytes: 10 }), { code: 'EINVAL' });
  assert.throws(() => new JournaldOutput({ source: {} }), { code: 'EINVAL' });
  void t;
});

test('journal entries (pure): keys made valid field names, a value with a newline in the protocol binary form, nulls left out', () => {
  const { encodeEntry, eventFields, fieldName } = require('../dist/outputs/journald-entry');
  assert.equal(fieldName('PROCMON_', 'exit-code.x'), 'PROCMON_EXIT_CODE_X');
  assert.equal(fieldName('PROCMON_', 'k'.repeat(100)).length, 64);
  const buf = encodeEntry([
    ['A', 'one'],
    ['B', 'x\ny'],
  ]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(3n);
  assert.deepEqual(buf, Buffer.concat([Buffer.from('A=one\nB\n'), len, Buffer.from('x\ny\n')]));
  const fields = Object.fromEntries(eventFields({ event: 'fork', child_pid: 7, parent_pid: 1, time: 'T', tty: null, ctx: { ssh: '1.2.3.4', deep: { a: 1 } }, argv: ['a'] }, 'id'));
  assert.deepEqual(fields, {
    MESSAGE: 'fork 7 child of 1',
    PRIORITY: '6',
    SYSLOG_IDENTIFIER: 'id',
    PROCMON_PID: '7',
    PROCMON_EVENT: 'fork',
    PROCMON_CHILD_PID: '7',
    PROCMON_PARENT_PID: '1',
    PROCMON_TIME: 'T',
    PROCMON_CTX_SSH: '1.2.3.4',
    PROCMON_CTX_DEEP: '{"a":1}',
    PROCMON_ARGV: '["a"]',
  });
});
