'use strict';
// The published declarations (dist/*.d.ts) as a user's TypeScript sees them: test/types/*.ts
// compiled with `tsc --noEmit`, including the misuses marked `@ts-expect-error` (an unused one
// is an error too, so a type that got too loose fails here).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

test('type tests: listener narrowing, option types and misuse refused, against dist/*.d.ts', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types')], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
