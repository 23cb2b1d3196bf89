'use strict';
// The procMonitor command (bin/procMonitor) as the tests run it, and what they run beside it:
// a free port, NDJSON clients of its socket, a nats-server of their own.
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { until } = require('./server-helpers');

const BIN = path.join(__dirname, '..', 'bin', 'procMonitor');

const { NOBODY, NET_ADMIN_ONLY } = require('./kernel');

const running = (cp) => cp.exitCode === null && cp.signalCode === null;

/**
 * Gives a spawned child cp.exited (resolves with { code, signal }) and cp.stop(sig, ms): sends
 * sig unless it has exited; resolves with its exit status, or rejects if it still runs ms
 * later (when ms is given). After the test `t` (anything with after(fn)) it is killed if still
 * running: SIGCONT first (a test may have stopped it), then SIGKILL.
 */
function supervise(t, cp, name) {
  cp.exited = new Promise((resolve) => cp.on('exit', (code, signal) => resolve({ code, signal })));
  cp.stop = async (sig = 'SIGTERM', ms) => {
    if (running(cp)) cp.kill(sig);
    if (ms === undefined) return cp.exited;
    let timer;
    const guard = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${name} still running ${ms} ms after ${sig}: ${cp.err ?? cp.log}`)), ms)));
    try {
      return await Promise.race([cp.exited, guard]);
    } finally {
      clearTimeout(timer);
    }
  };
  t.after(async () => {
    if (running(cp)) {
      try {
        process.kill(cp.pid, 'SIGCONT');
      } catch {}
      cp.kill('SIGKILL');
    }
    await cp.exited;
  });
  return cp;
}

/**
 * Starts `procMonitor ...args`, through `wrap` when given (a command that runs the rest, e.g.
 * ['prlimit', '--nofile=64:64'] or NOBODY), with `env` added to the environment. Besides
 * supervise()'s exited and stop(sig, ms), the child has:
 *  - cp.out, cp.err: its stdout and stderr so far;
 *  - cp.saw(re, ms = 30000): resolves with the match once stderr matches re; rejects if the
 *    daemon exits first, or after ms;
 *  - cp.ready: resolves with cp once the daemon logged that it is watching; rejects if it exits
 *    first (or after 60 s). With `quiet` (by default: --quiet among args), which logs nothing
 *    when it is up, 700 ms after the start instead. Nobody need await it (a daemon expected
 *    to fail).
 */
function daemon(t, args, { wrap = [], env, quiet = args.includes('--quiet') } = {}) {
  const argv = [...wrap, process.execPath, BIN, ...args];
  const cp = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  supervise(t, cp, 'the daemon');
  cp.out = '';
  cp.err = '';
  cp.stdout.setEncoding('utf8');
  cp.stderr.setEncoding('utf8');
  cp.stdout.on('data', (d) => (cp.out += d));
  const waiters = new Set();
  cp.stderr.on('data', (d) => {
    cp.err += d;
    for (const w of waiters) w();
  });
  cp.saw = (re, ms = 30000) =>
    new Promise((resolve, reject) => {
      const settle = (f, v) => {
        waiters.delete(check);
        clearTimeout(timer);
        f(v);
      };
      const check = () => {
        const m = re.exec(cp.err);
        if (m) settle(resolve, m);
      };
      const timer = setTimeout(() => settle(reject, new Error(`timed out waiting for ${re} on the daemon's stderr: ${cp.err}`)), ms);
      cp.exited.then(({ code, signal }) => settle(reject, new Error(`daemon exited with ${code ?? signal} before ${re}: ${cp.err}`)));
      waiters.add(check);
      check();
    });
  const up = quiet
    ? new Promise((resolve, reject) => {
        setTimeout(resolve, 700);
        cp.exited.then(({ code, signal }) => reject(new Error(`daemon exited with ${code ?? signal}: ${cp.err}`)));
      })
    : cp.saw(/watching /, 60000);
  cp.ready = up.then(() => cp);
  cp.ready.catch(() => {});
  return cp;
}

/** A free TCP port on 127.0.0.1 (bound and released). */
async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Connects to a Unix socket path or to { host = '127.0.0.1', port }; resolves with the socket, destroyed after t. */
function connectTo(t, target) {
  return new Promise((resolve, reject) => {
    const s = typeof target === 'string' ? net.connect(target) : net.connect({ host: '127.0.0.1', ...target });
    t.after(() => s.destroy());
    s.once('connect', () => resolve(s));
    s.on('error', reject);
  });
}

/**
 * Parses the NDJSON a socket receives: `events`, its JSON object lines so far (others, e.g. a
 * handshake's, are skipped); until(pred, ms) resolves with them once pred(events) holds, and
 * rejects if the socket closes first, or after ms.
 */
function ndjsonReader(sock) {
  const events = [];
  let buf = '';
  const waiters = new Set();
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('{')) events.push(JSON.parse(line));
    }
    for (const w of waiters) w();
  });
  return {
    sock,
    events,
    until(pred, ms = 20000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => (waiters.delete(check), reject(new Error(`timed out; ${events.length} events: ${JSON.stringify(events.slice(-3))}`))), ms);
        const check = () => pred(events) && (waiters.delete(check), clearTimeout(timer), resolve(events));
        waiters.add(check);
        sock.on('close', () => (clearTimeout(timer), reject(new Error('socket closed: ' + JSON.stringify(events.slice(-3))))));
        check();
      });
    },
  };
}

/** connectTo(), then ndjsonReader() of the socket. */
async function ndjsonClient(t, target) {
  return ndjsonReader(await connectTo(t, target));
}

const NATS_SERVER = (() => {
  const r = spawnSync('/bin/sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
})();

/**
 * Starts nats-server on 127.0.0.1:port with `extra` arguments, supervised (see supervise());
 * resolves once it is ready. cp.log: its output; cp.port.
 */
async function natsServer(t, port, extra = []) {
  if (!NATS_SERVER) throw new Error('nats-server is not installed: apt-get install nats-server (required in CI)');
  const cp = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  supervise(t, cp, 'nats-server');
  cp.log = '';
  cp.port = port;
  cp.stdout.on('data', (d) => (cp.log += d));
  cp.stderr.on('data', (d) => (cp.log += d));
  await until(() => /Server is ready/.test(cp.log) || !running(cp), 20000, 'nats-server to start');
  if (!running(cp)) throw new Error(`nats-server exited: ${cp.log}`);
  return cp;
}

/** procMonitor --direct with args refused as bad usage: status 2, one line on stderr matching re. */
function refusedUsage(args, re) {
  const r = spawnSync(process.execPath, [BIN, '--direct', ...args], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr.trim(), re);
}

/** The JSON lines a daemon printed on stdout, as objects. */
function outEvents(cp) {
  return cp.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

module.exports = {
  refusedUsage,
  outEvents,
  BIN,
  NOBODY,
  NET_ADMIN_ONLY,
  daemon,
  freePort,
  connectTo,
  ndjsonReader,
  ndjsonClient,
  NATS_SERVER,
  natsServer,
};
