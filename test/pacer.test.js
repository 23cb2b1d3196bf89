'use strict';
// The Pacer, directly: its one timer runs only while an item has work, each item is stepped
// no more often than its interval, and close() leaves nothing behind.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Pacer } = require('../dist/server/pacer');
const { until } = require('./server-helpers');

test('the timer runs while an item has work and stops by itself once none has', async () => {
  const left = new Map([
    ['a', 3],
    ['b', 1],
  ]);
  const steps = [];
  const p = new Pacer(5, (item, now) => {
    steps.push([item, now]);
    const n = left.get(item) - 1;
    left.set(item, n);
    return n > 0;
  });
  p.kick('a');
  p.kick('b');
  assert.equal(p.running, true);
  assert.equal(p.size, 1, 'b had one step: done at once');
  await until(() => !p.running, 2000, 'the timer to stop');
  assert.equal(p.size, 0);
  assert.deepEqual(
    steps.map(([i]) => i),
    ['a', 'b', 'a', 'a'],
  );
  const at = steps.filter(([i]) => i === 'a').map(([, t]) => t);
  for (let i = 1; i < at.length; i++) assert.ok(at[i] - at[i - 1] >= 4, `steps of one item ${at[i] - at[i - 1]} ms apart`);
});

test('an item with no work never starts the timer; close() forgets every item and stops it', () => {
  let calls = 0;
  const p = new Pacer(5, () => (calls++, true));
  const idle = new Pacer(5, () => false);
  idle.kick('x');
  assert.equal(idle.running, false);
  p.kick('x');
  p.kick('y');
  assert.equal(p.running, true);
  assert.equal(p.size, 2);
  p.close();
  assert.equal(p.running, false);
  assert.equal(p.size, 0);
  assert.equal(calls, 2);
});
