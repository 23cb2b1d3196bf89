'use strict';
// The process model against the real kernel: exec ids (pid reuse forced for real), ancestry
// of a known chain, processes that ran before the connector, the live table, cgroups.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ProcConnector } = require('..');
const { record, run, exited, SELF_COMM } = require('./helpers');

function started(opts) {
  const c = new ProcConnector(opts);
  c.start();
  return c;
}

const BOOT = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').replace(/-/g, '').slice(0, 8);
const EXEC_ID = new RegExp(`^${BOOT}:(\\d+):(\\d+)$`);

/** Spawns a process that lives until its stdin closes; resolves once it is running. */
function held(cmd, args) {
  const cp = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'ignore'] });
  cp.done = new Promise((resolve) => cp.on('exit', (code, signal) => resolve({ code, signal })));
  return cp;
}

test('exec_id: a program run of its own at fork and at each exec; parent_exec_id is the parent run', async (t) => {
  const c = started({ events: 'fork,exec,exit' });
  t.after(() => c.stop());
  const rec = record(c);
  // sh forks a child that execs sleep: sh's run, the child's run at fork, the sleep run.
  const { pid: sh } = await run('/bin/sh', ['-c', '/bin/sleep 0.2; exit 0']);
  await rec.until(exited(sh));
  const shExec = rec.events.find((e) => e.event === 'exec' && e.pid === sh);
  const fork = rec.events.find((e) => e.event === 'fork' && e.parent_pid === sh);
  assert.ok(shExec && fork, 'exec of sh and its fork');
  const kid = fork.child_pid;
  await rec.until(exited(kid));
  const kidExec = rec.events.find((e) => e.event === 'exec' && e.pid === kid);
  const kidExit = rec.events.find((e) => e.event === 'exit' && e.pid === kid);
  const shExit = rec.events.find((e) => e.event === 'exit' && e.pid === sh);
  for (const e of [shExec, fork, kidExec, kidExit, shExit]) assert.match(e.exec_id, EXEC_ID, JSON.stringify(e));
  assert.equal(EXEC_ID.exec(kidExec.exec_id)[1], String(kid));
  // The fork is the child's own run, the exec a new one, the exit ends the exec's.
  assert.notEqual(fork.exec_id, kidExec.exec_id);
  assert.equal(kidExit.exec_id, kidExec.exec_id);
  assert.equal(fork.parent_exec_id, shExec.exec_id);
  assert.equal(kidExec.parent_exec_id, shExec.exec_id);
  assert.equal(shExit.exec_id, shExec.exec_id);
  // Our own process ran before the connector: learned from /proc, with a run of its own.
  assert.match(shExec.parent_exec_id, EXEC_ID);
  assert.equal(EXEC_ID.exec(shExec.parent_exec_id)[1], String(process.pid));
});

test('an exec followed at once by another (env env env sh) never shows the later program: read from /proc only when it is still the one there', async (t) => {
  // The reader rests 100 ms after a read, so the chain's four execs come in one batch, read
  // after all four ran: /proc shows only the last. setpriv, su, sudo and env exec at once too.
  const c = started({ events: 'fork,exec,exit', readInterval: 100 });
  t.after(() => c.stop());
  const rec = record(c);
  const last = ['sh', '-c', ': pm-chain; sleep 0.3'];
  const { pid } = await run('/bin/sh', ['-c', `sleep 0.02; exec env env env sh -c '${last[2]}'`]);
  await rec.until(exited(pid));
  const execs = rec.events.filter((e) => e.event === 'exec' && e.pid === pid);
  const truth = [['env', 'env', 'env', ...last], ['env', 'env', ...last], ['env', ...last], last];
  assert.equal(execs.length, 5, JSON.stringify(execs));
  execs.slice(1).forEach((e, i) => {
    if (!e.missing?.includes('argv')) assert.deepEqual(e.argv, truth[i], `exec ${i + 1} of the chain shows its own program or none`);
    else assert.ok(e.argv.length === 0 && e.missing.includes('exe') && !e.exe, JSON.stringify(e));
    if (e.exe) assert.equal(path.basename(e.exe), i < 3 ? 'env' : path.basename(fs.realpathSync('/bin/sh')));
  });
  assert.deepEqual(execs[4].argv, last, 'the last exec, alive while read, has its argv');
  const superseded = execs.slice(1, 4).filter((e) => e.missing?.includes('argv')).length;
  t.diagnostic(`${superseded} of the chain's first three execs came in the last one's batch (argv missing, not borrowed)`);
});

test('pid reuse (forced through ns_last_pid): two runs with one pid keep distinct exec_ids', async (t) => {
  const LAST = '/proc/sys/kernel/ns_last_pid';
  const c = started({ events: 'fork,exec,exit' });
  t.after(() => c.stop());
  const rec = record(c);
  const first = await run('/bin/sleep', ['0.05']);
  let second = null;
  // Other processes on the machine may take the pid first: try again a few times.
  for (let i = 0; i < 50 && !second; i++) {
    fs.writeFileSync(LAST, String(first.pid - 1));
    const r = await run('/bin/sleep', ['0.05']);
    if (r.pid === first.pid) second = r;
  }
  assert.ok(second, `pid ${first.pid} was reused`);
  await rec.until((evs) => evs.filter((e) => e.event === 'exit' && e.pid === first.pid).length === 2);
  const execs = rec.events.filter((e) => e.event === 'exec' && e.pid === first.pid);
  const exits = rec.events.filter((e) => e.event === 'exit' && e.pid === first.pid);
  const forks = rec.events.filter((e) => e.event === 'fork' && e.child_pid === first.pid);
  assert.equal(execs.length, 2, JSON.stringify(execs));
  assert.equal(forks.length, 2);
  const ids = new Set([...execs, ...forks].map((e) => e.exec_id));
  assert.equal(ids.size, 4, 'two forks and two execs: four runs');
  assert.equal(exits[0].exec_id, execs[0].exec_id);
  assert.equal(exits[1].exec_id, execs[1].exec_id);
  assert.equal(exits[1].missing, undefined);
});

test('ancestry of sh -> sh -> sleep is exact, on the exec event and from connector.ancestry()', async (t) => {
  const c = started({ events: 'fork,exec,exit' });
  t.after(() => c.stop());
  const rec = record(c);
  const outer = held('/bin/sh', ['-c', '/bin/sh -c "/bin/sleep 30 & read x; kill \\$!"; exit 0']);
  t.after(() => outer.kill('SIGKILL'));
  // outer sh -> inner sh (forked, then exec) -> sleep (forked, then exec)
  const [sleepExec] = await rec
    .until((evs) => evs.some((e) => e.event === 'exec' && e.comm === 'sleep' && e.ancestors?.[1]?.pid === outer.pid))
    .then((evs) => evs.filter((e) => e.event === 'exec' && e.comm === 'sleep' && e.ancestors[1].pid === outer.pid));
  const outerExec = rec.events.find((e) => e.event === 'exec' && e.pid === outer.pid);
  const inner = sleepExec.ancestors[0];
  const innerExec = rec.events.find((e) => e.event === 'exec' && e.pid === inner.pid);
  assert.equal(sleepExec.ppid, inner.pid);
  assert.deepEqual(sleepExec.ancestors.slice(0, 3), [
    { pid: inner.pid, exec_id: innerExec.exec_id, comm: 'sh', exe: fs.realpathSync('/bin/sh') },
    { pid: outer.pid, exec_id: outerExec.exec_id, comm: 'sh', exe: fs.realpathSync('/bin/sh') },
    { pid: process.pid, exec_id: outerExec.parent_exec_id, comm: SELF_COMM, exe: fs.realpathSync(process.execPath) },
  ]);
  assert.equal(sleepExec.parent_exec_id, innerExec.exec_id);
  // Up to init, unless the depth bound (16) stops it first.
  const top = sleepExec.ancestors[sleepExec.ancestors.length - 1];
  assert.ok(top.pid === 1 || sleepExec.ancestors.length === 16, JSON.stringify(sleepExec.ancestors));
  assert.equal(sleepExec.missing, undefined);
  // The same chain from the live table, the process itself first.
  const chain = c.ancestry(sleepExec.pid);
  assert.deepEqual(
    chain.slice(0, 4).map((r) => [r.pid, r.exec_id, r.comm, r.learned]),
    [
      [sleepExec.pid, sleepExec.exec_id, 'sleep', false],
      [inner.pid, innerExec.exec_id, 'sh', false],
      [outer.pid, outerExec.exec_id, 'sh', false],
      [process.pid, outerExec.parent_exec_id, SELF_COMM, true],
    ],
  );
  assert.equal(chain[0].cmdline, '/bin/sleep 30');
  assert.equal(chain[0].exe, fs.realpathSync('/bin/sleep'));
  assert.equal(chain[0].ppid, inner.pid);
  assert.equal(chain[0].parent_exec_id, innerExec.exec_id);
  assert.equal(chain.at(-1).pid, 1);
  // Not on fork or exit by default; on request, on every kind asked for.
  assert.ok(rec.events.filter((e) => e.event !== 'exec').every((e) => e.ancestors === undefined));
  outer.stdin.end();
  await outer.done;
});

test('ancestors on request on other events, bounded in depth; none turns them off', async (t) => {
  const a = started({ events: 'fork,exec,exit', ancestors: 'exit,fork', ancestorDepth: 2 });
  const b = started({ events: 'exec', ancestors: 'none' });
  t.after(() => (a.stop(), b.stop()));
  const ra = record(a);
  const rb = record(b);
  const { pid } = await run('/bin/sh', ['-c', '/bin/sleep 0.1']);
  await ra.until(exited(pid));
  await rb.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === pid));
  const [fork, exec, exit] = ['fork', 'exec', 'exit'].map((k) => ra.events.find((e) => e.event === k && (e.pid ?? e.child_pid) === pid));
  assert.deepEqual(
    fork.ancestors.map((x) => x.pid),
    [process.pid, process.ppid],
  );
  assert.equal(exec.ancestors, undefined);
  assert.equal(exit.ancestors.length, 2);
  assert.equal(rb.events.find((e) => e.event === 'exec' && e.pid === pid).ancestors, undefined);
  assert.throws(() => new ProcConnector({ ancestors: 'exec,nope' }), /ancestors: unknown event "nope"/);
  assert.throws(() => new ProcConnector({ ancestorDepth: 0 }), /ancestorDepth must be an integer from 1 to 1024/);
});

test('a process started before the connector is known at its exit (learned from /proc)', async (t) => {
  const cp = held('/bin/sh', ['-c', 'read x; exit 5', 'pm-learned']);
  await new Promise((r) => setTimeout(r, 100)); // it runs, and has exec'd, before we start
  const c = started({ events: 'exit' });
  t.after(() => c.stop());
  const rec = record(c);
  const mine = c.snapshot().find((r) => r.pid === cp.pid);
  assert.ok(mine, 'in the snapshot');
  assert.equal(mine.learned, true);
  assert.equal(mine.comm, 'sh');
  assert.equal(mine.cmdline, '/bin/sh -c read x; exit 5 pm-learned');
  assert.equal(mine.ppid, process.pid);
  assert.match(mine.exec_id, EXEC_ID);
  cp.stdin.end();
  await cp.done;
  await rec.until(exited(cp.pid));
  const exit = rec.events.find((e) => e.event === 'exit' && e.pid === cp.pid);
  assert.equal(exit.code, 5);
  assert.equal(exit.comm, 'sh');
  assert.equal(exit.cmdline, '/bin/sh -c read x; exit 5 pm-learned');
  assert.equal(exit.ppid, process.pid);
  assert.equal(exit.learned, true);
  assert.equal(exit.exec_id, mine.exec_id);
  assert.ok(exit.duration_ms >= 100, `duration_ms ${exit.duration_ms}`);
  assert.equal(exit.missing, undefined);
  assert.equal(
    c.snapshot().find((r) => r.pid === cp.pid),
    undefined,
    'gone from the table',
  );
});

test('snapshot(): the live table, seeded from /proc and kept by fork, exec and exit', async (t) => {
  assert.deepEqual(new ProcConnector().snapshot(), [], 'empty before start');
  const c = started({ events: 'exec' });
  t.after(() => c.stop());
  const snap = c.snapshot();
  assert.equal(c.stats().tableSize, snap.length, 'the count is current, before any event');
  const pids = fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
  // Everything running at start is known (give or take processes that came or went).
  const known = new Set(snap.map((r) => r.pid));
  assert.ok(pids.filter((p) => known.has(p)).length >= pids.length - 5, `${snap.length} known of ${pids.length}`);
  const self = snap.find((r) => r.pid === process.pid);
  assert.equal(self.learned, true);
  assert.equal(self.exe, fs.realpathSync(process.execPath));
  assert.equal(self.cwd, process.cwd(), 'learned from /proc: where it is now');
  assert.equal(self.user, 'root');
  assert.ok(Date.parse(self.start_time) <= Date.now());
  const rec = record(c);
  const cp = held('/bin/cat', []);
  t.after(() => cp.kill('SIGKILL'));
  await rec.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === cp.pid));
  const cat = c.snapshot().find((r) => r.pid === cp.pid);
  const exec = rec.events.find((e) => e.event === 'exec' && e.pid === cp.pid);
  assert.deepEqual(
    { ...cat, start_time: undefined, exec_time: undefined },
    {
      pid: cp.pid,
      ppid: process.pid,
      exec_id: exec.exec_id,
      parent_exec_id: self.exec_id,
      comm: 'cat',
      exe: fs.realpathSync('/bin/cat'),
      cmdline: '/bin/cat',
      user: 'root',
      uid: 0,
      start_time: undefined,
      exec_time: undefined,
      cgroup: exec.cgroup,
      cwd: exec.cwd,
      ...(exec.auid === undefined ? {} : { auid: exec.auid, login_user: exec.login_user }),
      ...(exec.sessionid === undefined ? {} : { sessionid: exec.sessionid }),
      tty: exec.tty,
      threads: 0,
      learned: false,
    },
  );
  assert.equal(cat.exec_time, exec.time);
  assert.equal(c.stats().tableSize, c.snapshot().length);
  cp.stdin.end();
  await cp.done;
  c.stop();
  assert.deepEqual(c.snapshot(), []);
  assert.equal(c.ancestry(process.pid), null);
  assert.throws(() => c.ancestry(-1), RangeError);
});

/** The cgroup v2 hierarchy: /sys/fs/cgroup itself, or the unified mount of a hybrid host. */
function cgroup2Root() {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre.split(' ')[4];
  }
  return null;
}

test('cgroup and container_id from a real cgroup v2 the test creates, carried to the exit', async (t) => {
  const root = cgroup2Root();
  if (!root) {
    assert.ok(!process.env.CI, 'CI machines have cgroup v2');
    return t.skip('no cgroup v2 here');
  }
  const id = 'ab12'.repeat(16);
  const rel = `/procmonitor-test-${process.pid}/docker-${id}.scope`;
  const dir = path.join(root, rel);
  fs.mkdirSync(dir, { recursive: true });
  t.after(() => {
    for (const d of [dir, path.dirname(dir)]) {
      try {
        fs.rmdirSync(d);
      } catch {}
    }
  });
  const c = started({ events: 'fork,exec,exit' });
  t.after(() => c.stop());
  const rec = record(c);
  // The shell moves itself into the cgroup, then execs: the exec sees the new cgroup.
  const { pid } = await run('/bin/sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec /bin/sleep 0.1`]);
  await rec.until(exited(pid));
  const fork = rec.events.find((e) => e.event === 'fork' && e.child_pid === pid);
  const exec = rec.events.find((e) => e.event === 'exec' && e.pid === pid && e.comm === 'sleep');
  const exit = rec.events.find((e) => e.event === 'exit' && e.pid === pid);
  assert.equal(fork.cgroup, fs.readFileSync(`/proc/${process.pid}/cgroup`, 'utf8').match(/^0::(.*)$/m)[1]);
  assert.equal(fork.container_id, undefined);
  assert.equal(exec.cgroup, rel);
  assert.equal(exec.container_id, id);
  assert.equal(exit.cgroup, rel, 'carried to the exit, read when it could still be read');
  assert.equal(exit.container_id, id);
  const off = started({ events: 'exec', cgroups: false });
  t.after(() => off.stop());
  const r2 = record(off);
  const { pid: p2 } = await run('/bin/sleep', ['0.05']);
  const ev = (await r2.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === p2))).find((e) => e.pid === p2);
  assert.equal(ev.cgroup, undefined);
});
