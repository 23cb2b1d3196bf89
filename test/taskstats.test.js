'use strict';
// The exit cost's pure parts on their own: test/native/taskstats_test.cc runs the taskstats
// parser (native/taskstats.cc) on real datagrams (fuzz/corpus/taskstats/) and crafted ones,
// ExitCost's bounded map of records (native/exit_cost.cc), the /proc cost parsers and the cost
// on the wire. A C++ program, built here with g++ under AddressSanitizer and
// UndefinedBehaviorSanitizer (leaks checked at its exit); each of its cases is a subtest.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const OUT = path.join(ROOT, 'build', 'test');
const BIN = path.join(OUT, 'taskstats_test');
const SOURCES = ['test/native/taskstats_test.cc', 'native/taskstats.cc', 'native/exit_cost.cc', 'native/procfs.cc', 'native/wire.cc'];

test('taskstats records, the exit cost map, /proc cost parsers (C++ unit tests)', { timeout: 300000 }, async (t) => {
  fs.mkdirSync(OUT, { recursive: true });
  const cxx = process.env.CXX || 'g++';
  const flags = ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-g', '-O1', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'];
  execFileSync(cxx, [...flags, ...SOURCES, '-o', BIN], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  // Not under a preloaded libasan (scripts/asan.sh): the program has its own.
  const env = { ...process.env, LD_PRELOAD: '', ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' };
  const run = spawnSync(BIN, [], { env, encoding: 'utf8', cwd: ROOT });
  const lines = run.stdout.split('\n').filter((l) => /^(not )?ok - /.test(l));
  assert.ok(lines.length > 0, `no results: ${run.stderr}`);
  for (const line of lines) {
    const m = /^(not )?ok - (.*?)(?:: line (.*))?$/.exec(line);
    await t.test(m[2], () => assert.ok(!m[1], `line ${m[3]}`));
  }
  assert.equal(run.status, 0, run.stderr);
});
