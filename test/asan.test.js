'use strict';
// The addon under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer: start/stop
// cycles, failed starts, dropped connectors and exits with connectors still running free
// everything the addon allocated. Runs only inside `bash scripts/asan.sh`, which builds the
// sanitized addon into build/asan/pkg/ and runs node with GCC's libasan preloaded; anywhere
// else (a plain `npm test`) it skips.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync, execFileSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const PROBE = path.join(ROOT, 'asan', 'asan_probe.node'); // not in build/Release: node-gyp-build would take it
const ADDON = path.join(ROOT, 'build', 'Release', 'procmonitor.node');
const underAsan = process.env.PROCMONITOR_ASAN === '1' && fs.existsSync(PROBE);
const skip = underAsan ? false : 'not under AddressSanitizer (run `bash scripts/asan.sh`)';

const START = { events: 3 | 0x80000000, threads: false, rcvbuf: 1 << 20, kernelFilter: true, queueMax: 65536, tableMax: 65536, ackTimeout: 1000, nice: 0 };

function gcAll() {
  require('v8').setFlagsFromString('--expose-gc');
  const gc = require('vm').runInNewContext('gc');
  for (let i = 0; i < 4; i++) gc();
}

const turn = () => new Promise((r) => setImmediate(r));

// Heap bytes the sanitizer's allocator holds after `fn` ran `n` times, beyond a warmed-up
// baseline; and whether an on-demand leak check finds unreachable blocks. The event loop
// turns after each run: a released thread-safe function is finalized there, not at once.
async function growth(fn, n) {
  const probe = require(PROBE);
  // Warm-up: modules loaded, code compiled, buffers at their working size.
  for (let i = 0; i < 50; i++) {
    await fn(i);
    await turn();
  }
  gcAll();
  await new Promise((r) => setTimeout(r, 20));
  gcAll();
  const before = probe.allocated();
  for (let i = 0; i < n; i++) {
    await fn(i);
    await turn();
  }
  gcAll();
  await new Promise((r) => setTimeout(r, 20));
  gcAll();
  const after = probe.allocated();
  return { perCycle: (after - before) / n, total: after - before, leaks: probe.leakCheck() };
}

test('the addon under test is the sanitized one', { skip }, () => {
  const binding = require('node-gyp-build')(ROOT);
  assert.ok(binding.Connector);
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  assert.match(maps, /libasan\.so/, 'libasan is not loaded');
  assert.ok(maps.includes(ADDON), `node-gyp-build did not load ${ADDON}`);
  assert.ok(!maps.includes(path.join('prebuilds', 'linux-')), 'a prebuild was loaded');
});

test('300 start/stop cycles of one connector, with process churn: nothing leaks, nothing grows', { skip }, async () => {
  const binding = require(ADDON);
  // The addon hands over NDJSON lines and, per line, 3 numbers (end, kind, uid): not needed here.
  const c = new binding.Connector(() => {});
  const r = await growth((i) => {
    c.start(START);
    if (i % 10 === 0) execFileSync('/bin/true');
    c.stop();
  }, 300);
  assert.equal(r.leaks, 0, 'LeakSanitizer found unreachable blocks (see the report on stderr)');
  // The connector keeps its buffers between runs; 300 runs may not add up to 300 of anything.
  assert.ok(r.perCycle < 512, `heap grew by ${r.total} bytes over 300 cycles (${r.perCycle.toFixed(0)}/cycle)`);
});

test('start/stop cycles with ancestors on every event, cgroups, threads, snapshot() and ancestry() in a loop: nothing leaks', { skip }, async () => {
  const binding = require(ADDON);
  const { EVENT_BITS, parseLines } = require(path.join(ROOT, 'dist', 'events'));
  const ALL = Object.values(EVENT_BITS).reduce((m, b) => (m | b) >>> 0, 0);
  // (With every context group, an environment variable and a filter that passes nearly all.)
  const opts = {
    ...START,
    events: ALL,
    threads: true,
    ancestorEvents: ALL,
    ancestorDepth: 64,
    cgroups: true,
    seed: true,
    context: 7,
    env: ['PATH'],
    filter: [
      'exclude',
      'argv',
      '/^pm-never-[0-9]+$/',
      'match',
      'event',
      'fork',
      'match',
      'event',
      'exec',
      'match',
      'event',
      'exit',
      'match',
      'event',
      'uid',
      'match',
      'event',
      'comm',
    ],
  };
  const seen = { events: 0, ancestors: 0, cgroup: 0, thread: 0, records: 0, chains: 0 };
  const count = (buf) => {
    for (const e of parseLines(buf)) {
      seen.events++;
      if (Array.isArray(e.ancestors) && e.ancestors.length > 0) seen.ancestors++;
      if (typeof e.cgroup === 'string') seen.cgroup++;
      if (e.thread === true) seen.thread++;
    }
  };
  const c = new binding.Connector(count);
  // The churn is not sanitized (no LD_PRELOAD): python3's own blocks at exit are not ours.
  // It forks, execs, starts and joins threads, exits: every one of those events carries
  // ancestors, the fork/exec/exit ones a cgroup.
  const churn = ['-c', 'import threading\nfor _ in range(3):\n  t = threading.Thread(target=int); t.start(); t.join()'];
  const plain = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: 'ignore' };
  const r = await growth((i) => {
    c.start(opts);
    if (i % 10 === 0) execFileSync('python3', churn, plain);
    for (let j = 0; j < 3; j++) {
      const table = JSON.parse(c.snapshot());
      assert.ok(
        table.some((p) => p.pid === process.pid),
        'this process is in the live table',
      );
      seen.records += table.length;
      const text = c.ancestry(process.pid);
      const chain = text && JSON.parse(text);
      assert.ok(chain && chain[0].pid === process.pid, 'ancestry() starts at the process asked for');
      seen.chains += chain.length;
      assert.equal(c.ancestry(0x7ffffffe), null); // a pid the table does not know
    }
    // stop() reads what is left in the socket: the churn's events are all here or delivered.
    count(c.stop()[0]);
  }, 300);
  assert.equal(r.leaks, 0, 'LeakSanitizer found unreachable blocks (see the report on stderr)');
  assert.ok(r.perCycle < 512, `heap grew by ${r.total} bytes over 300 cycles (${r.perCycle.toFixed(0)}/cycle)`);
  // The paths meant to be exercised were: events with ancestors, cgroups and threads.
  assert.ok(seen.ancestors > 0 && seen.thread > 0, JSON.stringify(seen));
  if (fs.existsSync('/proc/self/cgroup')) assert.ok(seen.cgroup > 0, JSON.stringify(seen));
  assert.ok(seen.records > 0 && seen.chains > 0, JSON.stringify(seen));
});

test('connectors created, started, stopped and dropped are freed by the garbage collector', { skip }, async () => {
  const binding = require(ADDON);
  const r = await growth(() => {
    const c = new binding.Connector(() => {});
    c.start(START);
    c.stop();
  }, 150);
  assert.equal(r.leaks, 0);
  assert.ok(r.perCycle < 512, `heap grew by ${r.total} bytes over 150 connectors`);
});

test('failed starts (no acknowledgement in time) free what they opened', { skip }, async () => {
  const binding = require(ADDON);
  const c = new binding.Connector(() => {});
  const fdsBefore = fs.readdirSync('/proc/self/fd').length;
  const r = await growth(() => {
    assert.throws(
      () => c.start({ ...START, ackTimeout: 0 }),
      (e) => e.code === 'ENOACK',
    );
  }, 200);
  assert.equal(r.leaks, 0);
  assert.ok(r.perCycle < 256, `heap grew by ${r.total} bytes over 200 failed starts`);
  assert.equal(fs.readdirSync('/proc/self/fd').length, fdsBefore, 'file descriptors leaked');
});

test('parse() of garbage: no sanitizer report, nothing leaks', { skip }, async () => {
  const binding = require(ADDON);
  let x = 12345;
  const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) & 0xff;
  const r = await growth(() => {
    const b = Buffer.alloc(1 + rnd() * 3);
    for (let j = 0; j < b.length; j++) b[j] = rnd();
    if (b.length >= 16) b.writeUInt32LE(b.length - (rnd() & 7), 0);
    binding.parse(b);
  }, 2000);
  assert.equal(r.leaks, 0);
});

test('exit with connectors running, in the main thread and in terminated workers: LeakSanitizer clean', { skip }, () => {
  const script = `
    const { Worker } = require('node:worker_threads');
    const { execFileSync } = require('node:child_process');
    const binding = require(${JSON.stringify(ADDON)});
    const START = ${JSON.stringify(START)};
    const keep = [];
    for (let i = 0; i < 3; i++) { const c = new binding.Connector(() => {}); c.start(START); keep.push(c); }
    const unheld = new binding.Connector(() => {}); unheld.start(START);
    const src = 'const b = require(' + JSON.stringify(${JSON.stringify(ADDON)}) + '); const c = new b.Connector(() => {}); c.start(' + JSON.stringify(START) + '); require("worker_threads").parentPort.postMessage(1);';
    (async () => {
      for (let i = 0; i < 4; i++) {
        const w = new Worker(src, { eval: true });
        await new Promise((r) => w.once('message', r));
        execFileSync('/bin/true');
        await w.terminate();
      }
      execFileSync('/bin/true');
      // Exit on an empty event loop with the connectors still running: the environment's
      // cleanup hooks stop them.
      for (const c of keep) c.unref();
      unheld.unref();
    })();
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Sanitizer|runtime error/);
});
