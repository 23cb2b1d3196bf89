'use strict';
// --metrics: a real daemon (bin/procMonitor), real clients, real processes, scraped over HTTP.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { run } = require('./helpers');
const { tmpDir, until } = require('./server-helpers');
const { BIN, daemon, ndjsonClient } = require('./daemon');

const ROOT = path.join(__dirname, '..');

function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
      })
      .on('error', reject);
  });
}

/** The value of one sample in Prometheus text, e.g. sample(text, 'procmonitor_clients{transport="unix"}'). */
function sample(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

test('--metrics: a real scrape counts the exec of a spawned process and the connected clients', async (t) => {
  const dir = tmpDir(t, 'pm-metrics-');
  const sockPath = path.join(dir, 'pm.sock');
  const cp = daemon(t, ['--socket', sockPath, '-e', 'exec,exit', '--metrics', '127.0.0.1:0']);
  await cp.ready;
  const url = (await cp.saw(/metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1];

  const first = await get(url);
  assert.equal(first.status, 200);
  assert.match(first.type, /^text\/plain; version=0\.0\.4/);
  const execBefore = sample(first.body, 'procmonitor_events_total{event="exec"}');
  assert.equal(typeof execBefore, 'number', 'the exec counter is there from the start');
  assert.equal(sample(first.body, 'procmonitor_clients{transport="unix"}'), 0);

  // Two clients connect; a process runs; both see its exec.
  const a = await ndjsonClient(t, sockPath);
  const b = await ndjsonClient(t, sockPath);
  await cp.saw(/client \d+ connected \(2\/10\)/);
  const { pid } = await run('/bin/sh', ['-c', 'exit 0', 'pm-metrics-marker']);
  const sawExec = (s) => s.events.some((e) => e.event === 'exec' && e.pid === pid);
  await until(() => sawExec(a) && sawExec(b), 10000, `the exec of ${pid}`);

  const second = (await get(url)).body;
  assert.ok(sample(second, 'procmonitor_events_total{event="exec"}') >= execBefore + 1, 'the exec counter moved');
  assert.equal(sample(second, 'procmonitor_clients{transport="unix"}'), 2);
  assert.equal(sample(second, 'procmonitor_clients{transport="tcp"}'), 0);
  assert.ok(sample(second, 'procmonitor_client_sent_bytes_total') > 0);
  assert.ok(sample(second, 'procmonitor_client_sent_events_total') >= 2);
  assert.equal(sample(second, 'procmonitor_clients_accepted_total'), 2);
  for (const source of ['kernel', 'queue', 'client']) {
    assert.equal(typeof sample(second, `procmonitor_lost_events_total{source="${source}"}`), 'number', source);
  }
  for (const transport of ['unix', 'tcp']) {
    assert.equal(typeof sample(second, `procmonitor_client_dropped_events_total{transport="${transport}"}`), 'number');
    assert.equal(typeof sample(second, `procmonitor_client_backlog_bytes_max{transport="${transport}"}`), 'number');
  }
  assert.ok(sample(second, 'procmonitor_kernel_events_received_total') >= 2);
  assert.ok(sample(second, 'procmonitor_kernel_rcvbuf_bytes') > 0);
  assert.equal(typeof sample(second, 'procmonitor_kernel_enobufs_total'), 'number');
  assert.equal(typeof sample(second, 'procmonitor_queue_depth'), 'number');
  assert.ok(sample(second, 'procmonitor_process_table_size') > 0);
  // Counters are typed as such, and prom-client's default process metrics are there.
  assert.match(second, /^# TYPE procmonitor_events_total counter$/m);
  assert.match(second, /^# TYPE procmonitor_clients gauge$/m);
  assert.match(second, /^# HELP procmonitor_lost_events_total /m);
  assert.ok(sample(second, 'process_cpu_user_seconds_total') >= 0);
  assert.ok(sample(second, 'process_resident_memory_bytes') > 0);
  assert.match(second, /^nodejs_heap_size_used_bytes /m);

  // One client leaves: the gauge follows. (Its EOF alone could be a half-close, after which
  // it would still read: the daemon sees it gone at the next event written to it.)
  a.sock.destroy();
  const gone = cp.saw(/client \d+ closed \(end/);
  let settled = false;
  gone.then(
    () => (settled = true),
    () => (settled = true), // saw() gave up: `await gone` below fails the test
  );
  while (!settled) await run('/bin/true', []);
  await gone;
  assert.equal(sample((await get(url)).body, 'procmonitor_clients{transport="unix"}'), 1);

  // Anything but /metrics is a 404.
  assert.equal((await get(url.replace(/\/metrics$/, '/'))).status, 404);

  cp.kill('SIGTERM');
  assert.deepEqual(await cp.exited, { code: 0, signal: null });
  assert.ok(!fs.existsSync(sockPath));
});

test('--metrics: bad values and a port in use get one clear line, exit status 2, no stack trace', async (t) => {
  const dir = tmpDir(t, 'pm-metrics-');
  const busy = net.createServer();
  await new Promise((r) => busy.listen(0, '127.0.0.1', r));
  t.after(() => busy.close());
  const busyPort = busy.address().port;
  const sockPath = path.join(dir, 'pm.sock');
  const cases = [
    [['--metrics', 'localhost'], /--metrics must be HOST:PORT/],
    [['--metrics', '127.0.0.1:'], /--metrics needs a port/],
    [['--metrics', '127.0.0.1:65536'], /port must be a whole number from 0 to 65535, got "65536"/],
    [['--metrics', '127.0.0.1:http'], /port must be a whole number/],
    [['--metrics', '::1:9464'], /--metrics must be HOST:PORT/],
    [['--metrics'], /--metrics needs a value/],
    [['--socket', sockPath, '--metrics', `127.0.0.1:${busyPort}`], new RegExp(`cannot serve on 127\\.0\\.0\\.1:${busyPort}: address already in use`)],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, `${args.join(' ')}: status ${r.status}, stderr ${r.stderr}`);
    const errors = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !/listening on unix socket|closed$/.test(l));
    assert.equal(errors.length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
    assert.match(errors[0], /^procMonitor: /);
    assert.match(errors[0], re, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.ok(!fs.existsSync(sockPath), 'the socket of the daemon that could not serve metrics is gone');
});

test('--help documents --metrics and the syslog options', () => {
  const r = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  for (const opt of [
    '--metrics HOST:PORT',
    '--syslog ',
    '--syslog-socket PATH',
    '--syslog-target',
    '--syslog-events',
    '--syslog-facility',
    'default: /dev/log',
    'default: local0',
  ]) {
    assert.ok(r.stdout.includes(opt), `help mentions ${opt}`);
  }
});

test('prom-client is loaded only for --metrics: not by require("procmonitor"), not by the CLI module', () => {
  const script = `
    require(${JSON.stringify(ROOT)});
    require(${JSON.stringify(path.join(ROOT, 'dist', 'cli', 'daemon.js'))});
    const loaded = Object.keys(require.cache).filter((f) => f.includes('prom-client'));
    console.log(JSON.stringify(loaded));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), []);
});
