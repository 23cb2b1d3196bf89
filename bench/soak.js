#!/usr/bin/env node
'use strict';
/*
 * Soak test (not in CI): steady process churn for a long time with clients joining and leaving.
 *
 *   npm run soak [-- --minutes 10 --rate 300 --steady 4 --churn 1]
 *
 * Starts the daemon on a Unix socket, keeps `steady` clients connected all along, connects a
 * new short-lived client every second (`churn` at a time, each staying 1-4 s, some never
 * reading), and runs the C spawn generator at `rate` spawns per second. Samples the daemon's
 * RSS and open file descriptors every 10 s. At the end every steady client's stream is judged
 * against the generator's pids: each child's fork, exec and exit, in order, with its exit status.
 * Exits 1 if a stream is incomplete or memory / descriptors grew.
 */
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { build, memOf, BUILD, DAEMON } = require('./run');

function opt(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const MINUTES = opt('minutes', 10);
const RATE = opt('rate', 300);
const STEADY = opt('steady', 4);
const CHURN = opt('churn', 1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
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
  build();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmsoak-'));
  const sockPath = path.join(dir, 'soak.sock');
  const daemon = spawn(process.execPath, [DAEMON, '--socket', sockPath, '--clients', String(STEADY + CHURN * 8 + 4), '-e', 'exec,fork,exit', '--quiet'], { stdio: 'inherit' });
  for (let i = 0; i < 50 && !fs.existsSync(sockPath); i++) await sleep(100);
  const steady = [];
  for (let i = 0; i < STEADY; i++) steady.push(steadyClient(await connect(sockPath)));
  await sleep(500);
  const samples = [];
  const sample = () => {
    const m = memOf(daemon.pid);
    samples.push({ t: Math.round((Date.now() - t0) / 1000), rss_mb: m && +m.rss_mb.toFixed(1), fds: fds(daemon.pid) });
  };
  const t0 = Date.now();
  sample();
  const pidFile = path.join(dir, 'pids');
  const n = Math.round(RATE * MINUTES * 60);
  const gen = spawn(path.join(BUILD, 'spawnstorm'), ['-n', String(n), '-p', '4', '-r', String(RATE), '-c', path.join(BUILD, 'pmbench-1ms'), '-o', pidFile], { stdio: ['ignore', 'pipe', 'inherit'] });
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
            if (churned % 3 === 0) s.pause(); // some never read
            else s.resume();
            s.on('error', () => {});
            setTimeout(() => s.destroy(), 1000 + Math.random() * 3000);
          })
          .catch(() => {});
      }
      await sleep(1000);
    }
  })();
  const timer = setInterval(sample, 10000);
  await genDone;
  await churn;
  clearInterval(timer);
  await sleep(3000); // let the last events arrive
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
  const first = samples[1] || samples[0];
  const last = samples[samples.length - 1];
  const maxRss = Math.max(...samples.map((s) => s.rss_mb));
  const report = { minutes: MINUTES, rate: RATE, children: recs.length, generator: JSON.parse(genOut || '{}'), churnedClients: churned, samples, results, rss_start_mb: first.rss_mb, rss_end_mb: last.rss_mb, rss_max_mb: maxRss, fds_start: first.fds, fds_end: last.fds };
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'soak.json'), JSON.stringify(report, null, 1) + '\n');
  process.stdout.write(`soak: ${MINUTES} min, ${recs.length} children at ${RATE}/s, ${churned} clients joined and left\n`);
  process.stdout.write(`RSS ${first.rss_mb} MB after warm-up -> ${last.rss_mb} MB at the end (max ${maxRss}); fds ${first.fds} -> ${last.fds}\n`);
  for (const r of results) process.stdout.write(`steady client ${r.client}: ${r.lines} lines, ${r.missing} children incomplete, ${r.lost} lost\n`);
  const ok = results.every((r) => r.missing === 0 && r.lost === 0) && last.fds <= first.fds + 2 && last.rss_mb <= first.rss_mb * 1.5 + 16;
  process.stdout.write(ok ? 'soak: OK\n' : 'soak: FAILED\n');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`soak: ${e.stack || e}\n`);
  process.exit(1);
});
