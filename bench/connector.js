#!/usr/bin/env node
'use strict';
/*
 * The connector alone (no daemon, no clients): a storm from the C generator, every child's
 * fork, exec and exit looked for in the ProcConnector's own events.
 *
 *   node bench/connector.js [tiny|1ms] [N] [P]      (as root; builds with `npm run bench` first)
 *
 * Prints spawns/s, events/s, completeness, argv captured, and the connector's loss counters.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFile } = require('child_process');
const { ProcConnector } = require('..');
const { build, BUILD } = require('./run');

const kind = process.argv[2] || 'tiny';
const n = process.argv[3] || '20000';
const p = process.argv[4] || '8';
build();
const child = path.join(BUILD, kind === '1ms' ? 'pmbench-1ms' : 'pmbench-tiny');
const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pmconn-')), 'pids');
const c = new ProcConnector({ events: 'fork,exec,exit' }).start();
const evs = [];
let lost = 0;
c.on('batch', (b) => {
  for (const e of b) {
    if (e.event === 'lost') lost += e.count;
    else evs.push(e);
  }
});
setTimeout(() => {
  execFile(path.join(BUILD, 'spawnstorm'), ['-n', n, '-p', p, '-c', child, '-o', pidFile], (err, out) => {
    if (err) throw err;
    setTimeout(() => {
      c.stop();
      const storm = JSON.parse(out);
      // pid -> the children that had it, in spawn order (pids are reused in a long storm)
      const recs = fs
        .readFileSync(pidFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ').map(Number));
      const byPid = new Map();
      for (const e of evs) {
        const pid = e.event === 'fork' ? e.child_pid : e.pid;
        if (!byPid.has(pid)) byPid.set(pid, []);
        byPid.get(pid).push(e);
      }
      let complete = 0;
      let argv = 0;
      const pos = new Map();
      for (const [index, pid, , wstatus] of recs) {
        const l = byPid.get(pid) || [];
        for (let i = pos.get(pid) || 0; i + 2 < l.length; i++) {
          if (l[i].event === 'fork' && l[i + 1].event === 'exec' && l[i + 2].event === 'exit' && l[i + 2].exit_code === wstatus) {
            complete++;
            if (l[i + 1].argv[1] === String(index)) argv++;
            pos.set(pid, i + 3);
            break;
          }
        }
      }
      const seconds = storm.elapsed;
      process.stdout.write(
        JSON.stringify({
          child: kind,
          children: recs.length,
          spawns_per_s: storm.spawns_per_s,
          events_per_s: Math.round((recs.length * 3) / seconds),
          complete: complete / recs.length,
          argv: argv / recs.length,
          lost,
          stats: c.stats(),
        }) + '\n',
      );
      fs.rmSync(path.dirname(pidFile), { recursive: true, force: true });
    }, 1500);
  });
}, 200);
