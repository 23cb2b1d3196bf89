'use strict';
// ProcConnector's `subtree`: only some processes and their descendants are followed. The
// hazards: a busy host leaking into the subtree's events, or costing /proc reads and table
// slots, or filling the exit cost's map; a descendant lost when its parent exits first (a double fork); a root that is not
// a process accepted silently.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const { once } = require('node:events');
const readline = require('node:readline');
const { ProcConnector, ProcConnectorError } = require('..');
const { record, exited, busyHost } = require('./helpers');
const { until } = require('./server-helpers');

/** Waits until pid runs `comm` (its exec done). */
function execd(pid, comm) {
  return until(() => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm, 5000, `${pid} to run ${comm}`);
}

/** The pids of `events` that descend from `root` by the forks among them (the root included). */
function lineage(root, events) {
  const members = new Set([root]);
  for (const e of events) if (e.event === 'fork' && members.has(e.parent_pid)) members.add(e.child_pid);
  return members;
}

test('subtree: the root, a child it had at start (seed), and all it forks since, a double-forked daemon too; nothing of a busy host', async (t) => {
  // The root prints the pid of a child it already has, then waits for a line.
  const script = 'sleep 30 & s=$!; echo $s; read go; sh -c "sleep 0.4 &"; sleep 0.1; kill $s; wait $s; exit 3';
  const root = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await once(readline.createInterface({ input: root.stdout }), 'line');
  const before = Number(line);
  await execd(before, 'sleep');
  const host = busyHost('pm-outside-the-subtree');
  t.after(() => host.stop());
  const c = new ProcConnector({ subtree: root.pid, seed: true, cost: true }).start();
  t.after(() => c.stop());
  const rec = record(c);
  const snap = c.snapshot();
  assert.deepEqual(snap.map((r) => r.pid).sort(), [root.pid, before].sort(), 'the table holds the subtree only');
  assert.equal(snap.find((r) => r.pid === before).cmdline, 'sleep 30');
  root.stdin.end('go\n');
  await rec.until(exited(root.pid));
  const daemon = () => rec.events.find((e) => e.event === 'exec' && e.argv?.join(' ') === 'sleep 0.4');
  await rec.until(() => daemon() && exited(daemon().pid)(rec.events));
  await host.stop();
  const evs = rec.events;
  const members = lineage(root.pid, evs);
  members.add(before);
  assert.ok(evs.length >= 10, `${evs.length} events`);
  assert.deepEqual(
    evs.filter((e) => !members.has(e.event === 'fork' ? e.parent_pid : e.pid)),
    [],
    'every event is about the subtree',
  );
  assert.ok(host.pids.length > 5, `${host.pids.length} processes outside meanwhile`);
  assert.equal(evs.filter((e) => host.pids.includes(e.pid) || host.pids.includes(e.child_pid)).length, 0);
  const seeded = evs.find((e) => e.event === 'exit' && e.pid === before);
  assert.equal(seeded.cmdline, 'sleep 30', 'the child running at start was learned');
  const parent = evs.find((e) => e.event === 'fork' && e.child_pid === daemon().pid).parent_pid;
  const exitAt = (pid) => evs.findIndex((e) => e.event === 'exit' && e.pid === pid);
  assert.ok(parent !== root.pid && exitAt(parent) >= 0 && exitAt(parent) < exitAt(daemon().pid), 'followed after its parent, a child of the root, had exited');
  assert.equal(evs.find((e) => e.event === 'exit' && e.pid === root.pid).code, 3);
  // The daemon's cost, whole, from where the connector takes costs (the busy host's exits'
  // taskstats records were dropped as they came, never counted as lost ones).
  const daemonExit = evs.find((e) => e.event === 'exit' && e.pid === daemon().pid);
  assert.equal(daemonExit.cost.source, c.stats().costSource);
  assert.ok(!(daemonExit.missing ?? []).some((m) => m.startsWith('cost.')), JSON.stringify(daemonExit));
  const s = c.stats();
  assert.ok(s.received > s.delivered + host.pids.length, `the kernel's events were all read (${s.received}), few delivered (${s.delivered})`);
  assert.equal(s.tableSize, 0, 'every process of the subtree has ended: the table is empty');
});

test('subtree without seed: the root and what it forks from now on; a child it had before is not followed', async (t) => {
  const root = spawn('sh', ['-c', 'sleep 30 & s=$!; echo $s; read go; /bin/sleep 0.05; kill $s; wait $s'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await once(readline.createInterface({ input: root.stdout }), 'line');
  const before = Number(line);
  await execd(before, 'sleep');
  const c = new ProcConnector({ subtree: [root.pid], seed: false }).start();
  t.after(() => c.stop());
  const rec = record(c);
  assert.deepEqual(
    c.snapshot().map((r) => r.pid),
    [root.pid],
  );
  root.stdin.end('go\n');
  await rec.until(exited(root.pid));
  assert.ok(rec.events.some((e) => e.event === 'exec' && e.argv?.[0] === '/bin/sleep'));
  assert.equal(rec.events.filter((e) => e.pid === before).length, 0);
});

test('subtree: bad values are a TypeError or RangeError at once; a pid that is not a running process is ESRCH at start()', async (t) => {
  for (const bad of [0, -1, 1.5, '1', [], [1, 'x'], [0x400000], new Array(1025).fill(1), null, [undefined], new Array(2), [process.pid, undefined]]) {
    assert.throws(
      () => new ProcConnector({ subtree: bad }),
      (e) => e instanceof TypeError || e instanceof RangeError,
      String(bad),
    );
  }
  const gone = spawn('true');
  await once(gone, 'exit');
  const startFails = (subtree) =>
    assert.throws(
      () => new ProcConnector({ subtree }).start(),
      (e) => e instanceof ProcConnectorError && e.code === 'ESRCH',
      String(subtree),
    );
  startFails([process.pid, gone.pid]);
  assert.throws(() => new ProcConnector({ subtree: [process.pid, gone.pid] }).start(), { message: `subtree: no process ${gone.pid} is running` });
  // A thread's id is not a process's.
  startFails(
    fs
      .readdirSync(`/proc/${process.pid}/task`)
      .map(Number)
      .find((id) => id !== process.pid),
  );
  // Nor is a zombie's (its parent never reaps it).
  const neverReaps = 'import os, sys, time\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(5)';
  const parent = spawn('python3', ['-c', neverReaps], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => parent.kill());
  const [line] = await once(readline.createInterface({ input: parent.stdout }), 'line');
  const zombie = Number(line);
  await until(() => /^State:\s*Z/m.test(fs.readFileSync(`/proc/${zombie}/status`, 'latin1')), 5000, `${zombie} to be a zombie`);
  startFails(zombie);
});
