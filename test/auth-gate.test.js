'use strict';
// AuthGate: when a password may be checked. The bound on guessing: per network prefix, every
// failure (the first included) delays the next check; over all prefixes, a global budget.
const test = require('node:test');
const assert = require('node:assert/strict');
const { AuthGate, prefixOf } = require('../dist/server/auth-gate');

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test('prefixOf: IPv4 /24, IPv6 /64 (expanded, zone dropped), IPv4-mapped as IPv4, anything else as itself', () => {
  assert.equal(prefixOf('127.0.0.1'), '127.0.0.0/24');
  assert.equal(prefixOf('127.0.0.254'), '127.0.0.0/24');
  assert.equal(prefixOf('127.1.0.1'), '127.1.0.0/24');
  assert.equal(prefixOf('::ffff:10.2.3.4'), '10.2.3.0/24');
  assert.equal(prefixOf('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(prefixOf('2001:db8:1:2::99'), '2001:db8:1:2::/64');
  assert.equal(prefixOf('2001:0db8:0001:0002:ffff::1'), '2001:db8:1:2::/64');
  assert.equal(prefixOf('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(prefixOf('::1'), '0:0:0:0::/64');
  assert.equal(prefixOf('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(prefixOf('1::2:3:4:5:1.2.3.4'), '1:0:2:3::/64');
  assert.equal(prefixOf('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4::/64');
  assert.equal(prefixOf('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  assert.equal(prefixOf('unix'), 'unix');
});

test('every failure delays its prefix, the first included, doubling; other prefixes are not delayed', () => {
  const g = new AuthGate({ baseDelayMs: 250, ratePerSec: 0 });
  assert.deepEqual(g.failed('10.0.0.1'), { count: 1, delay: 250, prefix: '10.0.0.0/24' });
  // Another address of the same /24: the same account.
  assert.deepEqual(g.failed('10.0.0.77'), { count: 2, delay: 500, prefix: '10.0.0.0/24' });
  assert.equal(g.failed('10.0.0.3').delay, 1000);
  assert.deepEqual(g.failed('10.0.1.1'), { count: 1, delay: 250, prefix: '10.0.1.0/24' });
  for (let i = 0; i < 30; i++) g.failed('10.0.0.1');
  assert.equal(g.failed('10.0.0.1').delay, 30000, 'at most 30 s');
  g.succeeded('10.0.0.9');
  assert.equal(g.failures('10.0.0.1'), 0, 'a success starts the prefix afresh');
  g.close();
});

test('a prefix is checked again only once its delay has passed; one check at a time per prefix', async () => {
  const g = new AuthGate({ baseDelayMs: 80, ratePerSec: 0 });
  const order = [];
  const t0 = Date.now();
  // Three password lines from one /24 at once: the first is checked now and fails; the next
  // waits 80 ms and fails; the third waits 160 ms more.
  for (let i = 0; i < 3; i++) {
    g.wait(`192.168.5.${i + 1}`, () => {
      order.push([i, Date.now() - t0]);
      g.failed(`192.168.5.${i + 1}`);
    });
  }
  // Another prefix is not held up by them.
  let other = -1;
  g.wait('192.168.6.1', () => (other = Date.now() - t0));
  assert.ok(other >= 0 && other < 50, `other prefix checked at once (${other} ms)`);
  await tick(400);
  assert.deepEqual(
    order.map((o) => o[0]),
    [0, 1, 2],
  );
  assert.ok(order[0][1] < 50, `first at once: ${order[0][1]}`);
  assert.ok(order[1][1] >= 75, `second after the first delay: ${order[1][1]}`);
  assert.ok(order[2][1] - order[1][1] >= 155, `third after the doubled delay: ${order[2][1] - order[1][1]}`);
  g.close();
});

test('the global budget: beyond it every check waits, whatever its prefix; a known network without failures is not held', async () => {
  // 10 failures a second, bursts of 2.
  const g = new AuthGate({ baseDelayMs: 1, ratePerSec: 10, burst: 2 });
  g.succeeded('172.16.0.1'); // networks that logged in before
  g.succeeded('172.17.0.1');
  g.failed('172.17.0.2'); // ... and one of them failed since
  const checked = [];
  const t0 = Date.now();
  const guess = (addr, ok = false) =>
    g.wait(addr, () => {
      checked.push([addr, Date.now() - t0]);
      if (ok) g.succeeded(addr);
      else g.failed(addr);
    });
  for (let i = 0; i < 6; i++) guess(`10.${i}.0.1`);
  assert.equal(checked.length, 1, 'the rest of the burst goes at once');
  // The known client is checked at once although the budget is spent.
  guess('172.16.0.1', true);
  assert.deepEqual(checked[1][0], '172.16.0.1');
  assert.ok(checked[1][1] < 50, `known network at ${checked[1][1]} ms`);
  // A known network that has failed since queues like the others, though ahead of them.
  guess('172.17.0.3', true);
  await tick(1000);
  assert.equal(checked[2][0], '172.17.0.3');
  assert.ok(checked[2][1] >= 60, `known network with a failure at ${checked[2][1]} ms`);
  assert.equal(checked.length, 8);
  // The guessers got one check per token.
  for (let i = 4; i < 8; i++) assert.ok(checked[i][1] - checked[i - 1][1] >= 60, `token spacing ${checked[i][1] - checked[i - 1][1]} ms`);
  g.close();
});

test('a cancelled wait is never granted; close() drops every waiter', async () => {
  const g = new AuthGate({ baseDelayMs: 50, ratePerSec: 0 });
  g.failed('10.9.9.9');
  let ran = 0;
  const cancel = g.wait('10.9.9.1', () => ran++);
  g.wait('10.9.9.2', () => ran++);
  assert.equal(g.waiting, 2);
  cancel();
  assert.equal(g.waiting, 1);
  g.close();
  await tick(120);
  assert.equal(ran, 0);
  assert.equal(g.waiting, 0);
});

test('failures are remembered for a bounded number of prefixes', () => {
  const g = new AuthGate({ baseDelayMs: 1, ratePerSec: 0, maxPrefixes: 100 });
  for (let i = 0; i < 1000; i++) g.failed(`10.${i >> 8}.${i & 255}.1`);
  assert.equal(g.failures('10.0.0.1'), 0, 'the oldest left');
  assert.equal(g.failures(`10.3.231.1`), 1, 'the newest kept');
  g.close();
});
