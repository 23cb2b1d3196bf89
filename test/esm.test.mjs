// The ES module entry (esm/index.mjs) and the package.json fields that point at the entries.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as esm from '../esm/index.mjs';
// Self-reference through the package's own "exports" map, as an app would import it.
import pm, { ProcConnector } from 'procmonitor';

const require = createRequire(import.meta.url);
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

test('esm/index.mjs re-exports every export of the CommonJS build, and nothing else', () => {
  const cjs = require('../dist/index.js');
  const named = Object.keys(esm)
    .filter((k) => k !== 'default')
    .sort();
  const missing = Object.keys(cjs).filter((k) => !named.includes(k));
  assert.deepEqual(missing, [], `add to esm/index.mjs: ${missing.join(', ')}`);
  assert.deepEqual(named, Object.keys(cjs).sort());
  for (const k of named) assert.equal(esm[k], cjs[k], k);
  assert.equal(esm.default, cjs);
});

test('import and require of "procmonitor" give the same objects (one addon, one class)', () => {
  const cjs = require('procmonitor');
  assert.equal(pm, cjs);
  assert.equal(ProcConnector, cjs.ProcConnector);
  assert.equal(typeof ProcConnector, 'function');
  assert.equal(require.resolve('procmonitor'), path.join(ROOT, 'dist', 'index.js'));
});

test('package.json: exports, types, bin, engines, os, files', () => {
  const dot = pkg.exports['.'];
  assert.deepEqual(Object.keys(dot), ['types', 'import', 'require', 'default'], 'types first, as TypeScript requires');
  assert.equal(dot.types, `./${pkg.types}`);
  assert.equal(dot.require, `./${pkg.main}`);
  for (const target of [dot.types, dot.import, dot.require]) {
    assert.ok(fs.existsSync(path.join(ROOT, target)), `${target} does not exist (npm run build)`);
  }
  assert.deepEqual(pkg.os, ['linux']);
  assert.match(pkg.engines.node, /^>=\s*20/);
  for (const [name, file] of Object.entries(pkg.bin)) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    assert.ok(text.startsWith('#!/usr/bin/env node'), `${name}: no shebang`);
    assert.ok(fs.statSync(path.join(ROOT, file)).mode & 0o111, `${name}: not executable`);
  }
  assert.deepEqual(Object.keys(pkg.bin).sort(), ['procMonitor', 'procMonitor-client']);
  for (const need of ['esm/', 'bin/', 'native/', 'binding.gyp', 'prebuilds/']) assert.ok(pkg.files.includes(need), need);
  assert.equal(pkg.scripts.install, 'node-gyp-build');
  assert.equal(pkg.scripts.prebuild, undefined, 'a "prebuild" script would run before every `npm run build`');
  assert.equal(pkg.gypfile, true);
});
