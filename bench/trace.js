'use strict';
/*
 * What `procMonitor trace` costs a real multi-process job, side by side in one run. Two jobs:
 * `make -j2` of a generated tree of small C files (cc, cc1, as per file; ar at the end), and
 * `npm ci` of this project in a clone of it (npm's cache; its install and prepare scripts
 * run). Each run untraced, under `procMonitor trace`, under `strace -f -e trace=process`, and
 * with forkstat running beside it; every mode in each round, rounds interleaved. Wall time
 * and CPU (the job and its tracer: bash's `time` over the whole command; forkstat's own CPU
 * added), and completeness: the trace must hold every compile the Makefile ran (one `cc -c`
 * per file), and npm's install script and tsc. A third, `host`, is what a busy host costs the
 * tracer: `sleep 2` traced while another process outside the job spawns /bin/true as fast as
 * it can (the trace must hold sleep alone; the tracer's CPU is the trace's CPU, sleep's is ~0).
 * `sleep` (only when asked) is `sleep 1` traced: what a trace costs whatever the job, its start-up
 * and its end. A traced run's `inside` is the command's own lifetime as the trace saw it: the wall
 * time minus it is the trace's start-up and end.
 *
 * Each round runs every mode once, one after the other, so a round's trace/untraced ratio is
 * taken side by side (the machine's speed drifts between rounds): the ratios' median is printed
 * with the medians of the rounds.
 *
 *   node bench/trace.js [--files 300] [--reps 3] [--quick] [--workloads make,npm,host,sleep]
 *                       [--modes plain,trace,strace,forkstat,listener,listener-idle,listener-rest]
 *                       [--trace-args '--read-interval 0']
 *   (also: npm run bench -- --only trace)
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawn, spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'procMonitor');

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** A directory with `n` small C files and a Makefile that compiles them into one archive. */
function makeTree(dir, n) {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}.c`), `int f${i}(int x) { int s = 0; for (int j = 0; j < x; j++) s += j * ${i + 1}; return s; }\n`);
  fs.writeFileSync(
    path.join(dir, 'Makefile'),
    'SRCS := $(wildcard f*.c)\nOBJS := $(SRCS:.c=.o)\nlib.a: $(OBJS)\n\tar rcs $@ $^\n%.o: %.c\n\tcc -O1 -c $< -o $@\nclean:\n\trm -f *.o lib.a\n',
  );
}

/**
 * The modes that run something beside the job: forkstat, and bench/cn-listener.py, a minimal
 * proc connector listener that reads every message (`listener`), never reads (`listener-idle`),
 * or rests 5 ms after each read (`listener-rest`): what listening itself costs the job.
 */
const LISTENER = path.join(__dirname, 'cn-listener.py');
const BESIDE = {
  forkstat: ['forkstat', '-e', 'fork,exec,exit'],
  listener: ['python3', LISTENER, 'read'],
  'listener-idle': ['python3', LISTENER, 'sleep'],
  'listener-rest': ['python3', LISTENER, 'rest:5'],
};
const MODES = ['plain', 'trace', 'strace', ...Object.keys(BESIDE)];

/** Runs `cmd` under bash's `time`: { wall, user, sys } in seconds. */
function timed(cmd, cwd) {
  const r = spawnSync('bash', ['-c', `TIMEFORMAT='%R %U %S'; time ( ${cmd} >/dev/null 2>/tmp/pm-bench-trace.err )`], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: status ${r.status}: ${fs.readFileSync('/tmp/pm-bench-trace.err', 'utf8').slice(-500)} ${r.stderr}`);
  const [wall, user, sys] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
  return { wall, user, sys };
}

/** CPU seconds a process has used so far (utime + stime from /proc). */
function cpuOf(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Runs `w` once under `mode`: { wall, user, sys } (the job and its tracer). */
async function run(mode, w, json) {
  w.reset();
  const storm = w.storm ? spawn('bash', ['-c', 'while :; do /bin/true; done'], { stdio: 'ignore' }) : null;
  try {
    return await runJob(mode, w, json);
  } finally {
    if (storm) {
      storm.kill('SIGKILL');
      await new Promise((r) => storm.on('exit', r));
    }
  }
}

async function runJob(mode, w, json) {
  const job = w.command;
  if (mode === 'plain') return timed(job, w.dir);
  if (mode === 'trace') return timed(`${process.execPath} ${BIN} trace -q --json ${json} ${w.traceArgs} -- ${job}`, w.dir);
  if (mode === 'strace') return timed(`strace -f -e trace=process -o /dev/null ${job}`, w.dir);
  // forkstat (or a minimal listener, bench/cn-listener.py) beside the job, its own CPU added.
  const beside = BESIDE[mode];
  const fsProc = spawn(beside[0], beside.slice(1), { stdio: ['ignore', 'ignore', 'ignore'] });
  await new Promise((r) => setTimeout(r, 300));
  const c0 = cpuOf(fsProc.pid);
  const t = timed(job, w.dir);
  const extra = cpuOf(fsProc.pid) - c0;
  fsProc.kill('SIGINT');
  await new Promise((r) => fsProc.on('exit', r));
  return { ...t, user: t.user + extra, sys: t.sys };
}

/** Every process of a trace's --json summary. */
function processesOf(json) {
  const s = JSON.parse(fs.readFileSync(json, 'utf8'));
  const all = [];
  (function walk(n) {
    all.push(n);
    n.children.forEach(walk);
  })(s.tree);
  return { s, all };
}

/**
 * The workloads: `make -j2` of `files` generated C files (completeness: one `cc -c` per file in
 * the trace), and `npm ci` of this project in a clone of it (from npm's cache; its install
 * script and its prepare script, tsc, run; completeness: both in the trace).
 */
function workloads(tmp, files, only) {
  const out = [];
  if (!only || only.includes('make')) {
    const dir = path.join(tmp, 'src');
    makeTree(dir, files);
    out.push({
      name: `make -j2 of ${files} C files`,
      key: 'make',
      dir,
      command: 'make -s -j2',
      reset: () => execFileSync('make', ['-s', 'clean'], { cwd: dir }),
      check: (all) => {
        const compiles = all.filter((n) => n.argv[0] === 'cc' && n.argv.includes('-c')).length;
        return { ok: compiles === files, what: `${compiles}/${files} compiles` };
      },
    });
  }
  if (!only || only.includes('npm')) {
    const dir = path.join(tmp, 'clone');
    execFileSync('git', ['clone', '-q', ROOT, dir]);
    out.push({
      name: 'npm ci of this project (from the cache; install and prepare scripts run)',
      key: 'npm',
      dir,
      command: 'npm ci --prefer-offline --no-audit --no-fund',
      reset: () => fs.rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true }),
      check: (all) => {
        const tsc = all.some((n) => n.argv.some((a) => /typescript\/bin\/tsc$|\btsc$/.test(a)));
        const gyp = all.some((n) => n.argv.some((a) => a.includes('node-gyp-build')));
        return { ok: tsc && gyp, what: `install script ${gyp ? 'seen' : 'MISSING'}, tsc ${tsc ? 'seen' : 'MISSING'}` };
      },
    });
  }
  if (only && only.includes('sleep')) {
    out.push({
      name: 'sleep 1 (what a trace costs whatever the job: start-up and end)',
      key: 'sleep',
      dir: tmp,
      command: 'sleep 1',
      reset: () => {},
      check: (all) => ({ ok: all.length === 1, what: `${all.length} process(es) in the trace` }),
    });
  }
  if (!only || only.includes('host')) {
    out.push({
      name: 'sleep 2 on a busy host (a loop outside the job spawning /bin/true)',
      key: 'host',
      dir: tmp,
      command: 'sleep 2',
      storm: true,
      reset: () => {},
      check: (all) => ({ ok: all.length === 1, what: `${all.length} process(es) in the trace` }),
    });
  }
  return out;
}

/** The benchmark of one workload; returns its results (and prints a table). */
async function benchWorkload(w, modes, reps, tmp) {
  const json = path.join(tmp, 'trace.json');
  const runs = [];
  const complete = [];
  process.stderr.write(`trace bench: ${w.name}; ${modes.join(', ')}; ${reps} rounds, interleaved\n`);
  for (let rep = 0; rep < reps; rep++) {
    for (const mode of modes) {
      const r = await run(mode, w, json);
      r.cpu = r.user + r.sys;
      if (mode === 'trace') {
        const { s, all } = processesOf(json);
        complete.push({ ...w.check(all), processes: s.processes, lost: s.lost, status: s.status });
        r.inside = s.tree.duration_ms / 1000;
      }
      runs.push({ mode, rep, ...r });
      const inside = r.inside === undefined ? '' : ` (the command ${r.inside.toFixed(2)} s of it)`;
      process.stderr.write(`[${rep + 1}/${reps}] ${mode.padEnd(9)} wall ${r.wall.toFixed(2)} s${inside}, CPU ${r.cpu.toFixed(2)} s\n`);
    }
  }
  const agg = Object.fromEntries(
    modes.map((m) => [m, { wall: median(runs.filter((r) => r.mode === m).map((r) => r.wall)), cpu: median(runs.filter((r) => r.mode === m).map((r) => r.cpu)) }]),
  );
  const over = (m, k) => (agg[m] ? agg[m][k] / agg.plain[k] - 1 : null);
  // Each round's MODE/plain ratio, side by side: the machine's drift between rounds cancels.
  const paired = (mode, ratio) => {
    const rs = [];
    for (let rep = 0; rep < reps; rep++) {
      const p = runs.find((r) => r.rep === rep && r.mode === 'plain');
      const t = runs.find((r) => r.rep === rep && r.mode === mode);
      if (p && t) rs.push(ratio(t, p));
    }
    return rs.length ? { median: median(rs), min: Math.min(...rs), max: Math.max(...rs) } : null;
  };
  const pairs = Object.fromEntries(
    modes
      .filter((m) => m !== 'plain')
      .map((m) => [
        m,
        {
          wall: paired(m, (t, p) => t.wall / p.wall),
          cpu: paired(m, (t, p) => t.cpu / p.cpu),
          // The command's own time under the trace against the whole untraced run: what the
          // trace costs while the job runs, its start-up and end left out.
          inside: m === 'trace' ? paired(m, (t, p) => t.inside / p.wall) : null,
        },
      ]),
  );
  const pct = (x) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
  const lines = [
    `${w.name}:`,
    '',
    '| mode | wall s (median) | CPU s (median) | wall overhead | CPU overhead | CPU added, s |',
    '|:--|--:|--:|--:|--:|--:|',
    ...modes.map((m) => {
      const added = m === 'plain' ? '-' : (agg[m].cpu - agg.plain.cpu).toFixed(2);
      return `| ${m} | ${agg[m].wall.toFixed(2)} | ${agg[m].cpu.toFixed(2)} | ${m === 'plain' ? '-' : pct(over(m, 'wall'))} | ${m === 'plain' ? '-' : pct(over(m, 'cpu'))} | ${added} |`;
    }),
  ];
  const ratio = agg.strace ? Math.round(((agg.trace.wall - agg.plain.wall) / (agg.strace.wall - agg.plain.wall)) * 100) / 100 : null;
  const allComplete = complete.every((c) => c.ok && c.status === 0 && c.lost === 0);
  const result = {
    workload: w.name,
    reps,
    modes,
    runs,
    median: agg,
    trace_wall_overhead: over('trace', 'wall'),
    paired_ratios: pairs,
    trace_vs_strace_overhead: ratio,
    completeness: complete,
    complete: allComplete,
  };
  process.stdout.write(`\n${lines.join('\n')}\n\n`);
  process.stdout.write(
    `trace: wall overhead ${pct(result.trace_wall_overhead)} (target < 3%); its overhead / strace's: ${ratio ?? '-'} (target < 0.1); complete: ${allComplete ? 'yes' : 'NO'} (${complete.map((c) => c.what).join('; ')}; ${complete[0]?.processes} processes, ${complete[0]?.lost} lost)\n`,
  );
  const r3 = (x) => x.toFixed(3);
  const spread = (x) => `median ${r3(x.median)} (${r3(x.min)} to ${r3(x.max)})`;
  for (const [m, x] of Object.entries(pairs)) {
    const inside = x.inside ? `; the command's own time under it / the untraced run: ${spread(x.inside)}` : '';
    process.stdout.write(`${m}/untraced, round by round (${reps} rounds): wall ratio ${spread(x.wall)}, CPU ratio ${spread(x.cpu)}${inside}\n`);
  }
  return result;
}

/** The benchmark: each workload, its modes interleaved; returns the results by workload. */
async function benchTrace(o = {}) {
  const files = o.files ?? (o.quick ? 80 : 300);
  const reps = o.reps ?? 3;
  const wanted = o.modes ?? ['plain', 'trace', 'strace', 'forkstat'];
  for (const m of wanted) if (!MODES.includes(m)) throw new Error(`unknown mode ${m} (${MODES.join(', ')})`);
  if (!wanted.includes('plain') || !wanted.includes('trace')) throw new Error('--modes must include plain and trace');
  const modes = wanted.filter((m) => !['strace', 'forkstat'].includes(m) || has(m));
  for (const m of wanted) if (!modes.includes(m)) process.stderr.write(`warning: ${m} not installed (apt-get install ${m}): skipped\n`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-bench-trace-'));
  try {
    const out = {};
    // (--trace-args: more options for procMonitor trace, e.g. "--read-interval 0".)
    for (const w of workloads(tmp, files, o.workloads)) out[w.key] = await benchWorkload({ ...w, traceArgs: o.traceArgs ?? '' }, modes, reps, tmp);
    return out;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

module.exports = { benchTrace };

if (require.main === module) {
  const args = process.argv.slice(2);
  const get = (k) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : undefined);
  const only = args.includes('--workloads') ? args[args.indexOf('--workloads') + 1].split(',') : undefined;
  const modes = args.includes('--modes') ? args[args.indexOf('--modes') + 1].split(',') : undefined;
  const traceArgs = args.includes('--trace-args') ? args[args.indexOf('--trace-args') + 1] : undefined;
  benchTrace({ files: get('--files'), reps: get('--reps'), quick: args.includes('--quick'), workloads: only, modes, traceArgs }).catch((e) => {
    process.stderr.write(`bench: ${e.stack || e}\n`);
    process.exit(1);
  });
}
