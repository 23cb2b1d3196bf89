'use strict';
// ProcConnector in worker_threads: the addon is context-aware (per-environment state), several
// environments run connectors at once, a terminated worker is cleaned up (environment cleanup
// hook), and an unref'd connector does not keep its thread alive.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { spawn, spawnSync } = require('node:child_process');
const { ProcConnector } = require('..');

const LIB = path.join(__dirname, '..', 'dist', 'index.js');

// A worker that runs a connector for exec events, reports those carrying `marker`, and stops
// on 'stop' (then closes its port, so that it ends by itself: nothing may keep it alive).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { ProcConnector } = require(workerData.lib);
const conn = new ProcConnector({ events: 'exec' });
conn.on('exec', (ev) => {
  if (ev.argv.includes(workerData.marker)) parentPort.postMessage({ type: 'exec', pid: ev.pid, argv: ev.argv });
});
conn.on('close', () => parentPort.postMessage({ type: 'close' }));
conn.start();
parentPort.postMessage({ type: 'ready' });
parentPort.on('message', (m) => {
  if (m === 'stop') {
    conn.stop();
    parentPort.close();
  }
});
`;

function startWorker(marker) {
  const w = new Worker(WORKER, { eval: true, workerData: { lib: LIB, marker } });
  const messages = [];
  const listeners = new Set();
  w.on('message', (m) => {
    messages.push(m);
    for (const l of listeners) l();
  });
  const exited = new Promise((resolve, reject) => {
    w.on('exit', resolve);
    w.on('error', reject);
  });
  const until = (pred, what, ms = 15000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const m = messages.find(pred);
        if (!m) return;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(m);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`worker: timed out waiting for ${what}; got ${JSON.stringify(messages)}`));
      }, ms);
      listeners.add(check);
      check();
    });
  return { w, messages, exited, until };
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

test('two workers and the main thread run connectors at once; each sees the same exec; all stop cleanly', async () => {
  const marker = `pm-worker-${process.pid}-${Date.now()}`;
  const workers = [startWorker(marker), startWorker(marker)];
  const main = new ProcConnector({ events: 'exec' });
  const mainSeen = [];
  main.on('exec', (ev) => {
    if (ev.argv.includes(marker)) mainSeen.push(ev);
  });
  main.start();
  try {
    await Promise.all(workers.map((x) => x.until((m) => m.type === 'ready', 'ready')));
    const child = spawn('/bin/sh', ['-c', 'sleep 0.3; exit 0', marker], { stdio: 'ignore' });
    await new Promise((resolve) => child.on('exit', resolve));
    const evs = await Promise.all(workers.map((x) => x.until((m) => m.type === 'exec', 'exec')));
    for (const ev of evs) {
      assert.equal(ev.pid, child.pid);
      assert.deepEqual(ev.argv, ['/bin/sh', '-c', 'sleep 0.3; exit 0', marker]);
    }
    await withTimeout(
      (async () => {
        while (!mainSeen.length) await new Promise((r) => setTimeout(r, 20));
      })(),
      15000,
      'exec in the main thread',
    );
    assert.equal(mainSeen[0].pid, child.pid);
  } finally {
    main.stop();
    for (const x of workers) x.w.postMessage('stop');
  }
  // Each worker ends by itself once stopped (no handle left behind), with exit code 0.
  const codes = await withTimeout(Promise.all(workers.map((x) => x.exited)), 15000, 'workers to end after stop()');
  assert.deepEqual(codes, [0, 0]);
  for (const x of workers)
    assert.ok(
      x.messages.some((m) => m.type === 'close'),
      'close emitted in the worker',
    );
  assert.equal(main.running, false);
});

// A worker torn down while a batch is being delivered: JS execution may be terminated at any
// point of the delivery, so every Node-API call may fail there. The addon must neither throw
// (NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS) nor touch freed state.
test('terminating workers while their connectors run and events flow does not crash the process', () => {
  // In a child process, so that a crash (or a hang at exit) shows as such.
  const script = `
    const { Worker } = require('node:worker_threads');
    const { spawn } = require('node:child_process');
    const { ProcConnector } = require(${JSON.stringify(LIB)});
    const WORKER = ${JSON.stringify(WORKER)};
    (async () => {
      for (let round = 0; round < 12; round++) {
        const w = new Worker(WORKER, { eval: true, workerData: { lib: ${JSON.stringify(LIB)}, marker: 'x' } });
        await new Promise((resolve) => w.on('message', (m) => m.type === 'ready' && resolve()));
        // Events are being delivered to the worker while it is torn down.
        const kids = Array.from({ length: 20 }, () => {
          const k = spawn('/bin/true', [], { stdio: 'ignore' });
          return new Promise((r) => k.on('exit', r));
        });
        await new Promise((r) => setTimeout(r, round * 5));
        const code = await w.terminate();
        if (code !== 1) throw new Error('terminate gave ' + code);
        await Promise.all(kids);
      }
      // The process is still healthy: a connector here still works.
      const conn = new ProcConnector({ events: 'exec' });
      conn.start();
      const seen = new Promise((resolve) => conn.on('exec', (ev) => ev.argv.includes('pm-after-terminate') && resolve(ev)));
      spawn('/bin/sh', ['-c', 'sleep 0.3; exit 0', 'pm-after-terminate'], { stdio: 'ignore' });
      await seen;
      conn.stop();
      console.log('ok');
    })().catch((err) => { console.error(err); process.exit(1); });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.signal, null, `killed by ${r.signal}\n${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
});

test("an unref'd connector does not keep a worker (or the process) alive", async () => {
  const w = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const { ProcConnector } = require(workerData.lib);
    const conn = new ProcConnector({ events: 'fork,exec,exit' });
    conn.on('event', () => {});
    conn.start();
    conn.unref();
    parentPort.postMessage({ running: conn.running });
    parentPort.unref();
  `,
    { eval: true, workerData: { lib: LIB } },
  );
  const msg = new Promise((resolve) => w.once('message', resolve));
  const code = await withTimeout(
    new Promise((resolve, reject) => {
      w.on('exit', resolve);
      w.on('error', reject);
    }),
    10000,
    "worker with an unref'd running connector to end",
  );
  assert.deepEqual(await msg, { running: true });
  assert.equal(code, 0);

  // The same in a process's main thread: it exits by itself, while events arrive.
  const t0 = Date.now();
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `const { ProcConnector } = require(${JSON.stringify(LIB)}); const c = new ProcConnector({ events: 'exec' }); c.on('exec', () => {}); c.start(); c.unref(); require('node:child_process').spawn('/bin/true'); setTimeout(() => {}, 200);`,
    ],
    { encoding: 'utf8', timeout: 20000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.signal, null, 'it had to be killed: the connector kept it alive');
  assert.ok(Date.now() - t0 < 15000);
});
