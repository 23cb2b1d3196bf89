'use strict';
// procMonitor --output FILE: events appended to a file, rotated by size (gzipped, the oldest
// deleted), reopened on SIGHUP for a real logrotate (create and copytruncate), and a full
// filesystem (a tmpfs with a size limit) that drops events with an exact count in the file
// while stdout goes on. The hazards: a line cut in two, an event written twice or lost
// silently, a hole after copytruncate, a full disk that stalls the daemon.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { daemon, refusedUsage } = require('./daemon');
const { tmpDir, until } = require('./server-helpers');

const LOGROTATE = ['/usr/sbin/logrotate', '/sbin/logrotate'].find((p) => fs.existsSync(p)) ?? null;

/** The events of NDJSON text (every line must be whole JSON). */
function linesOf(text, where) {
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), `${where} ends with a whole line`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((l, i) => {
      try {
        return JSON.parse(l);
      } catch {
        throw new Error(`${where}: line ${i + 1} is not JSON: ${l.slice(0, 200)}`);
      }
    });
}

/** Every event written for `file`: the rotated ones (oldest first, gunzipped), then the file. */
function allEvents(file) {
  const dir = path.dirname(file);
  const base = `${path.basename(file)}.`;
  // (In the order they were made: by their time, then their suffix: "...Z.gz" before "...Z-001.gz".)
  const order = (n) => n.slice(base.length).replace(/\.gz$/, '').replace(/Z$/, 'Z-000');
  const rotated = fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(base) && !n.endsWith('.tmp'))
    .sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  const events = [];
  for (const n of rotated) {
    const buf = fs.readFileSync(path.join(dir, n));
    events.push(...linesOf((n.endsWith('.gz') ? zlib.gunzipSync(buf) : buf).toString('utf8'), n));
  }
  events.push(...linesOf(fs.readFileSync(file, 'utf8'), path.basename(file)));
  return { rotated, events };
}

/** Runs a shell loop of n `/bin/true MARK` children; resolves with the shell's pid. */
function storm(n, mark) {
  const r = spawnSync('sh', ['-c', `i=0; while [ $i -lt ${n} ]; do /bin/true ${mark}; i=$((i+1)); done; echo $$`], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

const kids = (events, shell) => events.filter((e) => (e.event === 'fork' ? e.parent_pid === shell : e.ppid === shell && e.event === 'exit'));

test('--output with --output-max-size: rotated to FILE.<time>.gz before it passes the size, the oldest beyond --output-keep deleted; no event twice or lost', async (t) => {
  const dir = tmpDir(t, 'pm-file-');
  const file = path.join(dir, 'events.ndjson');
  const cp = await daemon(t, ['--output', file, '--output-max-size', '16K', '--output-keep', '50', '-e', 'fork,exec,exit', '--ancestors', 'none']).ready;
  assert.match(cp.err, new RegExp(`serving file:${file.replace(/[.]/g, '\\.')}`));
  const shell = storm(300, 'pm-file-rot');
  await until(() => fs.readFileSync(file, 'utf8').includes(`"pid":${shell},`), 20000, 'the storm in the file');
  assert.equal((await cp.stop()).code, 0);
  const { rotated, events } = allEvents(file);
  const gz = rotated.filter((n) => n.endsWith('.gz'));
  assert.ok(gz.length >= 5, `rotated ${rotated.join(', ')}`);
  // (The last one may still have been gzipping when the daemon stopped: it stays plain.)
  assert.ok(rotated.length - gz.length <= 1, `every rotated file gzipped but the last at most: ${rotated.join(', ')}`);
  for (const n of gz) assert.match(n, /^events\.ndjson\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z(-\d{3,})?\.gz$/);
  for (const n of gz) assert.ok(zlib.gunzipSync(fs.readFileSync(path.join(dir, n))).length <= 16 * 1024, `${n} within the size`);
  // Each child of the storm: its fork and its exit, once each, in order, across the files.
  const mine = kids(events, shell);
  const forks = mine.filter((e) => e.event === 'fork').map((e) => e.child_pid);
  const exits = mine.filter((e) => e.event === 'exit').map((e) => e.pid);
  assert.equal(forks.length, 300);
  assert.deepEqual(exits, forks, 'each exit once, in the order of the forks');
  assert.ok(!events.some((e) => e.event === 'lost'), 'nothing lost');

  // --output-keep: only the newest rotated files stay.
  const cp2 = await daemon(t, ['--output', file, '--output-max-size', '8K', '--output-keep', '2', '-e', 'fork,exec,exit', '--ancestors', 'none']).ready;
  const shell2 = storm(200, 'pm-file-keep');
  await until(() => fs.readFileSync(file, 'utf8').includes(`"pid":${shell2},`), 20000, 'the second storm in the file');
  await cp2.stop();
  await until(() => allEvents(file).rotated.length === 2, 10000, 'two rotated files kept');
  assert.ok(
    allEvents(file).rotated.every((n) => n > gz[gz.length - 1]),
    'the newest kept',
  );
});

// (In CI, where .ci/run installs it, a missing logrotate is a failure, not a skip.)
const rotateSkip = LOGROTATE || process.env.CI ? false : 'logrotate is not installed (apt-get install logrotate)';

test('SIGHUP reopens the file: a real logrotate with create, then with copytruncate (no hole, no line cut)', { skip: rotateSkip }, async (t) => {
  assert.ok(LOGROTATE, 'logrotate is installed (apt-get install logrotate)');
  const dir = tmpDir(t, 'pm-file-');
  const file = path.join(dir, 'events.ndjson');
  const cp = await daemon(t, ['--output', file, '-e', 'exec', '--ancestors', 'none']).ready;
  const marker = (name) => {
    spawnSync('sh', ['-c', `: ${name}; sleep 0.05`]);
    return (text) => text.includes(`: ${name}; sleep 0.05`);
  };
  const before = marker('pm-file-before');
  await until(() => before(fs.readFileSync(file, 'utf8')), 10000, 'the first marker in the file');
  const rotate = (how) => {
    const conf = path.join(dir, `${how}.conf`);
    fs.writeFileSync(
      conf,
      `${file} {\n  ${how === 'create' ? 'create 0640 root root' : 'copytruncate'}\n  rotate 3\n  nocompress\n${how === 'create' ? `  postrotate\n    kill -HUP ${cp.pid}\n  endscript\n` : ''}}\n`,
    );
    const r = spawnSync(LOGROTATE, ['-f', '-s', path.join(dir, 'state'), conf], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  rotate('create');
  await cp.saw(/file: reopened /);
  const after = marker('pm-file-after-create');
  await until(() => after(fs.readFileSync(file, 'utf8')), 10000, 'the marker in the new file');
  assert.ok(before(fs.readFileSync(`${file}.1`, 'utf8')) && !after(fs.readFileSync(`${file}.1`, 'utf8')), 'the old events in FILE.1, the new ones not');
  assert.ok(!before(fs.readFileSync(file, 'utf8')));

  rotate('copytruncate'); // (no signal: the daemon writes on, at the end of the truncated file)
  const third = marker('pm-file-after-copytruncate');
  await until(() => third(fs.readFileSync(file, 'utf8')), 10000, 'the marker after copytruncate');
  const text = fs.readFileSync(file);
  assert.equal(text.indexOf(0), -1, 'no hole (NUL bytes) before the new lines');
  linesOf(text.toString('utf8'), 'the truncated file');
  assert.ok(after(fs.readFileSync(`${file}.1`, 'utf8')));
  assert.equal((await cp.stop()).code, 0);
});

test('a full filesystem (tmpfs, 256 KiB): events dropped from the file and counted there exactly once it has room; stdout never held up', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-file-small-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { encoding: 'utf8' });
  t.after(() => {
    if (m.status === 0) spawnSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });
  if (m.status !== 0) return t.skip(`cannot mount a tmpfs here: ${m.stderr.trim()}`);
  const file = path.join(mnt, 'events.ndjson');
  const cp = await daemon(t, ['--direct', '--output', file, '-e', 'fork,exec,exit', '--ancestors', 'none']).ready;
  // Fill it up, leaving a few KiB.
  const filler = path.join(mnt, 'filler');
  spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'count=60']);
  const shell = storm(400, 'pm-file-full');
  await cp.saw(/file: cannot write to .*: (ENOSPC|short write); events are dropped and counted until it can/);
  await until(() => cp.out.includes(`"pid":${shell},`), 20000, 'the storm on stdout');
  // Room again: the next try (each second) says what was lost, where it was lost; then the
  // events go on.
  fs.rmSync(filler);
  await cp.saw(/file: writing to .* again \(\d+ events lost in all\)/);
  spawnSync('sh', ['-c', ': pm-file-room; sleep 0.05']);
  await until(() => fs.readFileSync(file, 'utf8').includes(': pm-file-room;'), 10000, 'the marker after the disk has room');
  assert.equal((await cp.stop()).code, 0);
  const out = linesOf(cp.out, 'stdout');
  const inFile = linesOf(fs.readFileSync(file, 'utf8'), 'the file');
  const lost = inFile.filter((e) => e.event === 'lost');
  assert.ok(lost.length >= 1 && lost.every((e) => e.source === 'file' && e.count > 0), JSON.stringify(lost));
  // Every event the daemon had: on stdout; in the file, or counted there as lost.
  const written = inFile.filter((e) => e.event !== 'lost').length;
  const counted = lost.reduce((n, e) => n + e.count, 0);
  t.diagnostic(`${out.length} events; in the file ${written}, lost there ${counted}`);
  assert.equal(written + counted, out.length);
  assert.equal(kids(out, shell).filter((e) => e.event === 'exit').length, 400, 'stdout has every exit of the storm');
});

test('--output usage errors: one line, exit status 2; a file that cannot be opened: exit 1', async (t) => {
  refusedUsage(['--output-max-size', '1M'], /--output-max-size needs --output/);
  refusedUsage(['--output', '/tmp/x', '--output-max-size', '10Q'], /--output-max-size takes a size in bytes \(K, M, G suffixes\), got "10Q"/);
  refusedUsage(['--output', '/tmp/x', '--output-max-size', '100'], /--output-max-size must be 0 \(no rotation\) or at least 4K, got "100"/);
  refusedUsage(['--output', '/tmp/x', '--output-keep', '1001'], /--output-keep must be a whole number from 0 to 1000, got "1001"/);
  const cp = daemon(t, ['--output', '/nonexistent-dir/events.ndjson']);
  const { code } = await cp.exited;
  assert.equal(code, 1);
  assert.match(cp.err, /cannot open \/nonexistent-dir\/events\.ndjson: ENOENT/);
  // A root daemon never writes through a symbolic link someone put in its place.
  const dir = tmpDir(t, 'pm-file-');
  fs.symlinkSync('/etc/pm-file-target-never-made', path.join(dir, 'events.ndjson'));
  const linked = daemon(t, ['--output', path.join(dir, 'events.ndjson')]);
  assert.equal((await linked.exited).code, 1);
  assert.match(linked.err, /cannot open .*events\.ndjson: ELOOP/);
  assert.ok(!fs.existsSync('/etc/pm-file-target-never-made'));
});
