#!/usr/bin/env node
'use strict';
/*
 * What each context group costs per exec (ProcConnector options login, tty, namespaces, env):
 * the reader thread's own CPU time (/proc/self/task/TID/schedstat, ns) over a storm of 1 ms
 * children (alive long enough for every /proc read), with none of the groups on and with
 * each, side by side: the configurations take turns, round after round, and each round's
 * figures are divided by that round's "none" (the machine is shared and noisy).
 *
 *   node bench/context.js [ROUNDS] [N]      (as root; default 5 rounds of 3000 children)
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { ProcConnector } = require('..');
const { build, BUILD } = require('./run');

const rounds = Number(process.argv[2] || 5);
const n = Number(process.argv[3] || 3000);
const CONFIGS = {
  none: { login: false, tty: false },
  login: { login: true, tty: false },
  tty: { login: false, tty: true },
  'login+tty (default)': {},
  namespaces: { login: false, tty: false, namespaces: true },
  'env (2 names)': { login: false, tty: false, env: ['PATH', 'HOME'] },
  all: { namespaces: true, env: ['PATH', 'HOME'] },
};

/** The reader thread's CPU time so far, ns. */
function readerNs() {
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      if (fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'procmon-reader') {
        return Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      }
    } catch {
      // a thread that ended meanwhile
    }
  }
  throw new Error('no reader thread');
}

function once(options) {
  const c = new ProcConnector({ events: 'fork,exec,exit', ...options }).start();
  let execs = 0;
  let full = 0;
  c.on('exec', (e) => {
    execs++;
    if (!e.missing) full++;
  });
  // (the thread names itself once it runs)
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  const before = readerNs();
  const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pmctx-')), 'pids');
  execFileSync(path.join(BUILD, 'spawnstorm'), ['-n', String(n), '-p', '4', '-c', path.join(BUILD, 'pmbench-1ms'), '-o', pidFile]);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  const ns = readerNs() - before;
  return new Promise((resolve) =>
    setImmediate(() => {
      c.stop();
      fs.rmSync(path.dirname(pidFile), { recursive: true });
      resolve({ ns, execs, full });
    }),
  );
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  build();
  const per = Object.fromEntries(Object.keys(CONFIGS).map((k) => [k, { us: [], ratio: [], full: [] }]));
  for (let r = 0; r < rounds; r++) {
    const base = {};
    // Each round in another order: none of them always runs first, or last.
    const names = Object.keys(CONFIGS);
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const name of order) base[name] = await once(CONFIGS[name]);
    for (const name of names) {
      const x = base[name];
      per[name].us.push(x.ns / 1000 / x.execs);
      per[name].ratio.push(x.ns / base.none.ns);
      per[name].full.push(x.full / x.execs);
    }
  }
  console.log(`reader CPU per exec, ${rounds} rounds of ${n} children living 1 ms (median; ratio to "none" in the same round)`);
  console.log('| groups on | µs per exec | ratio to none (min-max) | extra µs per exec | execs with every field |');
  console.log('|:--|--:|--:|--:|--:|');
  const noneUs = median(per.none.us);
  for (const [name, p] of Object.entries(per)) {
    const us = median(p.us);
    console.log(
      `| ${name} | ${us.toFixed(1)} | ${median(p.ratio).toFixed(2)} (${Math.min(...p.ratio).toFixed(2)}-${Math.max(...p.ratio).toFixed(2)}) | ${(us - noneUs).toFixed(1)} | ${(100 * median(p.full)).toFixed(2)}% |`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
