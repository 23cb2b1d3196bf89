#!/usr/bin/env node
'use strict';
/*
 * What the connector's live process table costs, per 1,000 live processes.
 *
 *   npm run bench:table [-- --ns 1000,2000,4000 --reps 5 --storm 3000 --storm-reps 5 --out FILE]
 *
 * Memory: starts N long-lived `/bin/sleep 600` (argv[0] `pmtable-sleep-<i>`, so each has its own
 * command line), then, in a fresh Node process each time, a ProcConnector with `seed: true` and
 * one with `seed: false`: RSS (VmRSS, read from outside) after start() + snapshot() (which waits
 * for the /proc scan), and again after the snapshot array is dropped and collected (the native
 * table alone); the time until snapshot() returns. CPU: in a fresh Node process, the default
 * connector (ancestors on exec, cgroups on) and one with `ancestors: 'none', cgroups: false`
 * while `sh -c 'for i in $(seq N); do /bin/true; done'` runs: process.cpuUsage() per 1,000
 * events received. Every process started here is killed at the end, error or not.
 * Prints a table, writes bench/results/table.json.
 */
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results');

// ---------- the measured process (a fresh Node each time) ----------
if (process.argv[2] === '--child') {
  const { ProcConnector } = require(ROOT);
  const mode = process.argv[3];
  const opts = JSON.parse(process.argv[4]);
  const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
  // one line from the parent per step: the parent reads our RSS in between
  let buf = '';
  const waiting = [];
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
    }
  });
  const next = () => new Promise((r) => waiting.push(r));
  const gc = () => {
    global.gc();
    global.gc();
  };

  (async () => {
    if (mode === 'mem') {
      gc();
      say({ phase: 'before' });
      await next();
      const t0 = process.hrtime.bigint();
      const c = new ProcConnector({ events: 'fork,exec,exit', ...opts }).start();
      const t1 = process.hrtime.bigint();
      // ancestry() waits for the /proc scan like snapshot() but makes (almost) nothing in JS:
      // the RSS here is the native table's
      c.ancestry(process.pid);
      const t2 = process.hrtime.bigint();
      say({ phase: 'scanned' });
      await next();
      const t3 = process.hrtime.bigint();
      const snap = c.snapshot();
      const t4 = process.hrtime.bigint();
      say({
        phase: 'snapshot',
        start_ms: Number(t1 - t0) / 1e6,
        scan_ms: Number(t2 - t0) / 1e6,
        snapshot_ms: Number(t4 - t3) / 1e6,
        records: snap.length,
        learned: snap.filter((r) => r.learned).length,
        stats_table_size: c.stats().tableSize,
        heap_mb: process.memoryUsage().heapUsed / 1048576,
      });
      await next();
      c.stop();
      process.exit(0);
    } else if (mode === 'cpu') {
      const c = new ProcConnector({ events: 'fork,exec,exit', ...opts }).start();
      c.snapshot(); // the /proc scan is over: only the storm's work is counted below
      let events = 0,
        lost = 0,
        storm = 0,
        stormPid = 0,
        exitSeen = false,
        endSeen = null,
        counting = false;
      // the storm: what the parent forks while we count (it forks nothing else meanwhile), and
      // everything that descends from it
      const tree = new Set();
      c.on('batch', (b) => {
        events += b.length;
        for (const e of b) {
          if (e.event === 'lost') lost += e.count;
          else if (e.event === 'fork') {
            if (tree.has(e.parent_pid) || (counting && e.parent_pid === process.ppid)) (tree.add(e.child_pid), storm++);
          } else if (tree.has(e.pid)) {
            storm++;
            if (e.event === 'exit') {
              tree.delete(e.pid);
              if (e.pid === stormPid) {
                exitSeen = true;
                if (endSeen) endSeen();
              }
            }
          }
        }
      });
      await new Promise((r) => setTimeout(r, 200));
      const cpu0 = process.cpuUsage();
      const ev0 = events;
      counting = true;
      say({ phase: 'ready' });
      stormPid = Number(await next()); // the storm's shell
      await next(); // the storm is over for the parent; wait for the shell's exit here
      await new Promise((r) => {
        if (exitSeen) return r();
        endSeen = r;
        setTimeout(r, 10000);
      });
      const cpu = process.cpuUsage(cpu0);
      const st = c.stats();
      c.stop();
      say({ phase: 'done', cpu_user_s: cpu.user / 1e6, cpu_system_s: cpu.system / 1e6, events: events - ev0, storm_events: storm, lost, end_seen: exitSeen, stats: st });
      await next();
      process.exit(0);
    }
  })().catch((e) => {
    process.stderr.write(`child: ${e.stack || e}\n`);
    process.exit(1);
  });
  return;
}

// ---------- the parent ----------
const { memOf, machine: benchMachine, parseFlags } = require('./run');

function parseArgs(argv) {
  const o = parseFlags(argv, { file: __filename, header: [3, 16] });
  return {
    ns: String(o.ns ?? '1000,2000,4000')
      .split(',')
      .map(Number)
      .sort((a, b) => a - b),
    reps: Number(o.reps ?? 5),
    storm: Number(o.storm ?? 3000),
    stormReps: Number(o['storm-reps'] ?? 5),
    out: o.out ?? path.join(RESULTS, 'table.json'),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// every process started here: killed at the end whatever happens
const live = new Map(); // pid -> ChildProcess
function spawnTracked(file, args, options) {
  const c = spawn(file, args, options);
  c.once('spawn', () => live.set(c.pid, c));
  c.once('exit', () => live.delete(c.pid));
  return c;
}
function killAll() {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}
let restore = () => {};
process.on('exit', () => {
  killAll();
  restore();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: killing ${live.size} processes\n`);
    process.exit(130);
  });

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function killAndWait(children) {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map(exited));
}

/** A fresh Node running this file in child mode; talk() sends a line and waits for its next JSON line. */
function measured(mode, opts) {
  const c = spawnTracked(process.execPath, ['--expose-gc', __filename, '--child', mode, JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  const lines = [];
  const waiters = [];
  c.stdout.setEncoding('utf8');
  c.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  c.once('exit', () => waiters.splice(0).forEach((w) => w()));
  const read = async (ms = 60000) => {
    const end = Date.now() + ms;
    while (!lines.length) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`measured process exited (${c.exitCode ?? c.signalCode})`);
      if (Date.now() > end) throw new Error('measured process does not answer');
      await new Promise((r) => {
        waiters.push(r);
        setTimeout(r, 500);
      });
    }
    return lines.shift();
  };
  return {
    proc: c,
    read,
    send: (line = '') => c.stdin.write(line + '\n'),
    async close() {
      c.stdin.end();
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited(c);
      clearTimeout(t);
    },
  };
}

// ---------- limits ----------
function processCount() {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length;
}

function checkLimits(need) {
  const notes = [];
  const total = processCount() + need + 500;
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  if (pidMax < total) {
    if (process.getuid() !== 0) throw new Error(`pid_max ${pidMax} < ${total} processes needed; raise /proc/sys/kernel/pid_max (root)`);
    fs.writeFileSync('/proc/sys/kernel/pid_max', String(Math.max(total * 2, 65536)));
    const prev = restore;
    restore = () => {
      prev();
      try {
        fs.writeFileSync('/proc/sys/kernel/pid_max', String(pidMax));
      } catch {}
    };
    notes.push(`pid_max raised from ${pidMax} for the run`);
  }
  const lim = fs.readFileSync('/proc/self/limits', 'utf8').match(/^Max processes\s+(\S+)/m);
  const nproc = lim && lim[1] !== 'unlimited' ? Number(lim[1]) : Infinity;
  // root (CAP_SYS_RESOURCE / CAP_SYS_ADMIN) is not held to RLIMIT_NPROC
  if (nproc < total && process.getuid() !== 0) throw new Error(`ulimit -u is ${nproc} < ${total}: run with a higher \`ulimit -u\``);
  for (const f of ['/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max']) {
    try {
      const v = fs.readFileSync(f, 'utf8').trim();
      if (v !== 'max' && Number(v) < total) throw new Error(`${f} is ${v} < ${total} processes needed`);
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
  }
  return notes;
}

// ---------- the long-lived processes ----------
const sleepers = [];
async function addSleepers(upTo) {
  const batch = [];
  for (let i = sleepers.length; i < upTo; i++) {
    const c = spawnTracked('/bin/sleep', ['600'], { argv0: `pmtable-sleep-${i}`, stdio: 'ignore' });
    batch.push(
      new Promise((res, rej) => {
        c.once('spawn', res);
        c.once('error', rej);
      }),
    );
    sleepers.push(c);
    if (batch.length % 200 === 0) await Promise.all(batch); // keep the spawn queue short
  }
  await Promise.all(batch);
  const dead = sleepers.filter((c) => c.exitCode !== null || c.signalCode !== null).length;
  if (dead) throw new Error(`${dead} sleepers died`);
}

// ---------- measurements ----------
async function memRun(seed) {
  const m = measured('mem', { seed });
  try {
    await m.read(); // before
    const before = memOf(m.proc.pid);
    m.send();
    await m.read(); // scanned
    const scanned = memOf(m.proc.pid);
    m.send();
    const s = await m.read(); // snapshot
    const snapped = memOf(m.proc.pid);
    m.send();
    await m.close();
    return {
      seed,
      rss_before_mb: before.rss_mb,
      rss_scanned_mb: scanned.rss_mb,
      rss_snapshot_mb: snapped.rss_mb,
      hwm_mb: snapped.hwm_mb,
      heap_snapshot_mb: s.heap_mb,
      start_ms: s.start_ms,
      scan_ms: s.scan_ms,
      snapshot_ms: s.snapshot_ms,
      records: s.records,
      learned: s.learned,
      stats_table_size: s.stats_table_size,
    };
  } catch (e) {
    m.proc.kill('SIGKILL');
    throw e;
  }
}

async function cpuRun(label, opts, n) {
  const m = measured('cpu', opts);
  try {
    await m.read(); // ready: cpu counted from here
    const t0 = Date.now();
    const sh = spawnTracked('sh', ['-c', `for i in $(seq ${n}); do /bin/true; done`], { stdio: 'ignore' });
    await new Promise((res, rej) => {
      sh.once('spawn', res);
      sh.once('error', rej);
    });
    m.send(String(sh.pid));
    await exited(sh);
    const secs = (Date.now() - t0) / 1000;
    m.send();
    const d = await m.read(30000);
    m.send();
    await m.close();
    const cpu = d.cpu_user_s + d.cpu_system_s;
    return {
      label,
      opts,
      storm_s: secs,
      spawns_per_s: Math.round(n / secs),
      cpu_s: cpu,
      cpu_user_s: d.cpu_user_s,
      cpu_system_s: d.cpu_system_s,
      events: d.events,
      storm_events: d.storm_events,
      lost: d.lost,
      end_seen: d.end_seen,
      cpu_ms_per_1k_events: (cpu * 1e6) / d.events,
      stats: d.stats,
    };
  } catch (e) {
    m.proc.kill('SIGKILL');
    throw e;
  }
}

// ---------- report ----------
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};
const r2 = (x, d = 2) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);

function fmtTable(head, rows) {
  const cells = rows.map((r) => r.map((x) => (x === null || x === undefined ? '-' : String(x))));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => '| ' + c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join(' | ') + ' |';
  return [line(head), '|' + w.map((n, i) => (i === 0 ? ':' : '') + '-'.repeat(n + 1) + (i === 0 ? '' : ':')).join('|') + '|', ...cells.map(line)].join('\n');
}

/** Least-squares slope of y over x. */
function slope(pts) {
  const n = pts.length;
  if (n < 2) return null;
  const mx = pts.reduce((a, p) => a + p[0], 0) / n;
  const my = pts.reduce((a, p) => a + p[1], 0) / n;
  const sxx = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return sxx ? pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx : null;
}

/** The machine, as bench/run.js describes it, and how busy it was. */
function machine() {
  return { ...benchMachine(), processes_before: processCount() };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const m = machine();
  const command = `npm run bench:table${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  process.stderr.write(`procmonitor table bench: ${m.nproc} x ${m.cpu}, Linux ${m.kernel}, Node ${m.node}, ${m.processes_before} processes running\n`);
  const notes = checkLimits(opts.ns[opts.ns.length - 1]);
  for (const n of notes) process.stderr.write(`note: ${n}\n`);
  const t0 = Date.now();

  // 1. memory and scan time, N extra processes at a time
  const mem = [];
  for (const n of opts.ns) {
    const ts = Date.now();
    await addSleepers(n);
    process.stderr.write(`${n} sleepers running (${((Date.now() - ts) / 1000).toFixed(1)} s to start them), ${processCount()} processes\n`);
    await sleep(500);
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const seed of rep % 2 ? [false, true] : [true, false]) {
        const r = await memRun(seed);
        r.n = n;
        r.rep = rep;
        mem.push(r);
        process.stderr.write(
          `  N=${n} seed=${seed ? 'on ' : 'off'} [${rep + 1}/${opts.reps}] RSS ${r.rss_before_mb.toFixed(1)} -> ${r.rss_scanned_mb.toFixed(1)} (scanned) -> ${r.rss_snapshot_mb.toFixed(1)} MB (snapshot), ${r.records} records, scan ${r.scan_ms.toFixed(1)} ms + snapshot() ${r.snapshot_ms.toFixed(1)} ms\n`,
        );
      }
    }
  }
  process.stderr.write(`killing ${sleepers.length} sleepers\n`);
  await killAndWait(sleepers);

  // RSS growth within each run (after − before), median per N and seed; Δ = seed on − seed off
  const memRows = [];
  const memSummary = [];
  for (const n of opts.ns) {
    const on = mem.filter((r) => r.n === n && r.seed);
    const off = mem.filter((r) => r.n === n && !r.seed);
    const med = (rs, f) => median(rs.map(f));
    const d = (f) => med(on, f) - med(off, f);
    const x = {
      n,
      records_seeded: med(on, (r) => r.records),
      records_unseeded: med(off, (r) => r.records),
      rss_seeded_mb: r2(med(on, (r) => r.rss_snapshot_mb)),
      rss_unseeded_mb: r2(med(off, (r) => r.rss_snapshot_mb)),
      delta_table_mb: r2(
        d((r) => r.rss_scanned_mb - r.rss_before_mb),
        3,
      ),
      delta_snapshot_mb: r2(
        d((r) => r.rss_snapshot_mb - r.rss_before_mb),
        3,
      ),
      delta_heap_snapshot_mb: r2(
        d((r) => r.heap_snapshot_mb),
        3,
      ),
      scan_ms: r2(d((r) => r.scan_ms)),
      snapshot_ms: r2(d((r) => r.snapshot_ms)),
      until_snapshot_ms: r2(d((r) => r.scan_ms + r.snapshot_ms)),
    };
    // the table entries the scan added: every process in /proc (N sleepers + the rest)
    x.entries = x.records_seeded - x.records_unseeded;
    const per1k = (v, dd = 1) => r2((v * 1000) / x.entries, dd);
    x.table_kb_per_1k = per1k(x.delta_table_mb * 1024, 0);
    x.snapshot_kb_per_1k = per1k(x.delta_snapshot_mb * 1024, 0);
    x.scan_ms_per_1k = per1k(x.scan_ms);
    x.until_snapshot_ms_per_1k = per1k(x.until_snapshot_ms);
    memSummary.push(x);
    memRows.push([
      String(n),
      x.entries,
      x.rss_unseeded_mb.toFixed(1),
      x.rss_seeded_mb.toFixed(1),
      x.delta_table_mb.toFixed(2),
      x.table_kb_per_1k,
      x.delta_snapshot_mb.toFixed(2),
      x.snapshot_kb_per_1k,
      x.until_snapshot_ms.toFixed(1),
      x.scan_ms_per_1k.toFixed(1),
      x.until_snapshot_ms_per_1k.toFixed(1),
    ]);
  }
  // the marginal cost: slope over the entries (fixed costs drop out)
  const fitOf = (f, d) => {
    const v = slope(memSummary.map((x) => [x.entries, f(x)]));
    return v === null ? null : r2(v * 1000, d);
  };
  const fit = {
    table_kb_per_1k: fitOf((x) => x.delta_table_mb * 1024, 0),
    snapshot_kb_per_1k: fitOf((x) => x.delta_snapshot_mb * 1024, 0),
    scan_ms_per_1k: fitOf((x) => x.scan_ms, 1),
    until_snapshot_ms_per_1k: fitOf((x) => x.until_snapshot_ms, 1),
  };
  const f = (v) => (v === null ? '-' : String(v));
  memRows.push(['slope', '-', '-', '-', '-', f(fit.table_kb_per_1k), '-', f(fit.snapshot_kb_per_1k), '-', f(fit.scan_ms_per_1k), f(fit.until_snapshot_ms_per_1k)]);
  const memTable = fmtTable(
    [
      'extra procs',
      'table entries',
      'RSS seed off MB',
      'RSS seed on MB',
      'Δ table MB',
      'KB/1k',
      'Δ table+snapshot MB',
      'KB/1k',
      'Δ ms to snapshot()',
      'scan ms/1k',
      'to snapshot() ms/1k',
    ],
    memRows,
  );

  // 2. CPU of keeping the table while short processes run
  const configs = [
    { label: 'default (ancestors exec, cgroups on)', opts: {} },
    { label: "ancestors 'none', cgroups off", opts: { ancestors: 'none', cgroups: false } },
  ];
  const cpu = [];
  for (let rep = 0; rep < opts.stormReps; rep++) {
    for (const cfg of rep % 2 ? [...configs].reverse() : configs) {
      const r = await cpuRun(cfg.label, cfg.opts, opts.storm);
      r.rep = rep;
      cpu.push(r);
      process.stderr.write(
        `  ${cfg.label.padEnd(38)} [${rep + 1}/${opts.stormReps}] ${r.spawns_per_s} spawns/s, ${r.events} events (${r.storm_events} of the storm, lost ${r.lost}), CPU ${r.cpu_s.toFixed(3)} s = ${r.cpu_ms_per_1k_events.toFixed(2)} ms/1k ev${r.end_seen ? '' : ', END NOT SEEN'}\n`,
      );
    }
  }
  const cpuSummary = configs.map((cfg) => {
    const rs = cpu.filter((r) => r.label === cfg.label);
    return {
      label: cfg.label,
      opts: cfg.opts,
      runs: rs.length,
      spawns_per_s: median(rs.map((r) => r.spawns_per_s)),
      events: median(rs.map((r) => r.events)),
      storm_events: median(rs.map((r) => r.storm_events)),
      lost: Math.max(...rs.map((r) => r.lost)),
      cpu_s: r2(median(rs.map((r) => r.cpu_s)), 3),
      cpu_user_s: r2(median(rs.map((r) => r.cpu_user_s)), 3),
      cpu_system_s: r2(median(rs.map((r) => r.cpu_system_s)), 3),
      cpu_ms_per_1k_events: r2(median(rs.map((r) => r.cpu_ms_per_1k_events))),
    };
  });
  const [def, bare] = cpuSummary;
  const cpuRatio = def && bare && bare.cpu_ms_per_1k_events ? r2(def.cpu_ms_per_1k_events / bare.cpu_ms_per_1k_events) : null;
  const cpuTable = fmtTable(
    ['connector', 'spawns/s', 'events', 'storm events', 'lost', 'CPU s (user+sys)', 'CPU ms/1k ev'],
    cpuSummary.map((s) => [
      s.label,
      s.spawns_per_s,
      s.events,
      s.storm_events,
      s.lost,
      `${s.cpu_s.toFixed(3)} (${s.cpu_user_s.toFixed(3)}+${s.cpu_system_s.toFixed(3)})`,
      s.cpu_ms_per_1k_events.toFixed(2),
    ]),
  );

  const seconds = Math.round((Date.now() - t0) / 1000);
  process.stdout.write(
    `\nMemory and scan time (medians of ${opts.reps}; Δ = seed on − seed off of the RSS growth from start(), /1k = per 1,000 table entries the scan added; RSS after snapshot()):\n\n${memTable}\n`,
  );
  process.stdout.write(
    `\nCPU while \`sh -c 'for i in $(seq ${opts.storm}); do /bin/true; done'\` runs (medians of ${opts.stormReps}):\n\n${cpuTable}\n\ndefault / bare CPU per event: ${cpuRatio}\n`,
  );
  const result = {
    date: new Date().toISOString(),
    command,
    machine: m,
    notes,
    options: opts,
    seconds,
    memory: { table: memTable, summary: memSummary, fit, runs: mem },
    cpu: { table: cpuTable, summary: cpuSummary, ratio_default_vs_bare: cpuRatio, runs: cpu },
  };
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, JSON.stringify(result, null, 1) + '\n');
  process.stdout.write(`\n${seconds} s; results in ${path.relative(process.cwd(), opts.out)}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:table: ${e.stack || e}\n`);
  process.exitCode = 1;
  killAll();
  // the 'exit' handler kills whatever is left; spawned handles would keep us alive otherwise
  setTimeout(() => process.exit(1), 100);
});
