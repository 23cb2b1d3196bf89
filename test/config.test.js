'use strict';
// The daemon's options from a YAML file (--config), PROCMONITOR_* variables and the command
// line, in that order of precedence. The hazards: a value taken from the wrong place, a typo
// in a file silently ignored, an error that does not say which line, a file that expands
// into gigabytes, a secret printed by --print-config.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { BIN, daemon } = require('./daemon');
const { tmpDir } = require('./server-helpers');
const { parseArgs } = require('../dist/cli/daemon');

/** Writes `text` to a file in a temp directory (mode 0600 unless given); returns its path. */
function configFile(t, text, mode = 0o600) {
  const file = path.join(tmpDir(t, 'pm-config-'), 'procmonitor.yaml');
  fs.writeFileSync(file, text, { mode });
  fs.chmodSync(file, mode);
  return file;
}

/** Runs procMonitor with args (and env added); resolves { status, stdout, stderr }. */
function runDaemon(args, env = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20000 });
}

test('precedence: the command line over PROCMONITOR_* over the file, each flag whole from one place', (t) => {
  const file = configFile(
    t,
    ['clients: 20', 'events: [fork, exec, exit]', 'match:', '  - comm=sshd', '  - argv=*deploy*', 'cgroups: false', 'replay: 100', 'direct: true', ''].join('\n'),
  );
  const base = parseArgs(['--config', file], {});
  assert.equal(base.clients, 20);
  assert.deepEqual(base.events, ['fork', 'exec', 'exit']);
  assert.deepEqual(base.filter.match, { comm: ['sshd'], argv: ['*deploy*'] });
  assert.equal(base.cgroups, false);
  assert.equal(base.replay, 100);
  assert.equal(base.direct, true);
  assert.equal(base.socket, null, 'direct: true in the file is --direct');
  // The environment over the file; a repeatable option's values one per line.
  const env = { PROCMONITOR_CLIENTS: '30', PROCMONITOR_MATCH: 'comm=cron\nuser=root', PROCMONITOR_CGROUPS: 'yes' };
  const e = parseArgs(['--config', file], env);
  assert.equal(e.clients, 30);
  assert.deepEqual(e.filter.match, { comm: ['cron'], user: ['root'] });
  assert.equal(e.cgroups, true);
  assert.equal(e.replay, 100, 'what the environment does not give, the file still does');
  // The command line over both; its --match replaces theirs, not added to them.
  const c = parseArgs(['--config', file, '--clients', '40', '--match', 'exe=/usr/bin/ssh'], env);
  assert.equal(c.clients, 40);
  assert.deepEqual(c.filter.match, { exe: ['/usr/bin/ssh'] });
  // PROCMONITOR_CONFIG names the file when --config does not.
  assert.equal(parseArgs([], { PROCMONITOR_CONFIG: file }).clients, 20);
  // A number as it is written: 0660 is octal text, a long digit string stays whole.
  const numbers = configFile(t, 'socket: /tmp/pm-n.sock\nsocket-mode: 0660\ntcp: 8080\nbind: 127.0.0.1\nauth: 0123456789012345678901\n');
  const n = parseArgs(['--config', numbers], {});
  assert.equal(n.socketMode, 0o660);
  assert.equal(n.tcp.password, '0123456789012345678901');
  assert.throws(
    () => parseArgs(['--config', configFile(t, 'socket: /tmp/x.sock\nsocket-mode: 0o660\n')], {}),
    /--socket-mode must be an octal mode such as 0660, got "0o660" \(from .*:2\)/,
  );
  // --no-FLAG on the command line switches off what the environment or the file switched on.
  assert.equal(parseArgs(['--config', file, '--no-direct', '--socket', '/tmp/pm-x.sock'], {}).direct, false);
  assert.equal(parseArgs(['--no-quiet', '--direct'], { PROCMONITOR_QUIET: 'true' }).quiet, false);
  // A boolean option from the environment.
  assert.equal(parseArgs([], { PROCMONITOR_DIRECT: 'true' }).direct, true);
  assert.equal(parseArgs([], { PROCMONITOR_DIRECT: '0' }).direct, false);
});

test('the password: --auth and --auth-file are one setting, taken whole from the first place that gives either', (t) => {
  const dir = tmpDir(t, 'pm-config-pw-');
  const pwFile = path.join(dir, 'pw');
  fs.writeFileSync(pwFile, 'from the password file\n', { mode: 0o600 });
  const file = configFile(t, `tcp: 8080\nbind: 127.0.0.1\nauth-file: ${pwFile}\n`);
  assert.equal(parseArgs(['--config', file], {}).tcp.password, 'from the password file');
  // PROCMONITOR_AUTH (the environment) over the file's auth-file.
  assert.equal(parseArgs(['--config', file], { PROCMONITOR_AUTH: 'from the environment' }).tcp.password, 'from the environment');
  // --auth on the command line over both.
  assert.equal(parseArgs(['--config', file, '--auth', 'from the command line'], { PROCMONITOR_AUTH: 'x' }).tcp.password, 'from the command line');
  // A password in a file others may read: said at start.
  const open = configFile(t, 'tcp: 8080\nbind: 127.0.0.1\nauth: a long enough password\n', 0o644);
  const o = parseArgs(['--config', open], {});
  assert.equal(o.tcp.password, 'a long enough password');
  assert.deepEqual(o.warnings, [`warning: ${open} holds the TCP password and others may read it: chmod 600 it, or use --auth-file and --nats-password-file`]);
  const natsOpen = configFile(t, 'direct: true\nnats: nats://pm:pw@127.0.0.1:4222\n', 0o644);
  assert.deepEqual(parseArgs(['--config', natsOpen], {}).warnings, [
    `warning: ${natsOpen} holds a NATS password and others may read it: chmod 600 it, or use --auth-file and --nats-password-file`,
  ]);
  assert.deepEqual(parseArgs(['--config', configFile(t, 'tcp: 8080\nbind: 127.0.0.1\nauth: a long enough password\n')], {}).warnings, []);
});

test('bad input in the file or the environment: one line naming the line or the variable, exit status 2', (t) => {
  const cases = [
    ['clients: 20\nclinets: 30\n', ':2: unknown key "clinets" (the keys are the daemon\'s long options without --: see --help)'],
    ['events: fork\nclients: many\n', '--clients must be a whole number from 1 to 100000, got "many" (from FILE:2)'],
    ['socket: [a, b]\n', ':1: socket: one value, not a list, got ["a","b"]'],
    ['direct: yes\n', ':1: direct: true or false, got "yes"'],
    ['match:\n  - {comm: x}\n', ':1: match: a list of plain values, got [{"comm":"x"}]'],
    ['config: /etc/other.yaml\n', ':1: "config" is for the command line only'],
    ['- clients\n', ':1: a config file is a mapping of option names to values (e.g. "clients: 20")'],
    ['clients: [\n', ':1: not valid YAML: '],
    ['clients: 1\nclients: 2\n', ':2: "clients" given twice (first at line 1)'],
    ['socket:\n', ':1: socket: a value (text, a number, yes or no), got null'],
    [
      'a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n',
      ': Excessive alias count indicates a resource exhaustion attack',
    ],
  ];
  for (const [text, want] of cases) {
    const file = configFile(t, text);
    const r = runDaemon(['--config', file]);
    assert.equal(r.status, 2, `${text}: ${r.stderr}`);
    const line = r.stderr.trimEnd();
    assert.ok(!line.includes('\n'), `one line: ${r.stderr}`);
    const expected = want.includes('FILE') ? `procMonitor: ${want.replace('FILE', file)}` : `procMonitor: ${file}${want}`;
    assert.ok(line.startsWith(expected), `${JSON.stringify(text)}:\n  got  ${line}\n  want ${expected}`);
  }
  // The file itself.
  const big = configFile(t, `# ${'x'.repeat(1 << 20)}\n`);
  assert.match(runDaemon(['--config', big]).stderr, /^procMonitor: --config .*: 1048579 bytes, more than a config file may have \(1 MiB\)\n$/);
  assert.equal(runDaemon(['--config', '/nonexistent/pm.yaml']).stderr, 'procMonitor: --config /nonexistent/pm.yaml: cannot read it: ENOENT\n');
  assert.equal(runDaemon(['--config', '/tmp']).stderr, 'procMonitor: --config /tmp: not a regular file\n');
  assert.equal(runDaemon(['--config', '/dev/zero']).stderr, 'procMonitor: --config /dev/zero: not a regular file\n');
  // The environment.
  assert.equal(
    runDaemon(['--direct'], { PROCMONITOR_CLIENTS: 'x' }).stderr,
    'procMonitor: --clients must be a whole number from 1 to 100000, got "x" (from PROCMONITOR_CLIENTS)\n',
  );
  assert.equal(runDaemon(['--direct'], { PROCMONITOR_THREADS: 'maybe' }).stderr, 'procMonitor: --threads is true or false, got "maybe" (from PROCMONITOR_THREADS)\n');
  // A PROCMONITOR_ variable that is no option: a warning, not an error (other tools may set theirs).
  const w = runDaemon(['--print-config'], { PROCMONITOR_CLIENT: '5' });
  assert.equal(w.status, 0);
  assert.equal(w.stderr, 'procMonitor: warning: PROCMONITOR_CLIENT is not an option of procMonitor: ignored (every --flag is PROCMONITOR_FLAG, e.g. PROCMONITOR_CLIENTS)\n');
});

test('--print-config: the options in effect as YAML, each with where it came from, secrets masked; read back, the same options', (t) => {
  const file = configFile(
    t,
    ['socket: /tmp/pm-print.sock', 'events: [exec, exit]', 'redact:', '  - "*token*"', 'nats: nats://alice:s3cret@127.0.0.1:4222,nats://alice:s3cret@127.0.0.2:4222', ''].join(
      '\n',
    ),
  );
  const r = runDaemon(['--config', file, '--print-config', '--clients', '12'], { PROCMONITOR_REPLAY: '500', PROCMONITOR_AUTH: 'never shown anywhere' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      '# procMonitor: the options in effect (command line > PROCMONITOR_* > config file); the rest are defaults (see --help)',
      'events: exec,exit  # FILE:2',
      'clients: "12"  # command line',
      'socket: /tmp/pm-print.sock  # FILE:1',
      'replay: "500"  # PROCMONITOR_REPLAY',
      'redact:  # FILE:3',
      '  - "*token*"',
      'nats: nats://alice:***@127.0.0.1:4222,nats://alice:***@127.0.0.2:4222  # FILE:5',
      '',
    ]
      .join('\n')
      .replaceAll('FILE', file),
  );
  // (PROCMONITOR_AUTH without --tcp is the client's variable: not shown. With --tcp, masked.)
  assert.ok(!r.stdout.includes('s3cret') && !r.stdout.includes('never shown'), 'no secret printed');
  const withTcp = runDaemon(['--config', file, '--print-config', '--tcp', '8080', '--bind', '127.0.0.1'], { PROCMONITOR_AUTH: 'never shown anywhere' });
  assert.equal(withTcp.status, 0, withTcp.stderr);
  assert.match(withTcp.stdout, /^auth: "\*\*\*" {2}# PROCMONITOR_AUTH$/m);
  assert.ok(!withTcp.stdout.includes('never shown'));
  // Printed without secrets, it is a config file that gives the same options.
  const plain = runDaemon(['--config', file, '--print-config', '--clients', '12', '--nats', 'nats://127.0.0.1:4222']);
  const again = configFile(t, plain.stdout);
  const a = parseArgs(['--config', file, '--clients', '12', '--nats', 'nats://127.0.0.1:4222'], {});
  const b = parseArgs(['--config', again], {});
  assert.deepEqual({ ...b, printConfig: null, warnings: [] }, { ...a, printConfig: null, warnings: [] });
});

test('a daemon run from its config file alone: --direct, events and --match from the file, a real process seen', async (t) => {
  const file = configFile(t, ['direct: true', 'events: [exec, exit]', 'match:', '  - argv=*pm-config-run-*', 'ancestors: none', ''].join('\n'));
  const cp = await daemon(t, ['--config', file]).ready;
  const child = spawn('/bin/sh', ['-c', 'sleep 0.2; true', 'pm-config-run-1'], { stdio: 'ignore' });
  await new Promise((r) => child.on('exit', r));
  const end = Date.now() + 10000;
  while (!cp.out.includes(`"pid":${child.pid}`) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  await cp.stop();
  const events = cp.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  assert.ok(events.length > 0, 'events on stdout');
  assert.ok(
    events.every((e) => e.event === 'exec' || e.event === 'exit'),
    `only exec and exit: ${[...new Set(events.map((e) => e.event))]}`,
  );
  assert.ok(
    events.some((e) => e.event === 'exec' && e.pid === child.pid && e.argv.includes('pm-config-run-1')),
    'the process, matched',
  );
  assert.ok(
    events.every((e) => e.event !== 'exec' || e.argv.some((a) => a.startsWith('pm-config-run-'))),
    'nothing else',
  );
});
