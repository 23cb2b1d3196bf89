'use strict';
// Runs a C++ unit-test program of test/native/ as node:test subtests: built with g++ under
// AddressSanitizer and UndefinedBehaviorSanitizer (leaks checked at its exit), run from the
// package root; each `ok - NAME` / `not ok - NAME: line N` it prints is a subtest.
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const OUT = path.join(ROOT, 'build', 'test');

/** Builds `sources` (paths from the package root) into build/test/NAME and reports its cases under `t`. */
async function runNativeUnit(t, name, sources) {
  // CI runs the suite on three Node versions; these programs use no Node, so once is enough.
  if (process.env.PM_CXX_UNITS_DONE === '1') return t.skip('C++ unit tests ran already in this CI run (they use no Node): PM_CXX_UNITS_DONE=1');
  fs.mkdirSync(OUT, { recursive: true });
  const bin = path.join(OUT, name);
  const cxx = process.env.CXX || 'g++';
  const flags = ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-g', '-O1', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'];
  execFileSync(cxx, [...flags, ...sources, '-o', bin], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  // Not under a preloaded libasan (scripts/asan.sh): the program has its own.
  const env = { ...process.env, LD_PRELOAD: '', ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' };
  const run = spawnSync(bin, [], { env, encoding: 'utf8', cwd: ROOT });
  const lines = run.stdout.split('\n').filter((l) => /^(not )?ok - /.test(l));
  assert.ok(lines.length > 0, `no results: ${run.stderr}`);
  for (const line of lines) {
    const m = /^(not )?ok - (.*?)(?:: line (.*))?$/.exec(line);
    await t.test(m[2], () => assert.ok(!m[1], `line ${m[3]}`));
  }
  assert.equal(run.status, 0, run.stderr);
}

/** What the process table is built from (with a test's own .cc). */
const TABLE_SOURCES = [
  'native/process_table.cc',
  'native/process_store.cc',
  'native/process_context.cc',
  'native/lineage.cc',
  'native/procfs.cc',
  'native/redact.cc',
  'native/pattern.cc',
  'native/pattern_parse.cc',
  'native/proc_dir.cc',
  'native/context.cc',
  'native/wire.cc',
  'native/wire_fields.cc',
];

module.exports = { runNativeUnit, TABLE_SOURCES };
