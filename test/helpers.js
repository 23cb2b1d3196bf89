'use strict';
// Shared test helpers: record a connector's events and wait for those of the processes a
// test spawned (other processes run on the machine too).
const { spawn } = require('node:child_process');
const fs = require('node:fs');

/**
 * This process's comm, as the kernel reports it in events: "node" up to Node.js 22, the main
 * thread's name ("MainThread") from Node.js 24, which names its threads.
 */
const SELF_COMM = fs.readFileSync('/proc/self/comm', 'utf8').trim();

/** Records every event of `conn` from now on; `until(pred)` waits for a recorded state. */
function record(conn) {
  const events = [];
  const waiters = new Set();
  const on = (ev) => {
    events.push(ev);
    for (const w of waiters) w();
  };
  conn.on('event', on);
  return {
    events,
    of(pid) {
      return events.filter(about(pid));
    },
    until(pred, timeoutMs = 10000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(events)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(events);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting; ${events.length} events recorded`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    stop() {
      conn.off('event', on);
    },
  };
}

/** Runs a command to completion; resolves with { pid, code, signal }. */
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const cp = spawn(cmd, args, { stdio: 'ignore', ...opts });
    cp.on('error', reject);
    cp.on('exit', (code, signal) => resolve({ pid: cp.pid, code, signal }));
  });
}

/** Events about pid (as child, subject or thread of it). */
function about(pid) {
  return (ev) => ev.child_pid === pid || ev.pid === pid || ev.child_tgid === pid || ev.tgid === pid;
}

/** Waits until the process exit of pid is recorded. */
function exited(pid) {
  return (evs) => evs.some((e) => e.event === 'exit' && e.pid === pid && !e.thread);
}

/**
 * A busy host: spawns /bin/true (with `tag` as its argument) over and over until stop(); `pids`
 * holds every pid it made.
 */
function busyHost(tag) {
  let stopped = false;
  const pids = [];
  const loop = (async () => {
    while (!stopped) {
      const p = spawn('/bin/true', [tag], { stdio: 'ignore' });
      pids.push(p.pid);
      await new Promise((r) => p.on('exit', r));
    }
  })();
  return {
    pids,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

module.exports = { record, run, about, exited, busyHost, SELF_COMM };
