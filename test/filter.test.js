'use strict';
// The filter model (option `filter`, --match/--exclude/--subtree/--failed): its patterns and
// rules on their own (C++), then real processes through filtered connectors and a filtered
// daemon, checked against ground truth: an unfiltered connector's events about the same
// processes, filtered here by the rule as documented. The hazards: an event that matches
// left out, one that does not let through, a pattern that backtracks for ever, a bad filter
// taken silently.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ProcConnector, connect } = require('..');
const { runNativeUnit } = require('./native-unit');
const { daemon, ndjsonClient, outEvents, refusedUsage } = require('./daemon');
const { rawConnect, serve, tmpDir, until } = require('./server-helpers');

const CLIENT_BIN = path.join(__dirname, '..', 'bin', 'procMonitor-client');

test('patterns: globs, regular expressions, refusals, linear time (test/native/pattern_test.cc)', (t) =>
  runNativeUnit(t, 'pattern_test', ['test/native/pattern_test.cc', 'native/pattern.cc', 'native/pattern_parse.cc']));

test('the event filter on its own and on lines (test/native/filter_test.cc)', (t) =>
  runNativeUnit(t, 'filter_test', [
    'test/native/filter_test.cc',
    'native/filter.cc',
    'native/line_filter.cc',
    'native/line_reader.cc',
    'native/pattern.cc',
    'native/pattern_parse.cc',
    'native/wire.cc',
    'native/wire_fields.cc',
  ]));

/** Runs `sh -c SCRIPT` (as `opts`), resolves once it has ended: { pid, code }. */
function sh(script, opts = {}) {
  return new Promise((resolve) => {
    const cp = spawn('sh', ['-c', script], { stdio: 'ignore', ...opts });
    cp.on('exit', (code) => resolve({ pid: cp.pid, code }));
  });
}

/** Every pid in the lineage of roots, by the forks among events. */
function lineage(roots, events) {
  const pids = new Set(roots);
  for (const e of events) if (e.event === 'fork' && pids.has(e.parent_pid)) pids.add(e.child_pid);
  return pids;
}

const key = (e) => `${e.event} ${e.event === 'fork' ? e.child_pid : e.pid}`;

test("one filter, four places: filtered connectors, events({filter}), a client's request line and procMonitor-client each get exactly the events of the workload that match, in order", async (t) => {
  const dir = tmpDir(t, 'pm-filter-');
  const filters = {
    // what each filter passes, by the documented rule, of an event as the unfiltered connector saw it
    nobody: [{ match: { user: 'nobody', event: ['exec', 'exit'] } }, (e) => e.user === 'nobody' && (e.event === 'exec' || e.event === 'exit')],
    marked: [{ match: { argv: '/pm-flt-[ab];/' }, exclude: { event: 'fork' } }, (e) => /pm-flt-[ab];/.test(e.cmdline) && e.event !== 'fork'],
    failed: [{ match: { failed: true } }, (e) => e.event === 'exit' && e.exit_code !== 0],
    // (a fork says what the table knows of its process: the child has its parent's cwd and exe)
    where: [{ match: { cwd: `${dir}*` } }, (e) => (e.cwd ?? '').startsWith(dir)],
    noSleep: [{ exclude: { exe: '*/sleep' } }, (e) => !(e.exe ?? '').endsWith('/sleep')],
  };
  const truth = new ProcConnector({ events: 'fork,exec,exit' }).start();
  t.after(() => truth.stop());
  const all = [];
  truth.on('event', (e) => all.push(e));
  const sockPath = path.join(dir, 'srv.sock');
  const srv = await serve(t, { source: truth, unix: { path: sockPath }, tcp: { port: 0, host: '127.0.0.1', password: 'pw' } });
  const got = {};
  const iterated = {};
  const clients = {};
  const aborts = new AbortController();
  t.after(() => aborts.abort());
  for (const [name, [filter]] of Object.entries(filters)) {
    const c = new ProcConnector({ events: 'fork,exec,exit', filter }).start();
    t.after(() => c.stop());
    got[name] = [];
    c.on('event', (e) => got[name].push(e));
    iterated[name] = [];
    (async () => {
      for await (const e of truth.events({ filter, signal: aborts.signal })) iterated[name].push(e);
    })();
    const client = connect({ path: sockPath, request: filter });
    t.after(() => client.close());
    clients[name] = [];
    client.on('event', (e) => clients[name].push(e));
    await client.ready();
  }
  // Over TCP too (the same request window, after the password).
  const overTcp = connect({ port: srv.address().tcp.port, password: 'pw', request: filters.marked[0] });
  t.after(() => overTcp.close());
  const tcpEvents = [];
  overTcp.on('event', (e) => tcpEvents.push(e));
  await overTcp.ready();
  // procMonitor-client with the same filter as flags.
  const cli = spawn(process.execPath, [CLIENT_BIN, '-s', sockPath, '-j', '--match', 'argv=/pm-flt-[ab];/', '--exclude', 'event=fork'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => cli.kill());
  let cliOut = '';
  cli.stdout.on('data', (d) => (cliOut += d));
  await until(() => srv.stats().clients === Object.keys(filters).length + 2, 10000, 'every client to be streaming');
  const roots = [];
  // (Each shell lives 50 ms: long enough for every connector to read its argv.)
  roots.push((await sh(': pm-flt-a; sleep 0.05; exit 0', { cwd: dir })).pid);
  roots.push((await sh(': pm-flt-b; sleep 0.05; exit 3')).pid);
  roots.push((await sh(': pm-flt-c; sleep 0.05; kill -TERM $$')).pid);
  const nobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', ': pm-flt-nobody; sleep 0.05; exit 0']);
  assert.equal(nobody.status, 0, String(nobody.stderr));
  roots.push(nobody.pid);
  await new Promise((r) => setTimeout(r, 300));
  const mine = (evs) => {
    const pids = lineage(roots, all);
    return evs.filter((e) => pids.has(e.event === 'fork' ? e.child_pid : e.pid)).filter((e) => roots.includes(e.pid) || roots.includes(e.child_pid) || e.ppid !== process.pid);
  };
  const seen = mine(all);
  assert.ok(seen.length >= 20, `${seen.length} events of the workload`);
  for (const [name, [, passes]] of Object.entries(filters)) {
    const want = seen.filter(passes).map(key);
    assert.ok(want.length > 0, `${name}: the workload has events that match`);
    assert.ok(want.length < seen.length, `${name}: and events that do not`);
    assert.deepEqual(mine(got[name]).map(key), want, `${name}: the reader's filter`);
    await until(() => mine(clients[name]).length >= want.length, 10000, `${name}: the client's events`);
    assert.deepEqual(mine(iterated[name]).map(key), want, `${name}: events({filter})`);
    assert.deepEqual(mine(clients[name]).map(key), want, `${name}: a client's request line`);
  }
  const want = seen.filter(filters.marked[1]).map(key);
  await until(() => mine(tcpEvents).length >= want.length, 10000, 'the TCP client');
  assert.deepEqual(mine(tcpEvents).map(key), want, 'a TCP client');
  await until(
    () =>
      mine(
        cliOut
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      ).length >= want.length,
    10000,
    'procMonitor-client',
  );
  assert.deepEqual(
    mine(
      cliOut
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    ).map(key),
    want,
    'procMonitor-client --match --exclude',
  );
});

test('subtree in a filter: the pid running at start and what it starts, nothing else; stats().filtered counts the rest', async (t) => {
  const root = spawn('sh', ['-c', 'read go; sh -c ": pm-flt-sub; sleep 0.05"; exit 0'], { stdio: ['pipe', 'ignore', 'ignore'] });
  await until(() => fs.readFileSync(`/proc/${root.pid}/comm`, 'utf8').trim() === 'sh', 5000, 'the root to run sh');
  const c = new ProcConnector({ events: 'fork,exec,exit', filter: { match: { subtree: root.pid, event: ['exec', 'exit'] } } }).start();
  t.after(() => c.stop());
  const evs = [];
  c.on('event', (e) => evs.push(e));
  await sh('sleep 0.02'); // outside
  root.stdin.end('go\n');
  await new Promise((r) => root.on('exit', r));
  await until(() => evs.some((e) => e.event === 'exit' && e.pid === root.pid), 5000, 'the root to exit');
  assert.ok(evs.length >= 4, JSON.stringify(evs.map(key)));
  for (const e of evs) assert.ok(e.event === 'exec' || e.event === 'exit', key(e));
  const pids = new Set([root.pid, ...evs.filter((e) => e.ppid === root.pid || e.pid === root.pid).map((e) => e.pid)]);
  for (const e of evs) assert.ok(pids.has(e.pid) || pids.has(e.ppid), `in the subtree: ${key(e)}`);
  assert.ok(c.stats().filtered > 0, 'its forks were filtered out');
});

test('bad filters: a TypeError naming the rule, at once', () => {
  for (const [filter, re] of [
    [{ match: { colour: 'red' } }, /^filter: unknown key "colour" \(event, user/],
    [{ match: { argv: '/(?=x)/' } }, /^filter: match argv=\/\(\?=x\)\/: lookaround and named groups are not supported$/],
    [{ exclude: { comm: '/a{2000}/' } }, /a repeat count over 1000/],
    [{ match: { exe: '[ab' } }, /missing '\]'/],
    [{ match: { uid: -1 } }, /^filter\.match\.uid: a uid is a whole number/],
    [{ match: { failed: 'yes' } }, /^filter\.match\.failed: true or false/],
    [{ exclude: { subtree: 1 } }, /^filter: subtree can be matched, not excluded$/],
    [{ match: { comm: [] } }, /^filter\.match\.comm: no value$/],
    [{ include: {} }, /^filter: "include" is neither match nor exclude$/],
    [[], /^filter must be an object/],
  ]) {
    assert.throws(
      () => new ProcConnector({ filter }),
      (err) => err instanceof TypeError && re.test(err.message),
      JSON.stringify(filter),
    );
  }
  assert.throws(() => new ProcConnector({ login: false, filter: { match: { login_user: 'alice' } } }), /auid and login_user need the login option/);
  assert.throws(() => new ProcConnector({ cwd: false, filter: { match: { cwd: '/tmp' } } }), /^TypeError: filter: cwd needs the cwd option$/);
  assert.throws(() => new ProcConnector({ cgroups: false, filter: { exclude: { container: 'ab' } } }), /container and cgroup need the cgroups option/);
  assert.throws(() => new ProcConnector({ filter: { match: { subtree: 'e9b5ac0a:7214:42983521471712' } } }), /subtree by exec id is for a running stream/);
  assert.throws(() => new ProcConnector().events({ filter: { match: { colour: 'red' } } }), /^TypeError: filter: unknown key "colour"/);
  assert.throws(() => new ProcConnector({ cwd: false }).events({ filter: { exclude: { cwd: '/secret/*' } } }), /^TypeError: filter: cwd needs the cwd option$/);
});

test('events({filter}) with a subtree made as the job starts (its fork line comes later), and on a stream without fork lines: the job, its children, nothing else', async (t) => {
  for (const events of ['fork,exec,exit', 'exec,exit']) {
    const c = new ProcConnector({ events }).start();
    t.after(() => c.stop());
    const aborts = new AbortController();
    t.after(() => aborts.abort());
    const job = spawn('sh', ['-c', 'sh -c ": pm-flt-job; sleep 0.05"; sleep 0.05; exit 0'], { stdio: 'ignore' });
    const got = [];
    const done = (async () => {
      for await (const e of c.events({ filter: { match: { subtree: [job.pid], event: ['exec', 'exit'] } }, signal: aborts.signal })) {
        got.push(e);
        if (e.event === 'exit' && e.pid === job.pid) break;
      }
    })();
    const outside = await sh(': pm-flt-not-the-job; sleep 0.05');
    await done;
    const names = got.map((e) => `${e.event} ${e.event === 'exec' ? e.argv[0] : e.comm}`);
    assert.deepEqual(names, ['exec sh', 'exec sh', 'exec sleep', 'exit sleep', 'exit sh', 'exec sleep', 'exit sleep', 'exit sh'], `${events}: ${JSON.stringify(got)}`);
    assert.ok(!got.some((e) => e.pid === outside.pid));
  }
});

test("a client's own filter: a subtree by exec id, followed from its request on; a bad filter or a run that is over: Bad request, Disconnecting", async (t) => {
  const dir = tmpDir(t, 'pm-filter-');
  const truth = new ProcConnector({ events: 'fork,exec,exit' }).start();
  t.after(() => truth.stop());
  const sockPath = path.join(dir, 'srv.sock');
  await serve(t, { source: truth, unix: { path: sockPath } });
  const root = spawn('sh', ['-c', 'read go; sh -c ": pm-flt-rsub; sleep 0.05"; exit 0'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const seen = [];
  truth.on('exec', (e) => seen.push(e));
  const run = await until(() => seen.find((e) => e.pid === root.pid)?.exec_id, 5000, "the root's exec");
  const client = connect({ path: sockPath, request: { match: { subtree: [run], event: ['exec', 'exit'] } } });
  t.after(() => client.close());
  const evs = [];
  client.on('event', (e) => evs.push(e));
  await client.ready();
  const outside = await sh(': pm-flt-outside; sleep 0.02');
  root.stdin.end('go\n');
  await new Promise((r) => root.on('exit', r));
  await until(() => evs.some((e) => e.event === 'exit' && e.pid === root.pid), 10000, "the root's exit");
  const names = evs.map((e) => `${e.event} ${e.event === 'exec' ? e.argv[0] : e.comm}`);
  assert.deepEqual(names, ['exec sh', 'exec sleep', 'exit sleep', 'exit sh', 'exit sh'], JSON.stringify(evs));
  assert.ok(!evs.some((e) => e.pid === outside.pid));
  // Refused with the reason, then the connection is closed.
  const refused = async (request) => {
    const raw = rawConnect(sockPath);
    await raw.connected;
    raw.sock.write(`${JSON.stringify(request)}\n`);
    await raw.closedP;
    return raw.text();
  };
  assert.match(await refused({ match: { colour: 'red' } }), /^Bad request: filter: unknown key "colour" \(event, user, .*\)\. Disconnecting\.\n$/);
  assert.match(await refused({ match: { argv: '/(a)\\1/' } }), /^Bad request: filter: match argv=\/\(a\)\\1\/: \\1 is not supported.*Disconnecting\.\n$/);
  assert.match(await refused({ exclude: { subtree: 1 } }), /^Bad request: filter: subtree can be matched, not excluded\. Disconnecting\.\n$/);
  // A client that resumes may name the run that has ended since: its backlog holds it.
  const resumed = rawConnect(sockPath);
  await resumed.connected;
  resumed.sock.write(`${JSON.stringify({ resume_from: 0, match: { subtree: [run], event: 'exit' } })}\n`);
  await until(() => resumed.lines().some((l) => l.includes(`"pid":${root.pid},`)), 10000, "the root's exit from the backlog");
  const backlog = resumed
    .lines()
    .map((l) => JSON.parse(l))
    .filter((e) => e.event === 'exit');
  assert.deepEqual(
    backlog.map((e) => e.comm),
    ['sleep', 'sh', 'sh'],
  );
  resumed.sock.destroy();
  assert.match(
    await refused({ match: { subtree: [run] } }),
    new RegExp(`^Bad request: filter: subtree ${run}: no process runs that program run now \\(it ended or ran another program\\)\\. Disconnecting\\.\\n$`),
  );
});

test('procMonitor with --match, --exclude, --failed: stdout (--direct) and a socket client get the same filtered events; bad rules exit 2', async (t) => {
  const dir = tmpDir(t, 'pm-filter-cli-');
  const sock = path.join(dir, 'pm.sock');
  const args = ['-e', 'fork,exec,exit', '--match', 'argv=*pm-flt-cli*', '--exclude', 'event=fork'];
  const served = daemon(t, ['--socket', sock, ...args]);
  await served.ready;
  const client = await ndjsonClient(t, sock);
  const direct = daemon(t, ['--direct', ...args]);
  await direct.ready;
  const ok = await sh(': pm-flt-cli; sleep 0.05; exit 0');
  const bad = await sh(': pm-flt-cli; sleep 0.05; exit 4');
  await sh(': other; sleep 0.05');
  const want = [`exec ${ok.pid}`, `exit ${ok.pid}`, `exec ${bad.pid}`, `exit ${bad.pid}`];
  // (The second daemon's own exec matches too: its argv has the pattern. Only the shells count here.)
  const ours = (evs) => evs.filter((e) => [ok.pid, bad.pid].includes(e.pid ?? e.child_pid) || / other;/.test(e.cmdline ?? '')).map(key);
  await client.until((evs) => ours(evs).length >= 4);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await direct.stop('SIGINT')).code, 0);
  const lines = outEvents(direct);
  // (the sleeps' execs are children of the marked shells: their argv is sleep's, not marked)
  assert.deepEqual(ours(client.events), want);
  assert.deepEqual(ours(lines), want);
  assert.equal((await served.stop('SIGTERM')).code, 0);

  const failed = daemon(t, ['--direct', '-e', 'exit', '--failed', '--match', 'argv=*pm-flt-fail*']);
  await failed.ready;
  const f0 = await sh(': pm-flt-fail; sleep 0.05; exit 0');
  const f1 = await sh(': pm-flt-fail; sleep 0.05; exit 1');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await failed.stop('SIGINT')).code, 0);
  const exits = outEvents(failed).filter((e) => [f0.pid, f1.pid].includes(e.pid));
  assert.deepEqual(exits.map(key), [`exit ${f1.pid}`]);

  for (const [flags, re] of [
    [['--match', 'colour=red'], /^procMonitor: filter: unknown key "colour"/],
    [['--match', 'argv=/(a+)\\1/'], /^procMonitor: filter: match argv=\/\(a\+\)\\1\/: \\1 is not supported$/],
    [['--exclude', 'nokey'], /^procMonitor: --exclude takes KEY=PATTERN, got "nokey"$/],
    [['--subtree', 'x'], /^procMonitor: --subtree takes a pid, got "x"$/],
    [['--failed', '--failed'], /^procMonitor: --failed given more than once$/],
  ])
    refusedUsage(flags, re);
});
