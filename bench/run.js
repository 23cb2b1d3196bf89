#!/usr/bin/env node
'use strict';
/*
 * The procmonitor benchmark: a spawn storm judged from ground truth.
 *
 *   npm run bench [-- --quick] [-- --n 20000 --p 2 --n1ms 5000 --p1ms 8 --clients 1,10,100
 *                  --stalled 1 --reps 3 --rates 500,1000 --rate-secs 5 --seed-rate 50 --seed-clients 10
 *                  --only forkstat,direct,k1,k10,k100,latency,seed,trace]
 *
 * Builds the C load generator, children and socket clients (gcc) into bench/build/, then for each
 * configuration starts the target (forkstat, our --direct mode, our daemon with K reading
 * clients + S stalled ones), fires the storm, waits until every stream has seen the
 * generator's own exit (which follows all its children's), and judges every stream against
 * the pids the generator recorded. Prints a table, writes bench/results/latest.json.
 * `seed`: K TCP clients at an ordinary rate, as the seed's client (nothing after the password:
 * a line per write, paced) against the same clients asking for the batched stream, to price
 * the per-line writes (daemon CPU per event, side by side) and count reads holding more than
 * one line (what a client parsing each read as one JSON object would fail on).
 * Run as root (forkstat needs it; the daemon needs root or CAP_NET_ADMIN unless the kernel admits unprivileged subscribers).
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const BUILD = path.join(__dirname, 'build');
const RESULTS = path.join(__dirname, 'results');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'pmbench-'));
const DAEMON = path.join(ROOT, 'bin', 'procMonitor');
const TICK = 100; // USER_HZ: /proc/PID/stat counts CPU in 1/100 s

// ---------- options ----------
/**
 * A bench script's flags: `--name value` and `--name=value` as o[name] = value, the `booleans`
 * (no value) as true or false. --help (-h) prints lines header[0] to header[1] - 1 of `file`
 * (its comment) and exits.
 */
function parseFlags(argv, { file, header, booleans = [] }) {
  const o = Object.fromEntries(booleans.map((b) => [b, false]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--') && booleans.includes(a.slice(2))) o[a.slice(2)] = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .slice(...header)
          .join('\n') + '\n',
      );
      process.exit(0);
    } else if (a.startsWith('--')) {
      const [k, v] = a.includes('=') ? a.slice(2).split('=', 2) : [a.slice(2), argv[++i]];
      if (v === undefined) throw new Error(`${a} needs a value`);
      o[k] = v;
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function parseArgs(argv) {
  const o = parseFlags(argv, { file: __filename, header: [2, 15], booleans: ['quick', 'keep'] });
  const q = o.quick;
  const num = (k, d) => (o[k] !== undefined ? Number(o[k]) : d);
  return {
    quick: q,
    keep: o.keep,
    n: num('n', q ? 8000 : 20000),
    p: num('p', 2),
    n1ms: num('n1ms', q ? 1500 : 5000),
    p1ms: num('p1ms', 8),
    clients: String(o.clients ?? '1,10,100')
      .split(',')
      .map(Number),
    stalled: num('stalled', 1),
    reps: num('reps', q ? 1 : 3),
    rates: String(o.rates ?? (q ? '1000' : '500,1000'))
      .split(',')
      .map(Number),
    rateSecs: num('rate-secs', q ? 3 : 5),
    seedRate: num('seed-rate', 50),
    seedClients: num('seed-clients', 10),
    only: o.only ? String(o.only).split(',') : null,
    out: o.out ?? path.join(RESULTS, 'latest.json'),
  };
}

// ---------- build ----------
function build() {
  fs.mkdirSync(BUILD, { recursive: true });
  const cc = (args) => execFileSync('gcc', args, { cwd: __dirname, stdio: ['ignore', 'inherit', 'inherit'] });
  cc(['-O2', '-Wall', '-o', path.join(BUILD, 'spawnstorm'), 'spawnstorm.c']);
  cc(['-O2', '-Wall', '-o', path.join(BUILD, 'benchclient'), 'benchclient.c']);
  cc(['-static', '-O2', '-Wall', '-DLIVE_NS=1000000', '-o', path.join(BUILD, 'pmbench-1ms'), 'child.c']);
  let tiny = 'tiny.c (no libc)';
  try {
    if (process.arch !== 'x64') throw new Error('not x86_64');
    cc(['-static', '-nostdlib', '-O2', '-fno-stack-protector', '-o', path.join(BUILD, 'pmbench-tiny'), 'tiny.c']);
    const r = require('child_process').spawnSync(path.join(BUILD, 'pmbench-tiny'), ['0', '7']);
    if (r.status !== 7) throw new Error('tiny child does not work');
  } catch {
    tiny = 'child.c (static glibc)';
    cc(['-static', '-O2', '-Wall', '-o', path.join(BUILD, 'pmbench-tiny'), 'child.c']);
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli', 'daemon.js'))) throw new Error('dist/ missing: run `npm run build` first');
  return { tiny };
}

// ---------- helpers ----------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// every process started here, so that an interrupted run leaves nothing behind
const live = new Set();
const { spawn: rawSpawn } = require('child_process');
function spawnTracked(...args) {
  const c = rawSpawn(...args);
  live.add(c);
  c.once('exit', () => live.delete(c));
  return c;
}
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    for (const c of live) c.kill('SIGKILL');
    fs.rmSync(TMP, { recursive: true, force: true });
    process.exit(130);
  });

function lineReader(stream) {
  let buf = '';
  const waiters = [];
  const lines = [];
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  stream.on('end', () => {
    for (const w of waiters.splice(0)) w();
  });
  return {
    lines,
    async waitFor(pred, ms) {
      const end = Date.now() + ms;
      for (;;) {
        const hit = lines.find(pred);
        if (hit !== undefined) return hit;
        const left = end - Date.now();
        if (left <= 0) return undefined;
        await new Promise((r) => {
          waiters.push(r);
          setTimeout(r, Math.min(left, 200));
        });
      }
    },
  };
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function stop(child, sig = 'SIGTERM', ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(sig);
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited(child);
  clearTimeout(t);
}

function cpuOf(pid) {
  // whole process, and per thread (main thread = tid == pid)
  const parse = (text) => {
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK; // utime + stime (fields 14, 15)
  };
  try {
    const total = parse(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const threads = {};
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const name = Number(tid) === pid ? 'main (JS)' : comm;
        threads[`${name}#${tid}`] = parse(fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      } catch {}
    }
    return { total, threads };
  } catch {
    return null;
  }
}

function memOf(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [])[1] || 0);
    return { hwm_mb: kb('VmHWM') / 1024, rss_mb: kb('VmRSS') / 1024 };
  } catch {
    return null;
  }
}

function cpuDelta(a, b) {
  if (!a || !b) return null;
  const threads = {};
  for (const [k, v] of Object.entries(b.threads)) {
    const d = v - (a.threads[k] ?? 0);
    if (d > 0) threads[k.replace(/#\d+$/, '')] = (threads[k.replace(/#\d+$/, '')] ?? 0) + d;
  }
  for (const k of Object.keys(threads)) threads[k] = Math.round(threads[k] * 100) / 100;
  return { total: Math.round((b.total - a.total) * 100) / 100, threads };
}

function pct(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** A free TCP port on 127.0.0.1 (bound and released). */
function freePort() {
  const s = require('net').createServer();
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    }),
  );
}

// ---------- targets ----------
async function startDaemon(args, stdoutFile) {
  const out = stdoutFile ? fs.openSync(stdoutFile, 'w') : 'ignore';
  const d = spawnTracked(process.execPath, [DAEMON, ...args], { stdio: ['ignore', out, 'pipe'] });
  if (stdoutFile) fs.closeSync(out);
  const err = lineReader(d.stderr);
  const ok = await err.waitFor((l) => /watching/.test(l), 10000);
  if (!ok) {
    await stop(d, 'SIGKILL');
    throw new Error(`daemon did not start: ${err.lines.join(' | ')}`);
  }
  return { proc: d, log: err };
}

async function startForkstat(stdoutFile) {
  const out = fs.openSync(stdoutFile, 'w');
  const f = spawnTracked('forkstat', ['-l', '-e', 'fork,exec,exit'], { stdio: ['ignore', out, 'pipe'] });
  fs.closeSync(out);
  const err = lineReader(f.stderr);
  // forkstat says nothing when ready: wait until a probe process shows up in its output
  const end = Date.now() + 10000;
  while (Date.now() < end) {
    require('child_process').spawnSync('/bin/true', ['pmbench-probe']);
    await sleep(200);
    if (fs.statSync(stdoutFile).size > 0) return { proc: f, log: err };
    if (f.exitCode !== null) break;
  }
  await stop(f, 'SIGKILL');
  throw new Error(`forkstat did not start: ${err.lines.join(' | ')}`);
}

/** Waits until the file has the generator's exit (or stops growing for 3 s, or 60 s pass). */
async function waitFileEnd(file, re) {
  let size = -1;
  let still = Date.now();
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    const st = fs.statSync(file);
    if (st.size !== size) {
      size = st.size;
      still = Date.now();
      const fd = fs.openSync(file, 'r');
      const len = Math.min(size, 1 << 20);
      const b = Buffer.alloc(len);
      fs.readSync(fd, b, 0, len, size - len);
      fs.closeSync(fd);
      if (re.test(b.toString('utf8'))) return true;
    } else if (Date.now() - still > 3000) return false;
    await sleep(100);
  }
  return false;
}

// ---------- the storm ----------
async function storm(bin, n, p, rate, onPid) {
  const pidFile = path.join(TMP, `pids-${process.hrtime.bigint()}.txt`);
  const args = ['-w', '-n', String(n), '-p', String(p), '-c', bin, '-o', pidFile];
  if (rate) args.push('-r', String(rate));
  const g = spawnTracked(path.join(BUILD, 'spawnstorm'), args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = lineReader(g.stdout);
  const first = await out.waitFor((l) => l.startsWith('pid '), 5000);
  const pid = Number(first.slice(4));
  await onPid(pid);
  g.stdin.write('go\n');
  await exited(g);
  const summary = JSON.parse(await out.waitFor((l) => l.startsWith('{'), 5000));
  const name = path.basename(bin);
  const children = fs
    .readFileSync(pidFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [idx, cpid, status, wstatus] = l.split(' ').map(Number);
      return { idx, pid: cpid, status, wstatus, argv: [name, String(idx), String(status)] };
    })
    .filter((c) => c.pid > 0);
  fs.rmSync(pidFile, { force: true });
  return { ...summary, children };
}

// ---------- judging ----------
/**
 * recs: [{k:'f',pid,parent,time,recv}, {k:'e',pid,argv,missing,time,recv}, {k:'x',pid,exit_code,code,time,recv},
 *        {k:'l',count,source}] in stream order (forks of the generator and what follows for those pids).
 */
function judge(st, recs) {
  const byPid = new Map();
  const state = st.children.map(() => ({ seq: '', e: null, x: null, times: [] }));
  st.children.forEach((c, i) => {
    if (!byPid.has(c.pid)) byPid.set(c.pid, { list: [], cur: -1 });
    byPid.get(c.pid).list.push(i);
  });
  const byArgv = new Map(st.children.map((c, i) => [c.argv.join(' '), i]));
  let stray = 0;
  const lost = { lines: 0, count: 0, sources: {} };
  const current = (pid, advance) => {
    const b = byPid.get(pid);
    if (!b) return -1;
    if (advance || b.cur < 0 || state[b.list[b.cur]].seq.includes('x')) {
      if (b.cur + 1 >= b.list.length) return -1;
      b.cur++;
    }
    return b.list[b.cur];
  };
  for (const r of recs) {
    if (r.k === 'l') {
      lost.lines++;
      lost.count += r.count > 0 ? r.count : 0;
      lost.sources[r.source] = (lost.sources[r.source] ?? 0) + 1;
      continue;
    }
    let i;
    if (r.k === 'f') {
      if (r.parent !== st.pid) continue;
      i = current(r.pid, true);
    } else if (r.k === 'e' && Array.isArray(r.argv) && byArgv.has(r.argv.join(' '))) {
      i = byArgv.get(r.argv.join(' '));
      const b = byPid.get(r.pid);
      if (b && st.children[i].pid === r.pid) b.cur = b.list.indexOf(i);
    } else i = current(r.pid, false);
    if (i < 0) {
      stray++;
      continue;
    }
    const s = state[i];
    s.seq += r.k;
    s.times.push(r.recv - r.time);
    if (r.k === 'e') s.e = r;
    if (r.k === 'x') s.x = r;
  }
  let complete = 0,
    order = 0,
    statusErr = 0,
    argvOk = 0,
    argvMissing = 0,
    execs = 0,
    events = 0;
  const missing = { f: 0, e: 0, x: 0 };
  const lat = [];
  let lastRecv = 0;
  st.children.forEach((c, i) => {
    const s = state[i];
    events += s.seq.length;
    if (s.seq === 'fex') complete++;
    for (const k of 'fex') if (!s.seq.includes(k)) missing[k]++;
    // order: the events that did arrive must be a subsequence of f,e,x with no repeats
    if (!/^f?e?x?$/.test(s.seq)) order++;
    if (s.x && (s.x.exit_code !== c.wstatus || s.x.exit_code !== c.status << 8 || (s.x.code !== undefined && s.x.code !== c.status))) statusErr++;
    if (s.e) {
      execs++;
      if (Array.isArray(s.e.argv) && s.e.argv.length === c.argv.length && s.e.argv.every((a, j) => a === c.argv[j])) argvOk++;
      if (s.e.missing && s.e.missing.includes('argv')) argvMissing++;
    }
    for (const t of s.times) if (Number.isFinite(t)) lat.push(t);
  });
  for (const r of recs) if (r.recv > lastRecv && Number.isFinite(r.recv)) lastRecv = r.recv;
  lat.sort((a, b) => a - b);
  return {
    children: st.children.length,
    complete,
    completeSet: state.map((s) => s.seq === 'fex'),
    order,
    statusErr,
    missing,
    execs,
    argvOk,
    argvMissing,
    stray,
    lost,
    events,
    lastRecv,
    lat: lat.length ? { p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat[lat.length - 1], n: lat.length } : null,
  };
}

function readCompact(file) {
  const recs = [];
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!l) continue;
    const f = l.split(' ');
    const ms = (t) => (t === '-' ? NaN : Date.parse(t));
    if (f[0] === 'f') recs.push({ k: 'f', pid: +f[1], parent: +f[2], time: ms(f[3]), recv: +f[4] / 1000 });
    else if (f[0] === 'e') {
      // e pid time recv argvJSON missingJSON|-   (argv may contain spaces: split at known ends)
      const head = f.slice(0, 4).join(' ').length + 1;
      const rest = l.slice(head);
      const cut = rest.lastIndexOf(' ');
      let argv = null,
        missing = null;
      try {
        argv = JSON.parse(rest.slice(0, cut));
      } catch {}
      const m = rest.slice(cut + 1);
      if (m !== '-')
        try {
          missing = JSON.parse(m);
        } catch {}
      recs.push({ k: 'e', pid: +f[1], time: ms(f[2]), recv: +f[3] / 1000, argv, missing });
    } else if (f[0] === 'x') recs.push({ k: 'x', pid: +f[1], exit_code: +f[2], code: f[3] === 'null' ? null : +f[3], time: ms(f[4]), recv: +f[5] / 1000 });
    else if (f[0] === 'l') recs.push({ k: 'l', count: +f[1], source: f[2] });
  }
  return recs;
}

/** NDJSON from --direct: all events; keep what concerns the generator's children. */
function readNdjson(file, genPid) {
  const recs = [];
  let lines = 0,
    bad = 0;
  const foreign = new Set();
  const ours = new Set();
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!l) continue;
    lines++;
    let ev;
    try {
      ev = JSON.parse(l);
    } catch {
      bad++;
      continue;
    }
    const time = Date.parse(ev.time);
    if (ev.event === 'fork') {
      if (ev.parent_pid === genPid) {
        ours.add(ev.child_pid);
        foreign.delete(ev.child_pid);
        recs.push({ k: 'f', pid: ev.child_pid, parent: ev.parent_pid, time, recv: NaN });
      } else {
        foreign.add(ev.child_pid);
        ours.delete(ev.child_pid);
      }
    } else if (ev.event === 'exec') {
      const named = Array.isArray(ev.argv) && /^pmbench-/.test(ev.argv[0] ?? '');
      if ((ours.has(ev.pid) || named) && !foreign.has(ev.pid)) recs.push({ k: 'e', pid: ev.pid, time, recv: NaN, argv: ev.argv, missing: ev.missing ?? null });
    } else if (ev.event === 'exit') {
      if (ours.has(ev.pid)) {
        recs.push({ k: 'x', pid: ev.pid, exit_code: ev.exit_code, code: ev.code, time, recv: NaN });
        ours.delete(ev.pid);
      }
      foreign.delete(ev.pid);
    } else if (ev.event === 'lost') recs.push({ k: 'l', count: ev.count, source: ev.source });
  }
  return { recs, lines, bad };
}

/** forkstat's text: `HH:MM:SS fork  PID parent CMD` + `... fork PID child CMD`, `exec PID CMD`, `exit PID STATUS DUR CMD`. */
function readForkstat(file, genPid) {
  const recs = [];
  let lines = 0;
  let parent = null;
  const foreign = new Set();
  const ours = new Set();
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^\S+\s+(fork|exec|exit|clone)\s+(\d+)\s?(.*)$/.exec(l);
    if (!m) continue;
    lines++;
    const [, kind, pidText, rest] = m;
    const pid = Number(pidText);
    if (kind === 'fork') {
      // one fork event is printed as two lines (parent, then child): count it once
      if (/^parent\b/.test(rest)) ((parent = pid), lines--);
      else if (/^child\b/.test(rest)) {
        if (parent === genPid) {
          ours.add(pid);
          foreign.delete(pid);
          recs.push({ k: 'f', pid, parent, time: NaN, recv: NaN });
        } else {
          foreign.add(pid);
          ours.delete(pid);
        }
        parent = null;
      }
    } else if (kind === 'exec') {
      const cmd = rest.trim();
      const named = /^pmbench-/.test(cmd);
      if ((ours.has(pid) || named) && !foreign.has(pid)) recs.push({ k: 'e', pid, time: NaN, recv: NaN, argv: cmd.split(' '), missing: null });
    } else if (kind === 'exit') {
      const x = /^(-?\d+)/.exec(rest.trim());
      if (ours.has(pid)) {
        recs.push({ k: 'x', pid, exit_code: x ? Number(x[1]) : NaN, code: undefined, time: NaN, recv: NaN });
        ours.delete(pid);
      }
      foreign.delete(pid);
    }
  }
  return { recs, lines, bad: 0 };
}

// ---------- one configuration ----------
async function runOne(cfg, opts) {
  const { target, child, n, p, rate = 0, k = 0, s = 0, mode } = cfg;
  const bin = path.join(BUILD, child === '1ms' ? 'pmbench-1ms' : 'pmbench-tiny');
  const dir = fs.mkdtempSync(path.join(TMP, `${target}-`));
  const res = { target, child, n, p, rate, k, s, mode };
  let tgt, bc, bcOut, sock;
  try {
    if (target === 'forkstat') tgt = await startForkstat(path.join(dir, 'out.txt'));
    else if (target === 'direct') tgt = await startDaemon(['--direct', '-e', 'exec,fork,exit'], path.join(dir, 'out.txt'));
    else {
      let where;
      if (target === 'tcp') {
        const port = await freePort();
        tgt = await startDaemon(['--tcp', String(port), '--bind', '127.0.0.1', '--auth', 'pmbench', '--clients', String(k + s + 1), '-e', 'exec,fork,exit'], null);
        where = ['-t', String(port), '-a', 'pmbench', ...(mode === 'seed' ? ['-1'] : [])];
      } else {
        sock = path.join(dir, 'pm.sock');
        tgt = await startDaemon(['--socket', sock, '--clients', String(k + s + 1), '-e', 'exec,fork,exit'], null);
        where = ['-s', sock];
      }
      bc = spawnTracked(path.join(BUILD, 'benchclient'), [...where, '-k', String(k), '-S', String(s), '-d', dir], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      bcOut = lineReader(bc.stdout);
      if (!(await bcOut.waitFor((l) => l === 'ready', 10000))) throw new Error('clients did not connect');
      // every connection accepted and registered by the daemon before the storm
      await sleep(500 + 5 * (k + s));
    }
    const pid = tgt.proc.pid;
    const cpu0 = cpuOf(pid);
    const t0 = Date.now();
    const st = await storm(bin, n, p, rate, async (gpid) => {
      if (bc) {
        bc.stdin.write(`watch ${gpid}\n`);
        await bcOut.waitFor((l) => l === 'ok', 5000);
      }
    });
    res.spawns_per_s = Math.round(st.spawns_per_s);
    res.spawned = st.spawned;
    res.spawn_failures = st.failed;
    let reachedEnd;
    if (bc) reachedEnd = !!(await bcOut.waitFor((l) => l === 'quiet', 30000));
    else {
      const re = target === 'forkstat' ? new RegExp(`\\sexit\\s+${st.pid}\\s`) : new RegExp(`"event":"exit","pid":${st.pid},`);
      reachedEnd = await waitFileEnd(path.join(dir, 'out.txt'), re);
    }
    res.reached_end = reachedEnd;
    res.drain_s = Math.round((Date.now() - t0) / 10) / 100 - Math.round(st.elapsed * 100) / 100;
    const cpu1 = cpuOf(pid);
    res.cpu = cpuDelta(cpu0, cpu1);
    res.mem = memOf(pid);
    // judge
    const clients = [];
    if (bc) {
      bc.kill('SIGUSR1');
      res.stalled_drained = !!(await bcOut.waitFor((l) => l === 'drained', 15000));
      bc.kill('SIGTERM');
      await exited(bc);
      const summary = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8'));
      for (const c of summary) {
        const j = judge(st, readCompact(path.join(dir, c.file)));
        clients.push({ ...j, stalled: c.stalled, lines: c.lines, bad: c.bad, eof: c.eof, saw_end: c.saw_end, first_us: c.first_us, reads: c.reads, multi: c.multi });
      }
    } else {
      const file = path.join(dir, 'out.txt');
      await stop(tgt.proc, target === 'forkstat' ? 'SIGINT' : 'SIGTERM');
      const parsed = target === 'forkstat' ? readForkstat(file, st.pid) : readNdjson(file, st.pid);
      const j = judge(st, parsed.recs);
      clients.push({ ...j, stalled: false, lines: parsed.lines, bad: parsed.bad });
    }
    const healthy = clients.filter((c) => !c.stalled);
    const stalled = clients.filter((c) => c.stalled);
    const everyone = st.children.map((_, i) => healthy.every((c) => c.completeSet[i])).filter(Boolean).length;
    const storm_events = st.children.length * 3;
    res.complete_all = everyone / st.children.length;
    res.complete_min = Math.min(...healthy.map((c) => c.complete / c.children));
    res.order_violations = Math.max(...healthy.map((c) => c.order));
    res.status_errors = Math.max(...healthy.map((c) => c.statusErr));
    res.missing_max = {
      fork: Math.max(...healthy.map((c) => c.missing.f)),
      exec: Math.max(...healthy.map((c) => c.missing.e)),
      exit: Math.max(...healthy.map((c) => c.missing.x)),
    };
    res.argv_captured = Math.min(...healthy.map((c) => c.argvOk / st.children.length));
    res.argv_marked_missing = Math.max(...healthy.map((c) => c.argvMissing));
    res.bad_lines = healthy.reduce((a, c) => a + c.bad, 0);
    res.stray = Math.max(...healthy.map((c) => c.stray));
    res.lost_healthy = healthy.reduce((a, c) => ({ lines: a.lines + c.lost.lines, count: a.count + c.lost.count, sources: { ...a.sources, ...c.lost.sources } }), {
      lines: 0,
      count: 0,
      sources: {},
    });
    res.stalled = stalled.map((c) => ({
      lost_lines: c.lost.lines,
      lost_count: c.lost.count,
      sources: c.lost.sources,
      complete: c.complete,
      children: st.children.length,
      saw_end: c.saw_end,
    }));
    // events delivered: storm events received, per healthy client, over the time from storm start to the last one received
    const dur = Math.max(st.elapsed, ...healthy.map((c) => (Number.isFinite(c.lastRecv) && c.lastRecv ? c.lastRecv / 1000 - st.start : 0)));
    res.events_per_s_client = Math.round(Math.min(...healthy.map((c) => c.events)) / dur);
    res.events_per_s_total = Math.round(healthy.reduce((a, c) => a + c.events, 0) / dur);
    res.delivered_events = healthy.reduce((a, c) => a + c.lines, 0); // every line each healthy client got
    res.unique_events = Math.max(...healthy.map((c) => c.lines));
    if (res.cpu) {
      res.cpu_ms_per_1k_events = Math.round(((res.cpu.total * 1000) / (res.unique_events / 1000)) * 100) / 100;
      res.cpu_ms_per_1k_deliveries = Math.round(((res.cpu.total * 1000) / (res.delivered_events / 1000)) * 100) / 100;
    }
    const lats = healthy.filter((c) => c.lat);
    if (bc && lats.length) {
      res.latency_ms = {
        p50: Math.max(...lats.map((c) => c.lat.p50)),
        p99: Math.max(...lats.map((c) => c.lat.p99)),
        max: Math.max(...lats.map((c) => c.lat.max)),
      };
    }
    res.storm_events = storm_events;
    if (bc)
      res.reads_multi =
        healthy.reduce((a, c) => a + c.multi, 0) /
        Math.max(
          1,
          healthy.reduce((a, c) => a + c.reads, 0),
        );
    res.daemon_log = tgt.log.lines.filter((l) => /lost|slow|error/i.test(l)).slice(0, 5);
  } finally {
    if (bc && bc.exitCode === null) await stop(bc, 'SIGKILL');
    if (tgt) await stop(tgt.proc, tgt.proc.spawnargs.includes('forkstat') ? 'SIGINT' : 'SIGTERM');
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

// ---------- report ----------
const median = (xs) => {
  const s = xs.filter((x) => x !== undefined && x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
};

function aggregate(runs) {
  // completeness/order/argv: the worst run (misses are not averaged away); CPU: the median; rate: the best
  const worst = (f, min = true) => (min ? Math.min : Math.max)(...runs.map(f));
  const r0 = runs[0];
  return {
    label: label(r0),
    target: r0.target,
    child: r0.child,
    k: r0.k,
    s: r0.s,
    rate: r0.rate,
    runs: runs.length,
    spawns_per_s: Math.max(...runs.map((r) => r.spawns_per_s)),
    events_per_s_client: Math.max(...runs.map((r) => r.events_per_s_client)),
    events_per_s_total: Math.max(...runs.map((r) => r.events_per_s_total)),
    complete_all: worst((r) => r.complete_all),
    order_violations: worst((r) => r.order_violations, false),
    status_errors: worst((r) => r.status_errors, false),
    argv_captured: worst((r) => r.argv_captured),
    argv_captured_median: median(runs.map((r) => r.argv_captured)),
    cpu_ms_per_1k_events: median(runs.map((r) => r.cpu_ms_per_1k_events)),
    cpu_ms_per_1k_deliveries: median(runs.map((r) => r.cpu_ms_per_1k_deliveries)),
    rss_peak_mb: Math.max(...runs.map((r) => r.mem?.hwm_mb ?? 0)),
    lost_healthy_lines: worst((r) => r.lost_healthy.lines, false),
    lost_healthy_count: worst((r) => r.lost_healthy.count, false),
    // Once it reads again, a stalled client catches up from the server's replay ring; what the
    // ring let go comes as a lost line. Either way it must account for every event.
    stalled_got_lost: r0.s ? runs.every((r) => r.stalled.every((c) => c.lost_lines > 0 || c.complete === c.children)) : null,
    stalled_lost_count: r0.s ? Math.max(...runs.map((r) => Math.max(...r.stalled.map((c) => c.lost_count)))) : null,
    mode: r0.mode,
    reads_multi: r0.reads_multi === undefined ? null : Math.max(...runs.map((r) => r.reads_multi)),
    latency_ms: r0.latency_ms
      ? { p50: median(runs.map((r) => r.latency_ms?.p50)), p99: median(runs.map((r) => r.latency_ms?.p99)), max: Math.max(...runs.map((r) => r.latency_ms?.max ?? 0)) }
      : null,
    threads_cpu_s: runs[runs.length - 1].cpu?.threads,
  };
}

function label(r) {
  const t = r.target === 'socket' ? `socket ${r.k}+${r.s}stalled` : r.target === 'tcp' ? `tcp ${r.k} ${r.mode}` : r.target;
  return `${t} ${r.child}${r.rate ? ` @${r.rate}/s` : ''}`;
}

function table(rows) {
  const f1 = (x, d = 1) => (x === null || x === undefined ? '-' : Number(x).toFixed(d));
  const pc = (x) => (x === null || x === undefined ? '-' : (x * 100).toFixed(x === 1 ? 0 : 2) + '%');
  const cols = [
    ['configuration', (a) => a.label],
    ['spawns/s', (a) => String(a.spawns_per_s)],
    ['ev/s/client', (a) => String(a.events_per_s_client)],
    ['complete', (a) => pc(a.complete_all)],
    ['order viol', (a) => String(a.order_violations)],
    ['status err', (a) => String(a.status_errors)],
    ['argv ok', (a) => pc(a.argv_captured)],
    ['CPU ms/1k ev', (a) => f1(a.cpu_ms_per_1k_events, 2)],
    ['CPU ms/1k deliv', (a) => f1(a.cpu_ms_per_1k_deliveries, 2)],
    ['RSS MB', (a) => f1(a.rss_peak_mb)],
    ['lost (healthy)', (a) => `${a.lost_healthy_lines}/${a.lost_healthy_count}`],
    [
      'stalled: caught up or lost line',
      (a) => (a.stalled_got_lost === null ? '-' : !a.stalled_got_lost ? 'NO' : a.stalled_lost_count ? `lost line (${a.stalled_lost_count})` : 'caught up'),
    ],
    ['latency p50/p99/max ms', (a) => (a.latency_ms ? `${f1(a.latency_ms.p50)}/${f1(a.latency_ms.p99)}/${f1(a.latency_ms.max)}` : '-')],
    ['reads of >1 line', (a) => (a.reads_multi === null || a.reads_multi === undefined ? '-' : pc(a.reads_multi))],
  ];
  const cells = rows.map((a) => cols.map(([, f]) => f(a)));
  const w = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => '| ' + c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join(' | ') + ' |';
  return [line(cols.map(([h]) => h)), '|' + w.map((n, i) => (i === 0 ? ':' : '') + '-'.repeat(n + 1) + (i === 0 ? '' : ':')).join('|') + '|', ...cells.map(line)].join('\n');
}

function verdicts(aggs) {
  const find = (target, child, k, rate = 0) => aggs.find((a) => a.target === target && a.child === child && (k === undefined || a.k === k) && a.rate === rate);
  const out = [];
  const add = (name, ok, detail) => out.push({ target: name, met: ok, detail });
  const k10 = find('socket', 'tiny', 10);
  const k1 = find('socket', 'tiny', 1);
  const fs_t = find('forkstat', 'tiny');
  const fs_1 = find('forkstat', '1ms');
  const dir_t = find('direct', 'tiny');
  const dir_1 = find('direct', '1ms');
  const k10_1 = find('socket', '1ms', 10);
  if (k10) {
    add(
      '10 clients + stalled at full rate: 100% complete, 0 order violations',
      k10.complete_all === 1 && k10.order_violations === 0,
      `complete ${(k10.complete_all * 100).toFixed(3)}%, order violations ${k10.order_violations}, at ${k10.spawns_per_s} spawns/s`,
    );
    add('stalled client catches up from the ring or gets a lost line', !!k10.stalled_got_lost, `stalled client lost count ${k10.stalled_lost_count}`);
    add(
      'daemon RSS < 150 MB',
      k10.rss_peak_mb < 150,
      `${k10.rss_peak_mb.toFixed(1)} MB (10 clients); max over runs ${Math.max(...aggs.filter((a) => a.target !== 'forkstat').map((a) => a.rss_peak_mb)).toFixed(1)} MB`,
    );
  }
  const ms1 = k10_1 ?? dir_1;
  if (ms1) add('argv >= 99.9% for 1 ms children', ms1.argv_captured >= 0.999, `${(ms1.argv_captured * 100).toFixed(2)}% (${ms1.label}, worst run)`);
  if (fs_t && (dir_t || k10)) {
    const ours = (dir_t ?? k10).argv_captured;
    add(
      'argv for tiny children: more than forkstat',
      ours > fs_t.argv_captured,
      `ours ${(ours * 100).toFixed(2)}% vs forkstat ${(fs_t.argv_captured * 100).toFixed(2)}% (1 ms: ours ${ms1 ? (ms1.argv_captured * 100).toFixed(2) : '-'}% vs forkstat ${fs_1 ? (fs_1.argv_captured * 100).toFixed(2) : '-'}%)`,
    );
  }
  if (fs_t && dir_t) {
    const r = dir_t.cpu_ms_per_1k_events / fs_t.cpu_ms_per_1k_events;
    add('CPU per event: --direct lower than forkstat', r < 1, `${dir_t.cpu_ms_per_1k_events} vs ${fs_t.cpu_ms_per_1k_events} ms per 1k events: ratio ${r.toFixed(2)}`);
  }
  if (k1 && k10) {
    const r = k10.cpu_ms_per_1k_events / k1.cpu_ms_per_1k_events;
    add(
      'CPU per event: 10 clients < 2x 1 client',
      r < 2,
      `${k10.cpu_ms_per_1k_events} vs ${k1.cpu_ms_per_1k_events} ms per 1k kernel events: ratio ${r.toFixed(2)} (per delivery: ${k10.cpu_ms_per_1k_deliveries} vs ${k1.cpu_ms_per_1k_deliveries})`,
    );
  }
  const seedA = aggs.find((a) => a.target === 'tcp' && a.mode === 'seed');
  const batchedA = aggs.find((a) => a.target === 'tcp' && a.mode === 'batched');
  if (seedA && batchedA) {
    const r = seedA.cpu_ms_per_1k_events / batchedA.cpu_ms_per_1k_events;
    add(
      'seed clients over TCP: every event, one per read, at an ordinary rate',
      seedA.complete_all === 1 && seedA.reads_multi === 0,
      `complete ${(seedA.complete_all * 100).toFixed(2)}%, reads holding more than one line ${(seedA.reads_multi * 100).toFixed(2)}% (batched clients: ${(batchedA.reads_multi * 100).toFixed(2)}%)`,
    );
    add(
      'the per-line writes cost (information)',
      true,
      `daemon CPU per event with ${seedA.k} seed clients ${seedA.cpu_ms_per_1k_events} ms/1k vs ${batchedA.cpu_ms_per_1k_events} batched: ratio ${r.toFixed(2)} at ${seedA.rate} spawns/s`,
    );
  }
  const lat1000 = find('socket', 'tiny', 10, 1000);
  if (lat1000 && lat1000.latency_ms)
    add(
      'latency p99 < 5 ms at 1000 spawns/s',
      lat1000.latency_ms.p99 < 5,
      `p50 ${lat1000.latency_ms.p50} ms, p99 ${lat1000.latency_ms.p99} ms, max ${lat1000.latency_ms.max} ms (kernel time has ms resolution, truncated: up to +1 ms)`,
    );
  return out;
}

function machine() {
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: os.cpus().length,
    cpu: (cpu.match(/^model name\s*:\s*(.*)$/m) || [])[1] ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    pid_max: Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8')),
    forkstat: (() => {
      try {
        return execFileSync('forkstat', ['-h'], { encoding: 'utf8' }).split('\n')[0];
      } catch (e) {
        return String(e.stdout ?? '').split('\n')[0] || 'not installed';
      }
    })(),
    load_before: os.loadavg(),
    git: (() => {
      try {
        return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: ROOT, encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })(),
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid && process.getuid() !== 0) process.stderr.write('warning: not root; forkstat needs root\n');
  const built = build();
  const hasForkstat = (() => {
    try {
      execFileSync('sh', ['-c', 'command -v forkstat'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  if (!hasForkstat) process.stderr.write('warning: forkstat not installed (apt-get install forkstat): skipped\n');
  const want = (name) => !opts.only || opts.only.includes(name);
  const plan = [];
  for (const child of ['tiny', '1ms']) {
    const n = child === 'tiny' ? opts.n : opts.n1ms;
    const p = child === 'tiny' ? opts.p : opts.p1ms;
    if (hasForkstat && want('forkstat')) plan.push({ target: 'forkstat', child, n, p });
    if (want('direct')) plan.push({ target: 'direct', child, n, p });
    for (const k of opts.clients) if (want(`k${k}`)) plan.push({ target: 'socket', child, n, p, k, s: opts.stalled });
  }
  for (const rate of opts.rates) if (want('latency')) plan.push({ target: 'socket', child: 'tiny', n: Math.round(rate * opts.rateSecs), p: 8, rate, k: 10, s: opts.stalled });
  if (want('seed'))
    for (const mode of ['seed', 'batched'])
      plan.push({ target: 'tcp', mode, child: '1ms', n: Math.round(opts.seedRate * opts.rateSecs * 2), p: 2, rate: opts.seedRate, k: opts.seedClients, s: 0 });
  const m = machine();
  const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  process.stderr.write(`procmonitor bench: ${m.nproc} x ${m.cpu}, Linux ${m.kernel}, Node ${m.node}; tiny child: ${built.tiny}\n`);
  process.stderr.write(`plan: ${plan.length} configurations x ${opts.reps} runs (interleaved)\n`);
  const runs = [];
  const t0 = Date.now();
  for (let rep = 0; rep < opts.reps; rep++) {
    for (const cfg of plan) {
      // the latency runs are steady and cheap to judge; once is enough in quick mode
      const r = await runOne(cfg, opts).catch((e) => ({ ...cfg, error: String(e.stack || e) }));
      r.rep = rep;
      runs.push(r);
      const msg = r.error
        ? `ERROR ${r.error.split('\n')[0]}`
        : `${r.spawns_per_s} spawns/s, complete ${(r.complete_all * 100).toFixed(2)}%, order ${r.order_violations}, argv ${(r.argv_captured * 100).toFixed(2)}%, CPU ${r.cpu?.total}s (${r.cpu_ms_per_1k_events} ms/1k ev), RSS ${r.mem?.hwm_mb?.toFixed(1)} MB${r.latency_ms ? `, lat p99 ${r.latency_ms.p99} ms` : ''}${r.reached_end ? '' : ', END NOT SEEN'}`;
      process.stderr.write(`[${rep + 1}/${opts.reps}] ${label(r).padEnd(32)} ${msg}\n`);
    }
  }
  const groups = new Map();
  for (const r of runs.filter((r) => !r.error)) {
    const key = label(r);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const aggs = [...groups.values()].map(aggregate);
  const v = verdicts(aggs);
  const ratios = {};
  const get = (l) => aggs.find((a) => a.label === l);
  for (const child of ['tiny', '1ms']) {
    const fsA = get(`forkstat ${child}`),
      dA = get(`direct ${child}`),
      k1 = get(`socket 1+${opts.stalled}stalled ${child}`),
      k10 = get(`socket 10+${opts.stalled}stalled ${child}`),
      k100 = get(`socket 100+${opts.stalled}stalled ${child}`);
    const r = (a, b, f) => (a && b && f(b) ? Math.round((f(a) / f(b)) * 100) / 100 : null);
    ratios[child] = {
      cpu_per_event_direct_vs_forkstat: r(dA, fsA, (x) => x.cpu_ms_per_1k_events),
      cpu_per_event_10_vs_1_clients: r(k10, k1, (x) => x.cpu_ms_per_1k_events),
      cpu_per_event_100_vs_1_clients: r(k100, k1, (x) => x.cpu_ms_per_1k_events),
      argv_direct_vs_forkstat: r(dA, fsA, (x) => x.argv_captured),
      spawns_per_s_direct_vs_forkstat: r(dA, fsA, (x) => x.spawns_per_s),
    };
  }
  // procMonitor trace against an untraced job, strace and forkstat (bench/trace.js).
  const traceResult = want('trace') ? await require('./trace').benchTrace({ quick: opts.quick, reps: opts.reps }) : null;
  const tbl = table(aggs);
  process.stdout.write('\n' + tbl + '\n\nRatios: ' + JSON.stringify(ratios) + '\n\nTargets (issue 5):\n');
  for (const x of v) process.stdout.write(`  ${x.met ? 'MET   ' : 'MISSED'} ${x.target}: ${x.detail}\n`);
  const errors = runs.filter((r) => r.error);
  if (errors.length) process.stdout.write(`\n${errors.length} run(s) failed: ${errors.map((e) => `${label(e)}: ${e.error.split('\n')[0]}`).join('; ')}\n`);
  const result = {
    date: new Date().toISOString(),
    command,
    machine: m,
    options: opts,
    tiny_child: built.tiny,
    seconds: Math.round((Date.now() - t0) / 1000),
    table: tbl,
    ratios,
    targets: v,
    summary: aggs,
    runs: runs.map((r) => ({ ...r })),
    trace: traceResult,
  };
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, JSON.stringify(result, null, 1) + '\n');
  process.stdout.write(`\n${runs.length} runs in ${result.seconds} s; results in ${path.relative(process.cwd(), opts.out)}\n`);
  if (!opts.keep) fs.rmSync(TMP, { recursive: true, force: true });
  else process.stdout.write(`raw streams kept in ${TMP}\n`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench: ${e.stack || e}\n`);
    if (!process.argv.includes('--keep')) fs.rmSync(TMP, { recursive: true, force: true });
    process.exit(1);
  });
} else {
  // Shared with bench/soak.js, bench/table.js and bench/connector.js.
  process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));
  module.exports = { build, memOf, machine, parseFlags, BUILD, DAEMON };
}
