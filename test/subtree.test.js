'use strict';
// ProcConnector's `subtree`: only some processes and their descendants are followed. The
// hazards: a busy host leaking into the subtree's events, or costing /proc reads and table
// slots; a descendant lost when its parent exits first (a double fork); a root that is not
// a process accepted silently.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const readline = require('node:readline');
const { ProcConnector, ProcConnectorError } = require('..');
const { record, exited } = require('./helpers');

/** Spawns /bin/true over and over until the returned stop() is called; the pids it made. */
function busyHost() {
  let stop = false;
  const pids = [];
  const loop = (async () => {
    while (!stop) {
      const p = spawn('/bin/true', ['pm-outside-the-subtree'], { stdio: 'ignore' });
      pids.push(p.pid);
      await once(p, 'exit');
    }
  })();
  return {
    pids,
    stop: async () => {
      stop = true;
      await loop;
    },
  };
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
  const host = busyHost();
  t.after(() => host.stop());
  const c = new ProcConnector({ subtree: root.pid, seed: true }).start();
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
  assert.ok(parent !== root.pid && exitAt(parent) < exitAt(daemon().pid), 'followed after its parent, a child of the root, had exited');
  assert.equal(evs.find((e) => e.event === 'exit' && e.pid === root.pid).code, 3);
  const s = c.stats();
  assert.ok(s.received > s.delivered + host.pids.length, `the kernel's events were all read (${s.received}), few delivered (${s.delivered})`);
  assert.ok(s.tableSize <= 2, `table size ${s.tableSize}`);
});

test('subtree without seed: the root and what it forks from now on; a child it had before is not followed', async (t) => {
  const root = spawn('sh', ['-c', 'sleep 30 & s=$!; echo $s; read go; /bin/sleep 0.05; kill $s; wait $s'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await once(readline.createInterface({ input: root.stdout }), 'line');
  const before = Number(line);
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

test('subtree: bad values are a TypeError or RangeError at once; a pid that is not a running process is ESRCH at start()', () => {
  for (const bad of [0, -1, 1.5, '1', [], [1, 'x'], [0x400000], new Array(1025).fill(1), null]) {
    assert.throws(
      () => new ProcConnector({ subtree: bad }),
      (e) => e instanceof TypeError || e instanceof RangeError,
      String(bad),
    );
  }
  const gone = spawn('true');
  return once(gone, 'exit').then(() => {
    assert.throws(
      () => new ProcConnector({ subtree: [process.pid, gone.pid] }).start(),
      (e) => e instanceof ProcConnectorError && e.code === 'ESRCH' && e.message === `subtree: no process ${gone.pid} is running`,
    );
    // A thread's id is not a process's.
    const tid = require('node:fs')
      .readdirSync(`/proc/${process.pid}/task`)
      .map(Number)
      .find((id) => id !== process.pid);
    assert.throws(
      () => new ProcConnector({ subtree: tid }).start(),
      (e) => e.code === 'ESRCH',
    );
  });
});
