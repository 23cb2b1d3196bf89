'use strict';
// Helpers for the broadcast server and client tests: temp dirs, a server closed after the
// test, a fake event source, raw socket clients that record every byte, a poller.
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { createBroadcastServer } = require('..');

/** A fresh temp dir (its name starts with prefix), removed after the test. */
function tmpDir(t, prefix = 'pm-srv-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A listening broadcast server, closed after the test. */
async function serve(t, opts) {
  const srv = createBroadcastServer(opts);
  t.after(() => srv.close());
  await srv.listen();
  return srv;
}

/** Runs a command to its end; resolves with its pid. */
function spawnAndWait(cmd, args) {
  return new Promise((resolve, reject) => {
    const cp = require('node:child_process').spawn(cmd, args, { stdio: 'ignore' });
    cp.on('error', reject);
    cp.on('exit', () => resolve(cp.pid));
  });
}

/** Resolves with the next `name` event of `emitter` for which `pred` holds. */
function waitFor(emitter, name, pred = () => true) {
  return new Promise((resolve) => {
    const on = (x) => {
      if (!pred(x)) return;
      emitter.off(name, on);
      resolve(x);
    };
    emitter.on(name, on);
  });
}

/** An EventEmitter source of numbered synthetic events: each has `n` (0, 1, 2, ...). */
class FakeSource extends EventEmitter {
  constructor() {
    super();
    this.n = 0;
  }
  /** Emits one batch of n events. */
  batch(size, pad = 0) {
    const evs = [];
    for (let i = 0; i < size; i++) {
      const n = this.n++;
      evs.push({ event: 'exec', time: new Date(1700000000000 + n).toISOString(), pid: 100000 + n, user: 'root', uid: 0, cmdline: 'x'.repeat(pad), n });
    }
    this.emit('batch', evs);
    return evs;
  }
  /** Emits `batches` batches of `size`, yielding to the event loop between them. */
  async stream(batches, size, pad = 0, every = 1) {
    for (let b = 0; b < batches; b++) {
      this.batch(size, pad);
      if (b % every === 0) await new Promise((r) => setImmediate(r));
    }
  }
}

/** A raw client: records all bytes; `lines()` are the complete lines so far. */
function rawConnect(target) {
  const sock = typeof target === 'string' ? net.createConnection(target) : net.createConnection({ host: '127.0.0.1', ...target });
  const rec = { sock, chunks: [], closed: false, error: null };
  rec.text = () => Buffer.concat(rec.chunks).toString('utf8');
  rec.lines = () => {
    const t = rec.text();
    const parts = t.split('\n');
    parts.pop();
    return parts;
  };
  sock.on('data', (c) => rec.chunks.push(c));
  sock.on('error', (e) => (rec.error = e));
  rec.closedP = new Promise((resolve) => sock.on('close', () => ((rec.closed = true), resolve())));
  rec.connected = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return rec;
}

/**
 * Resolves with pred()'s value once it is truthy (pred may be async; polled every 10 ms);
 * rejects if pred throws, or after ms naming what.
 */
async function until(pred, ms = 10000, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Connects over TCP and completes the handshake; resolves with the raw client once authenticated. */
async function tcpAuth(port, password, { seed = false } = {}) {
  const rec = rawConnect({ port });
  await until(() => rec.text().startsWith('Password: ') || rec.closed, 10000, 'prompt');
  // An empty request line after the password asks for the plain stream, batched; a client
  // that sends nothing more (`seed`) is served as the seed's own client: a line a write, paced.
  rec.sock.write(seed ? `${password}\n` : `${password}\n\n`);
  await until(() => rec.text().includes('\n') || rec.closed, 10000, 'auth answer');
  return rec;
}

/** Events (parsed JSON lines) in a raw client's stream, skipping handshake lines. */
function events(rec) {
  return rec
    .lines()
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/**
 * Checks a stream of synthetic events and lost lines accounts for n 0..total-1 exactly:
 * events in order, every gap announced by a lost line with its exact count. Returns
 * { received, lost, lostLines }.
 */
function checkAccounting(evs, total) {
  let next = 0;
  let received = 0;
  let lost = 0;
  let lostLines = 0;
  let owed = 0;
  for (const ev of evs) {
    if (ev.event === 'lost') {
      if (ev.source !== 'client') throw new Error(`unexpected lost source ${ev.source}`);
      lostLines++;
      lost += ev.count;
      owed += ev.count;
      continue;
    }
    if (ev.n !== next + owed) throw new Error(`expected n ${next + owed}, got ${ev.n} (owed ${owed})`);
    next = ev.n + 1;
    owed = 0;
    received++;
  }
  if (next + owed !== total) throw new Error(`stream accounts for ${next + owed} events of ${total}`);
  return { received, lost, lostLines };
}

/** Streams events of `source` in batches of 20 until stop() says so; resolves with the count. */
function feeder(source) {
  let stop = false;
  const done = (async () => {
    while (!stop) await source.stream(1, 20, 50);
    return source.n;
  })();
  return { stop: () => ((stop = true), done) };
}

module.exports = { tmpDir, serve, waitFor, spawnAndWait, FakeSource, rawConnect, until, tcpAuth, events, checkAccounting, feeder };
