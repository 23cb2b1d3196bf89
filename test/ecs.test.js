'use strict';
// Events as Elastic Common Schema documents: the mapping (pure), the daemon's --schema ecs
// (stdout and a file), a client's {"schema":"ecs"} request next to a client of the default
// wire format on the same server, procMonitor-client --schema ecs. The hazards: a field
// mapped wrong or lost, an ECS stream with a line in the other format (Elasticsearch refuses
// a document whose `event` is a string where it maps an object), the default format changed.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ProcConnector, connect, toEcs, ecsLines, linesOf, ECS_VERSION } = require('..');
const { daemon, BIN } = require('./daemon');
const { rawConnect, serve, tmpDir, until } = require('./server-helpers');

const CLIENT_BIN = path.join(__dirname, '..', 'bin', 'procMonitor-client');

test('toEcs: every kind of event to the ECS fields the issue names, the rest under procmonitor.*', () => {
  const time = '2026-12-08T03:00:00.000Z';
  const exit = toEcs(
    {
      event: 'exit',
      pid: 10,
      ppid: 1,
      time,
      code: 2,
      signal: null,
      core: false,
      exit_code: 512,
      duration_ms: 5.5,
      comm: 'tar',
      cmdline: 'tar -c',
      exe: '/usr/bin/tar',
      user: 'root',
      uid: 0,
      exec_id: 'b:10:1',
      parent_exec_id: 'b:1:1',
      cgroup: '/docker/abc',
      container_id: 'abc',
      cwd: '/root',
      seq: 7,
      learned: true,
    },
    'h1',
  );
  assert.deepEqual(exit, {
    '@timestamp': time,
    ecs: { version: ECS_VERSION },
    event: {
      kind: 'event',
      category: ['process'],
      type: ['end'],
      action: 'exit',
      module: 'procmonitor',
      dataset: 'procmonitor.process',
      sequence: 7,
      outcome: 'failure',
      duration: 5500000,
    },
    host: { name: 'h1' },
    process: {
      pid: 10,
      parent: { pid: 1, entity_id: 'b:1:1' },
      entity_id: 'b:10:1',
      executable: '/usr/bin/tar',
      name: 'tar',
      command_line: 'tar -c',
      working_directory: '/root',
      user: { id: '0', name: 'root' },
      exit_code: 2,
      end: time,
    },
    user: { id: '0', name: 'root' },
    container: { id: 'abc' },
    procmonitor: { exit_code: 512, core: false, cgroup: '/docker/abc', learned: true },
  });
  const exec = toEcs(
    { event: 'exec', pid: 11, ppid: 10, time, argv: ['ls', '-l'], cmdline: 'ls -l', comm: 'ls', exe: '/usr/bin/ls', user: 'alice', uid: 1000, ancestors: [{ pid: 10 }] },
    'h1',
  );
  assert.deepEqual(exec.process.args, ['ls', '-l']);
  assert.equal(exec.process.args_count, 2);
  assert.equal(exec.process.start, time);
  assert.deepEqual(exec.event.type, ['start']);
  assert.deepEqual(exec.procmonitor.ancestors, [{ pid: 10 }]);
  const fork = toEcs({ event: 'fork', child_pid: 12, parent_pid: 11, time, thread: true }, 'h1');
  assert.equal(fork.process.pid, 12);
  assert.equal(fork.process.parent.pid, 11);
  assert.equal(fork.process.thread.id, 12);
  assert.equal(toEcs({ event: 'exit', pid: 3, time, code: 0 }, 'h').event.outcome, 'success');
  assert.equal(toEcs({ event: 'exit', pid: 3, time, code: null, signal: 'SIGKILL' }, 'h').event.outcome, 'failure');
  assert.deepEqual(toEcs({ event: 'uid', pid: 3, time, ruid: 0, euid: 1000 }, 'h').event.type, ['change']);
  const lost = toEcs({ event: 'lost', time, count: 5, source: 'client' }, 'h');
  assert.equal(lost.event.kind, 'metric');
  assert.deepEqual(lost.procmonitor, { count: 5, source: 'client' });
  // Line for line: kinds and uids kept (NATS subjects, per-user routing).
  const batch = linesOf([
    { event: 'exec', pid: 1, time, uid: 5, cmdline: 'echo héllo wörld ✓' },
    { event: 'lost', time, count: 1, source: 'queue' },
  ]);
  const e = ecsLines(batch, 'h');
  assert.equal(e.ends.length, 2);
  assert.deepEqual([...e.kinds], [...batch.kinds]);
  assert.deepEqual([...e.uids], [...batch.uids]);
  const lines = e.buf
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  // (Line ends are byte offsets: text that is not ASCII must not shift the lines after it.)
  assert.deepEqual(lines[0], toEcs({ event: 'exec', pid: 1, time, uid: 5, cmdline: 'echo héllo wörld ✓' }, 'h'));
  assert.deepEqual(lines[1], toEcs({ event: 'lost', time, count: 1, source: 'queue' }, 'h'));
  // A line already in ECS stays as it is (an ECS source served to a client that asks for ECS).
  assert.deepEqual(ecsLines(e, 'h').buf, e.buf);
  assert.equal(e.ends[1], e.buf.length);
});

/** The events of NDJSON text. */
const parse = (text) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

test('--schema ecs: --direct and --output write ECS documents for the same real process the default format describes', async (t) => {
  const dir = tmpDir(t, 'pm-ecs-');
  const file = path.join(dir, 'events.ndjson');
  const truth = new ProcConnector({ events: 'exec,exit' }).start();
  t.after(() => truth.stop());
  const seen = [];
  truth.on('event', (e) => seen.push(e));
  const cp = await daemon(t, ['--direct', '--schema', 'ecs', '--output', file, '-e', 'exec,exit']).ready;
  const child = spawn('/bin/sh', ['-c', 'sleep 0.2; exit 4', 'pm-ecs-run'], { stdio: 'ignore' });
  await new Promise((r) => child.on('exit', r));
  await until(() => cp.out.includes(`"pid":${child.pid},`) && parse(cp.out).some((d) => d.event.action === 'exit' && d.process.pid === child.pid), 10000, 'the exit on stdout');
  await until(() => seen.some((e) => e.event === 'exit' && e.pid === child.pid), 10000, 'the exit in the connector');
  await cp.stop();
  const stdout = parse(cp.out);
  const inFile = parse(fs.readFileSync(file, 'utf8'));
  for (const docs of [stdout, inFile]) {
    assert.ok(docs.length > 0);
    for (const d of docs) {
      assert.equal(typeof d['@timestamp'], 'string', 'every line an ECS document');
      assert.equal(d.ecs.version, ECS_VERSION);
      assert.equal(d.host.name, os.hostname());
    }
    for (const kind of ['exec', 'exit']) {
      const want = seen.find((e) => e.event === kind && e.pid === child.pid);
      const got = docs.find((d) => d.event.action === kind && d.process.pid === child.pid);
      assert.ok(got, `${kind} of the child`);
      const { '@timestamp': _ts, event: _ev, host: _host, ...rest } = toEcs(want);
      const { '@timestamp': _ts2, event: _ev2, host: _host2, ...gotRest } = got;
      // (The two readers see the same process; times and a learned flag may differ by reader.)
      delete rest.procmonitor;
      delete gotRest.procmonitor;
      delete rest.process.start;
      delete gotRest.process.start;
      delete rest.process.end;
      delete gotRest.process.end;
      assert.deepEqual(gotRest, rest, kind);
    }
    const exit = docs.find((d) => d.event.action === 'exit' && d.process.pid === child.pid);
    assert.equal(exit.process.exit_code, 4);
    assert.equal(exit.event.outcome, 'failure');
    assert.equal(exit.process.executable, fs.realpathSync('/bin/sh'));
    const exec = docs.find((d) => d.event.action === 'exec' && d.process.pid === child.pid);
    assert.deepEqual(exec.process.args, ['/bin/sh', '-c', 'sleep 0.2; exit 4', 'pm-ecs-run']);
  }
  // Usage.
  for (const [args, re] of [
    [['--schema', 'ecs'], /--schema ecs applies to --direct, --output, --nats and --syslog-events/],
    [['--schema', 'ecs', '--direct', '--format', 'text'], /--schema ecs is for JSON/],
    [['--schema', 'elastic', '--direct'], /--schema must be default or ecs, got "elastic"/],
  ]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, re);
  }
});

test('{"schema":"ecs"} in a request: that client gets ECS documents, seq as event.sequence, its filter applied; a default client on the same server is unchanged; a bad schema is refused', async (t) => {
  const dir = tmpDir(t, 'pm-ecs-srv-');
  const sockPath = path.join(dir, 's.sock');
  const conn = new ProcConnector({ events: 'fork,exec,exit' }).start();
  t.after(() => conn.stop());
  const srv = await serve(t, { source: conn, unix: { path: sockPath } });
  const plain = connect({ path: sockPath });
  const ecs = connect({ path: sockPath, request: { schema: 'ecs', match: { argv: ['*pm-ecs-req*'] } } });
  t.after(() => Promise.all([plain.close(), ecs.close()]));
  const a = [];
  const b = [];
  plain.on('event', (e) => a.push(e));
  ecs.on('event', (e) => b.push(e));
  let perKind = 0;
  ecs.on('exec', () => perKind++);
  await Promise.all([plain.ready(), ecs.ready()]);
  const cli = spawn(process.execPath, [CLIENT_BIN, '-s', sockPath, '--json', '--schema', 'ecs', '-e', 'exec'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => cli.kill());
  let cliOut = '';
  cli.stdout.on('data', (d) => (cliOut += d));
  await until(() => srv.stats().clients === 3, 10000, 'procMonitor-client connected');
  await new Promise((r) => setTimeout(r, 200)); // (its request answered: it streams)
  const child = spawn('/bin/sh', ['-c', 'sleep 0.2; true', 'pm-ecs-req'], { stdio: 'ignore' });
  await new Promise((r) => child.on('exit', r));
  await until(() => b.some((d) => d.event.action === 'exit' && d.process.pid === child.pid), 10000, 'the ECS client');
  await until(() => a.some((e) => e.event === 'exit' && e.pid === child.pid), 10000, 'the default client');
  await until(() => cliOut.includes(`"pid":${child.pid},`), 10000, 'procMonitor-client');
  // The default client: the wire format as ever.
  assert.ok(a.every((e) => typeof e.event === 'string' && typeof e.seq === 'number'));
  // The ECS client: its filter's events only, each the ECS document of the default client's line with the same seq.
  assert.ok(b.length > 0);
  const bySeq = new Map(a.map((e) => [e.seq, e]));
  for (const d of b) {
    const e = bySeq.get(d.event.sequence);
    assert.ok(e, `seq ${d.event.sequence} in the default stream`);
    assert.deepEqual(d, toEcs(e));
    // (A fork line is matched by what it says of the parent: the child's own children's forks pass.)
    assert.ok(d.process.pid === child.pid || (d.event.action === 'fork' && d.process.parent.pid === child.pid), `only the matched process: ${JSON.stringify(d.event)}`);
  }
  assert.equal(perKind, 0, 'ECS documents come as "event" only');
  // procMonitor-client --schema ecs --json -e exec.
  const printed = parse(cliOut);
  assert.ok(printed.length > 0 && printed.every((d) => d.event.action === 'exec'));
  assert.ok(printed.some((d) => d.process.pid === child.pid));
  // Refusals.
  const bad = spawnSync(process.execPath, [CLIENT_BIN, '-s', sockPath, '--schema', 'ecs'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--schema ecs prints JSON: give --json/);
  const raw = rawConnect(sockPath);
  await raw.connected;
  raw.sock.write('{"schema":"xml"}\n');
  await raw.closedP;
  assert.equal(raw.text(), 'Bad request: schema must be default or ecs. Disconnecting.\n');
});

test('a resuming client of an ECS stream goes on after event.sequence', () => {
  const { Resumer } = require('../dist/client/resume');
  const r = new Resumer({ path: '/nonexistent.sock', request: { schema: 'ecs' }, resume: true });
  r.seen(toEcs({ event: 'exec', pid: 1, time: '2026-12-08T03:00:00.000Z', seq: 42 }));
  assert.equal(r.seq, 42);
});
