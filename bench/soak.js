#!/usr/bin/env node
'use strict';
/*
 * Soak test (not in CI): steady process churn for a long time with clients joining and leaving.
 *
 *   npm run soak [-- --minutes 10 --rate 300 --steady 4 --churn 1 --sample S --warmup 0.2
 *                 --replay N --max-rss-growth 5 --out FILE]
 *
 *   --minutes M        how long the churn runs (fractions allowed: --minutes 1 for a smoke run)
 *   --rate R           spawns per second of the C generator (default 300)
 *   --steady K         clients connected all along, whose streams are judged (default 4)
 *   --churn C          short-lived clients started each second (default 1)
 *   --sample S         seconds between samples (default: 10, or 1/60 of a run under 10 min)
 *   --warmup F         fraction of the run left out of the judgement (default 0.2)
 *   --replay N         the daemon's --replay (default: the daemon's own, 65536: the ring fills
 *                      in about 75 s at 300/s, so a shorter run should give a smaller ring)
 *   --max-rss-growth MB  RSS growth allowed per 10 minutes (default 5)
 *   --out FILE         where the samples and figures go (default bench/results/soak.json)
 *
 * Starts the daemon on a Unix socket, keeps `steady` clients connected all along, connects
 * `churn` new short-lived clients every second (each staying 1-4 s, every third never
 * reading), and runs the C spawn generator at `rate` spawns per second. Samples the daemon's
 * RSS and open file descriptors. At the end every steady client's stream is judged against the
 * generator's pids: each child's fork, exec and exit, in order, with its exit status.
 *
 * Memory and descriptors are judged after the warm-up (the replay ring and V8's heap reach
 * their working size in it):
 *  - RSS: a least-squares slope over the peak RSS of each sixth of the samples (the upper
 *    envelope: V8's garbage collector makes a sawtooth of tens of MB, whose drops would tilt a
 *    slope over every sample either way) must not exceed --max-rss-growth per 10 minutes; and
 *    the peak of the last third may exceed the peak of the first third by no more than that
 *    growth over the time between them plus 2 MB. The slope over every sample is printed too.
 *  - descriptors, less the short-lived clients connected at that moment: a least-squares slope
 *    whose fitted growth over the judged span must stay under 1, and the most in the last
 *    third may exceed the most in the first third by 1 at most (a /proc file the reader
 *    thread has open at the moment of a sample).
 * Exits 1 if a stream is incomplete or memory / descriptors grew.
 */
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const MAIN = require.main === module;
if (MAIN && (process.argv.includes('--help') || process.argv.includes('-h'))) {
  const src = fs.readFileSync(__filename, 'utf8');
  const doc = src.slice(src.indexOf('/*') + 2, src.indexOf('*/'));
  process.stdout.write(doc.replace(/^ \* ?/gm, '').trim() + '\n');
  process.exit(0);
}
const KNOWN = ['minutes', 'rate', 'steady', 'churn', 'sample', 'warmup', 'replay', 'max-rss-growth', 'out'];
for (const a of MAIN ? process.argv.slice(2) : []) {
  if (a.startsWith('--') && !KNOWN.includes(a.slice(2))) {
    process.stderr.write(`soak: unknown option ${a} (see --help)\n`);
    process.exit(2);
  }
}
function arg(name) {
  const i = MAIN ? process.argv.indexOf(`--${name}`) : -1;
  return i > 0 ? process.argv[i + 1] : undefined;
}
function opt(name, def, min, max = Infinity) {
  const text = arg(name);
  if (text === undefined) return def;
  const v = Number(text);
  if (!(v >= min && v <= max)) {
    process.stderr.write(`soak: --${name} must be a number from ${min}${max === Infinity ? ' up' : ` to ${max}`}, got ${text}\n`);
    process.exit(2);
  }
  return v;
}
const MINUTES = opt('minutes', 10, 0.1);
const RATE = opt('rate', 300, 1);
const STEADY = opt('steady', 4, 1);
const CHURN = opt('churn', 1, 0);
const SAMPLE_S = opt('sample', Math.min(10, Math.max(1, (MINUTES * 60) / 60)), 0.1);
const WARMUP = opt('warmup', 0.2, 0, 0.9);
const REPLAY = arg('replay') === undefined ? null : opt('replay', 0, 0);
const MAX_RSS_GROWTH = opt('max-rss-growth', 5, 0); // MB per 10 minutes
const OUT = arg('out') ?? path.join(__dirname, 'results', 'soak.json');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** Least-squares slope of y over x. */
function slope(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

const round = (v, d = 2) => Number(v.toFixed(d));

/**
 * The judgement of memory and descriptors over the samples after the warm-up (see the top of
 * the file). Returns the figures and the reasons it fails, if any.
 */
function judgeGrowth(samples, warmupS, maxRssPer10) {
  const post = samples.filter((s) => s.t >= warmupS && s.rss_mb !== null && s.fds >= 0);
  const failures = [];
  if (post.length < 6) return { failures: [`only ${post.length} samples after the warm-up (at least 6 are needed: a longer run or a shorter --sample)`] };
  const span = (post[post.length - 1].t - post[0].t) / 60; // minutes judged
  const perMin = maxRssPer10 / 10;
  // RSS: the upper envelope, the peak of each sixth, at the time of that peak.
  const peaks = [];
  for (let k = 0; k < 6; k++) {
    const part = post.slice(Math.floor((k * post.length) / 6), Math.floor(((k + 1) * post.length) / 6));
    const top = part.reduce((a, b) => (b.rss_mb > a.rss_mb ? b : a));
    peaks.push(top);
  }
  const rssSlope = slope(
    peaks.map((s) => s.t / 60),
    peaks.map((s) => s.rss_mb),
  ); // MB/min
  const rssSlopeAll = slope(
    post.map((s) => s.t / 60),
    post.map((s) => s.rss_mb),
  );
  if (rssSlope > perMin) failures.push(`RSS grows ${round(rssSlope)} MB/min (peaks), more than ${maxRssPer10} MB per 10 minutes`);
  const third = Math.floor(post.length / 3);
  const first = post.slice(0, third);
  const last = post.slice(post.length - third);
  const mid = (part) => (part[0].t + part[part.length - 1].t) / 2 / 60;
  const rssFirstMax = Math.max(...first.map((s) => s.rss_mb));
  const rssLastMax = Math.max(...last.map((s) => s.rss_mb));
  const rssAllowed = perMin * (mid(last) - mid(first)) + 2;
  if (rssLastMax - rssFirstMax > rssAllowed) {
    failures.push(`RSS peak ${rssFirstMax} MB in the first third, ${rssLastMax} MB in the last (more than ${round(rssAllowed, 1)} MB up)`);
  }
  // Descriptors, less the short-lived clients connected when the sample was taken.
  const own = post.map((s) => s.fds - s.churn_clients);
  const fdSlope = slope(
    post.map((s) => s.t / 60),
    own,
  ); // per minute
  const fdGrowth = fdSlope * span;
  if (fdGrowth >= 1) failures.push(`descriptors grow: ${round(fdSlope, 3)}/min, ${round(fdGrowth, 1)} over ${round(span, 1)} min`);
  const fdFirstMax = Math.max(...own.slice(0, third));
  const fdLastMax = Math.max(...own.slice(own.length - third));
  if (fdLastMax > fdFirstMax + 1) failures.push(`descriptors: at most ${fdFirstMax} in the first third, ${fdLastMax} in the last`);
  return {
    failures,
    judged: { from_s: post[0].t, to_s: post[post.length - 1].t, samples: post.length },
    rss_slope_mb_per_min: round(rssSlope, 3),
    rss_slope_all_samples_mb_per_min: round(rssSlopeAll, 3),
    rss_peak_first_third_mb: rssFirstMax,
    rss_peak_last_third_mb: rssLastMax,
    rss_peak_allowed_rise_mb: round(rssAllowed, 1),
    fd_slope_per_min: round(fdSlope, 3),
    fd_growth_fitted: round(fdGrowth, 2),
    fd_max_first_third: fdFirstMax,
    fd_max_last_third: fdLastMax,
  };
}

/** A client that parses the stream and keeps, per pid, the events it saw (compactly). */
function steadyClient(sock) {
  const c = { byPid: new Map(), lines: 0, lost: 0, sock };
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      c.lines++;
      const e = JSON.parse(line);
      if (e.event === 'lost') {
        c.lost += e.count;
        continue;
      }
      const pid = e.event === 'fork' ? e.child_pid : e.pid;
      let l = c.byPid.get(pid);
      if (!l) c.byPid.set(pid, (l = []));
      l.push(e.event === 'exit' ? `x${e.exit_code}` : e.event[0]);
    }
  });
  return c;
}

function connect(p) {
  return new Promise((resolve, reject) => {
    const s = net.connect(p, () => resolve(s));
    s.on('error', reject);
  });
}

/** Every (pid, status) the generator recorded must appear as fork, exec, exit(status) in order. */
function judge(client, recs) {
  const pos = new Map();
  let missing = 0;
  for (const r of recs) {
    const evs = client.byPid.get(r.pid) || [];
    let i = pos.get(r.pid) || 0;
    let found = false;
    for (; i + 2 < evs.length + 0 && !found; i++) {
      if (evs[i] === 'f' && evs[i + 1] === 'e' && evs[i + 2] === `x${r.wstatus}`) {
        found = true;
        i += 2;
      }
    }
    pos.set(r.pid, found ? i : pos.get(r.pid) || 0);
    if (!found) missing++;
  }
  return missing;
}

async function main() {
  const { build, memOf, BUILD, DAEMON } = require('./run');
  build();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmsoak-'));
  const sockPath = path.join(dir, 'soak.sock');
  const dargs = ['--socket', sockPath, '--clients', String(STEADY + CHURN * 8 + 4), '-e', 'exec,fork,exit', '--quiet'];
  if (REPLAY !== null) dargs.push('--replay', String(REPLAY));
  const daemon = spawn(process.execPath, [DAEMON, ...dargs], { stdio: 'inherit' });
  for (let i = 0; i < 50 && !fs.existsSync(sockPath); i++) await sleep(100);
  const steady = [];
  for (let i = 0; i < STEADY; i++) steady.push(steadyClient(await connect(sockPath)));
  await sleep(500);
  const samples = [];
  let liveChurn = 0; // short-lived clients connected now (each holds a descriptor of the daemon)
  const sample = () => {
    const m = memOf(daemon.pid);
    samples.push({ t: round((Date.now() - t0) / 1000, 1), rss_mb: m && round(m.rss_mb, 1), fds: fds(daemon.pid), churn_clients: liveChurn });
  };
  const t0 = Date.now();
  sample();
  const pidFile = path.join(dir, 'pids');
  const n = Math.round(RATE * MINUTES * 60);
  const gen = spawn(path.join(BUILD, 'spawnstorm'), ['-n', String(n), '-p', '4', '-r', String(RATE), '-c', path.join(BUILD, 'pmbench-1ms'), '-o', pidFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let genOut = '';
  gen.stdout.on('data', (d) => (genOut += d));
  const genDone = new Promise((r) => gen.on('exit', r));
  let churned = 0;
  let done = false;
  genDone.then(() => (done = true));
  const churn = (async () => {
    while (!done) {
      for (let k = 0; k < CHURN; k++) {
        connect(sockPath)
          .then((s) => {
            churned++;
            liveChurn++;
            s.on('close', () => liveChurn--);
            if (churned % 3 === 0)
              s.pause(); // some never read
            else s.resume();
            s.on('error', () => {});
            setTimeout(() => s.destroy(), 1000 + Math.random() * 3000);
          })
          .catch(() => {});
      }
      await sleep(1000);
    }
  })();
  const timer = setInterval(sample, SAMPLE_S * 1000);
  await genDone;
  await churn;
  clearInterval(timer);
  await sleep(4500); // the last events arrive, the last short-lived clients (up to 4 s) leave
  sample();
  const recs = fs
    .readFileSync(pidFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ').map(Number))
    .map(([index, pid, status, wstatus]) => ({ index, pid, status, wstatus }));
  const results = steady.map((c, i) => ({ client: i, lines: c.lines, lost: c.lost, missing: judge(c, recs) }));
  for (const c of steady) c.sock.destroy();
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });

  const warmupS = WARMUP * MINUTES * 60;
  const growth = judgeGrowth(samples, warmupS, MAX_RSS_GROWTH);
  const start = samples[0];
  const afterWarmup = samples.find((s) => s.t >= warmupS) ?? samples[samples.length - 1];
  const end = samples[samples.length - 1];
  const maxRss = Math.max(...samples.map((s) => s.rss_mb ?? 0));
  const report = {
    minutes: MINUTES,
    rate: RATE,
    replay: REPLAY,
    sample_s: SAMPLE_S,
    warmup_s: round(warmupS, 1),
    max_rss_growth_mb_per_10min: MAX_RSS_GROWTH,
    children: recs.length,
    generator: JSON.parse(genOut || '{}'),
    churnedClients: churned,
    rss_start_mb: start.rss_mb,
    rss_after_warmup_mb: afterWarmup.rss_mb,
    rss_end_mb: end.rss_mb,
    rss_max_mb: maxRss,
    fds_start: start.fds,
    fds_end: end.fds,
    growth,
    results,
    samples,
  };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(report, null, 1) + '\n');
  const w = (line) => process.stdout.write(line + '\n');
  w(`soak: ${MINUTES} min, ${recs.length} children at ${RATE}/s, ${churned} clients joined and left; samples every ${SAMPLE_S} s in ${OUT}`);
  w(`RSS: ${start.rss_mb} MB at t=0, ${afterWarmup.rss_mb} MB after the warm-up (t=${afterWarmup.t} s), ${end.rss_mb} MB at the end (t=${end.t} s), max ${maxRss} MB`);
  if (growth.judged) {
    w(
      `RSS slope after the warm-up: ${growth.rss_slope_mb_per_min} MB/min of the peaks (limit ${round(MAX_RSS_GROWTH / 10, 3)}), ${growth.rss_slope_all_samples_mb_per_min} MB/min over every sample (not judged: GC sawtooth)`,
    );
    w(`RSS peak: ${growth.rss_peak_first_third_mb} MB in the first third, ${growth.rss_peak_last_third_mb} MB in the last (allowed ${growth.rss_peak_allowed_rise_mb} MB more)`);
    w(
      `fds: ${start.fds} at the start, ${end.fds} at the end; less the short-lived clients: ${growth.fd_slope_per_min}/min (fitted growth ${growth.fd_growth_fitted}), at most ${growth.fd_max_first_third} in the first third, ${growth.fd_max_last_third} in the last`,
    );
  } else {
    w(`fds: ${start.fds} at the start, ${end.fds} at the end`);
  }
  for (const r of results) w(`steady client ${r.client}: ${r.lines} lines, ${r.missing} children incomplete, ${r.lost} lost`);
  const failures = [...growth.failures];
  for (const r of results) if (r.missing || r.lost) failures.push(`steady client ${r.client}: ${r.missing} children incomplete, ${r.lost} lost`);
  for (const f of failures) w(`soak: ${f}`);
  w(failures.length === 0 ? 'soak: OK' : 'soak: FAILED');
  process.exit(failures.length === 0 ? 0 : 1);
}

if (MAIN) {
  main().catch((e) => {
    process.stderr.write(`soak: ${e.stack || e}\n`);
    process.exit(1);
  });
} else {
  module.exports = { judgeGrowth, slope };
}
