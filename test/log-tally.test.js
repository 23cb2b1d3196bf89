'use strict';
// LogTally: the hazard is a log flood caused at will by a peer (a line per refusal).
const test = require('node:test');
const assert = require('node:assert/strict');
const { LogTally } = require('../dist/server/log-tally');

test('log flood: a few lines of a kind as they come, the rest summed up per interval with the number of addresses', async () => {
  const lines = [];
  const tally = new LogTally((l) => lines.push(l), 200, 3);
  for (let i = 0; i < 1000; i++) tally.add('refused (too-many-pending)', `tcp 10.0.0.${i % 50}: refused (too-many-pending)`, `10.0.0.${i % 50}`);
  tally.add('wrong password', 'tcp 10.0.0.9: wrong password', '10.0.0.9');
  assert.deepEqual(lines, [
    'tcp 10.0.0.0: refused (too-many-pending)',
    'tcp 10.0.0.1: refused (too-many-pending)',
    'tcp 10.0.0.2: refused (too-many-pending)',
    'tcp 10.0.0.9: wrong password', // another kind has a burst of its own
  ]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(lines.length, 5);
  assert.match(lines[4], /^refused \(too-many-pending\): 997 more from 50 addresses in the last \d+ s$/);
  // A new interval: a few lines again.
  tally.add('refused (too-many-pending)', 'again', '10.0.0.1');
  assert.equal(lines.at(-1), 'again');
  tally.close();
  assert.equal(lines.length, 6, 'nothing held back, nothing to sum up');
});

test('log flood: the distinct addresses counted are bounded; a quiet interval stops the timer', async () => {
  const lines = [];
  const tally = new LogTally((l) => lines.push(l), 100, 1, 10);
  for (let i = 0; i < 100; i++) tally.add('k', `line ${i}`, `a${i}`);
  tally.flush();
  assert.equal(lines.length, 2);
  assert.equal(lines[0], 'line 0');
  assert.match(lines[1], /^k: 99 more from 10\+ addresses in the last \d+ s$/);
  await new Promise((r) => setTimeout(r, 350));
  assert.equal(tally.timer, null, 'no timer keeps running once nothing happens');
  tally.close();
});
