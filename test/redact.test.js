'use strict';
// Secrets kept out of every event (options redactPatterns and redactDefaults, --redact and
// --redact-defaults): the rules on their own (C++), then real processes whose command lines
// and environments carry secrets, read by a connector and by the daemon's outputs (stdout, a
// socket client, a client resuming from the replay ring). The hazard: a secret on any output.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { ProcConnector } = require('..');
const { runNativeUnit } = require('./native-unit');
const { record, exited } = require('./helpers');
const { daemon, ndjsonClient, outEvents, refusedUsage } = require('./daemon');
const { tmpDir, until } = require('./server-helpers');

test('the rules on their own (test/native/redact_test.cc)', (t) =>
  runNativeUnit(t, 'redact_test', ['test/native/redact_test.cc', 'native/redact.cc', 'native/pattern.cc', 'native/pattern_parse.cc']));

const SECRETS = ['hunter2', 'ghp_sEcReT', 'wJalrXUtnFEMI', 'eyJhbGciOiJIUzI1', 's3cr3tpw', 'Tok3nValue', 'dbpass99'];

/** Runs the processes that carry secrets; resolves with their pids once all have ended. */
async function carriers() {
  const runs = [
    ['sh', ['-c', 'sleep 0.05; exit 0', 'pm-red', '--password=hunter2', '--token', 'Tok3nValue', 'GITHUB_TOKEN=ghp_sEcReT']],
    ['sh', ['-c', 'sleep 0.05; exit 0', 'pm-red', '-H', 'Authorization: Bearer eyJhbGciOiJIUzI1', 'https://alice:s3cr3tpw@example.com/x']],
    // (a MySQL client by its argv[0]: the defaults know them by name)
    ['bash', ['-c', 'exec -a mysql /bin/sh -c "sleep 0.05" -uroot "-p$DBPW" db']],
    ['sh', ['-c', 'sleep 0.05; exit 0', 'pm-red', '--custom-secret=wJalrXUtnFEMI']],
  ];
  const pids = [];
  for (const [cmd, args] of runs) {
    const cp = spawn(cmd, args, { stdio: 'ignore', env: { PATH: process.env.PATH, AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI', PM_PLAIN: 'visible', DBPW: 'dbpass99' } });
    await new Promise((r) => cp.on('exit', r));
    pids.push(cp.pid);
  }
  return pids;
}

test('a connector with redactDefaults and a pattern: no secret in any event, argv, cmdline, argv_base64 or env; the rest intact', async (t) => {
  const c = new ProcConnector({ events: 'fork,exec,exit', redactDefaults: true, redactPatterns: ['--custom-secret=*'], env: ['AWS_SECRET_ACCESS_KEY', 'PM_PLAIN'] }).start();
  t.after(() => c.stop());
  const rec = record(c);
  const pids = await carriers();
  await rec.until((evs) => pids.every((p) => exited(p)(evs)));
  const mine = rec.events.filter((e) => pids.includes(e.pid) || pids.includes(e.child_pid));
  const text = JSON.stringify(mine);
  for (const s of SECRETS) assert.ok(!text.includes(s), `${s} is not in the events`);
  // (each process's last program: the bash that runs "mysql" execs it)
  const execs = pids.map((p) => mine.filter((e) => e.event === 'exec' && e.pid === p).at(-1));
  assert.deepEqual(execs[0].argv.slice(4), ['--password=***', '--token', '***', 'GITHUB_TOKEN=***']);
  assert.equal(execs[0].cmdline, 'sh -c sleep 0.05; exit 0 pm-red --password=*** --token *** GITHUB_TOKEN=***');
  assert.deepEqual(execs[1].argv.slice(5), ['Authorization: ***', 'https://alice:***@example.com/x']);
  assert.deepEqual(execs[2].argv, ['mysql', '-c', 'sleep 0.05', '-uroot', '-p***', 'db']);
  assert.deepEqual(execs[3].argv.slice(4), ['--custom-secret=***']);
  for (const e of execs) assert.deepEqual(e.env, { AWS_SECRET_ACCESS_KEY: '***', PM_PLAIN: 'visible' });
  // Bad patterns: refused at once.
  assert.throws(() => new ProcConnector({ redactPatterns: ['/(?<=a)b/'] }), /^TypeError: redactPatterns: \/\(\?<=a\)b\/: lookaround/);
  assert.throws(() => new ProcConnector({ redactPatterns: 'x' }), /^TypeError: redactPatterns must be an array/);
  assert.throws(() => new ProcConnector({ redactDefaults: 'yes' }), TypeError);
});

test('procMonitor --redact-defaults --redact: stdout, a socket client and a client resuming from the replay ring never see a secret', async (t) => {
  const dir = tmpDir(t, 'pm-redact-cli-');
  const sock = path.join(dir, 'pm.sock');
  // (--redact=VALUE: a value that begins with '-' would read as a flag of its own)
  const args = ['-e', 'exec', '--redact-defaults', '--redact=--custom-secret=*', '--env', 'AWS_SECRET_ACCESS_KEY'];
  const served = daemon(t, ['--socket', sock, ...args]);
  await served.ready;
  const live = await ndjsonClient(t, sock);
  const direct = daemon(t, ['--direct', ...args]);
  await direct.ready;
  const pids = await carriers();
  const ours = (evs) => evs.filter((e) => pids.includes(e.pid));
  await live.until((evs) => ours(evs).length === 5);
  await until(() => ours(outEvents(direct)).length === 5, 10000, 'the execs on stdout');
  // A client that comes later and asks for everything the ring still holds.
  const late = await ndjsonClient(t, sock);
  late.sock.write('{"resume_from":1}\n');
  await late.until((evs) => ours(evs).length === 5);
  for (const [name, text] of [
    ['stdout', direct.out],
    ['the socket', JSON.stringify(live.events)],
    ['the replay ring', JSON.stringify(late.events)],
  ]) {
    for (const s of SECRETS) assert.ok(!text.includes(s), `${s} is not on ${name}`);
    assert.ok(text.includes('--password=***') && text.includes('"AWS_SECRET_ACCESS_KEY":"***"'), name);
  }
  assert.equal((await direct.stop('SIGINT')).code, 0);
  assert.equal((await served.stop('SIGTERM')).code, 0);
  refusedUsage(['--redact', '/a{5000}/'], /^procMonitor: --redact \/a\{5000\}\/: a repeat count over 1000$/);
});
