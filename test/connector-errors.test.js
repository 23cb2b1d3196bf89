'use strict';
// ProcConnector when reading fails under it, and arguments that are not UTF-8.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const { ProcConnector, ProcConnectorError } = require('..');
const { record, exited } = require('./helpers');

test('a reader failure: the events read before it, then close, then an EREAD error; start() again works', async (t) => {
  const c = new ProcConnector({ events: 'exec' });
  t.after(() => c.stop());
  c.start();
  const rec = record(c);
  const order = [];
  c.on('close', () => order.push('close'));
  const cp = spawn('/bin/true', [], { stdio: 'ignore' });
  await rec.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === cp.pid));
  const failed = once(c, 'error');
  c.injectFault('socket gone (test)');
  const [err] = await failed;
  order.push('error');
  assert.ok(err instanceof ProcConnectorError);
  assert.equal(err.code, 'EREAD');
  assert.match(err.message, /reader thread stopped: socket gone \(test\)/);
  assert.deepEqual(order, ['close', 'error']);
  assert.equal(c.running, false);
  assert.ok(c.stats().received > 0, 'the stats of the failed run are kept');

  // It can be started again and delivers again.
  c.start();
  const again = spawn('/bin/true', [], { stdio: 'ignore' });
  await rec.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === again.pid));
  c.stop();
});

/** Runs a script with a ProcConnector that stops itself within 5 s ("still running" if not). */
async function runScript(body) {
  const script = `
    const { ProcConnector } = require(${JSON.stringify(require.resolve('..'))});
    const c = new ProcConnector({ events: 'exec' }).start();
    ${body}
    setTimeout(() => { console.log('still running'); process.exit(0); }, 5000);
  `;
  const cp = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  cp.stdout.on('data', (d) => (out += d));
  cp.stderr.on('data', (d) => (err += d));
  const [code] = await once(cp, 'exit');
  return { code, out, err };
}

test('an unhandled reader failure is an uncaught EREAD error, not a silent stop', async () => {
  const script = `setTimeout(() => c.injectFault('boom'), 50);`;
  const { code, out, err } = await runScript(script);
  assert.notEqual(code, 0, out);
  assert.match(err, /EREAD|reader thread stopped: boom/);
  assert.equal(out, '');
});

test('argv that is not UTF-8: argv_base64 carries the exact bytes; valid argv has no argv_base64', async (t) => {
  const c = new ProcConnector({ events: 'exec,exit' });
  t.after(() => c.stop());
  c.start();
  const rec = record(c);
  // python3 execs sh with raw bytes as arguments; sh waits for stdin so /proc still has it.
  const raw = [Buffer.from('sh'), Buffer.from('-c'), Buffer.from('read x'), Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0xc3]), Buffer.from('é☃')];
  const pyArgs = raw.map((b) => `bytes.fromhex('${b.toString('hex')}')`).join(', ');
  const cp = spawn('python3', ['-c', `import os; os.execv(b'/bin/sh', [${pyArgs}])`], { stdio: ['pipe', 'ignore', 'inherit'] });
  const isShExec = (e) => e.event === 'exec' && e.pid === cp.pid && e.argv[0] === 'sh';
  await rec.until((evs) => evs.some(isShExec));
  cp.stdin.end();
  await rec.until(exited(cp.pid));
  const exec = rec.events.find(isShExec);
  assert.deepEqual(exec.argv, ['sh', '-c', 'read x', 'a\uFFFDb', '\uFFFD', 'é☃']);
  assert.ok(Array.isArray(exec.argv_base64), JSON.stringify(exec));
  assert.deepEqual(
    exec.argv_base64.map((s) => Buffer.from(s, 'base64')),
    raw,
  );
  // The python3 exec before it had valid UTF-8 only.
  const py = rec.events.find((e) => e.event === 'exec' && e.pid === cp.pid && e.argv[0] === 'python3');
  if (py) assert.equal(py.argv_base64, undefined);
  // And its JSON line keeps the field.
  assert.match(JSON.stringify(exec), /"argv_base64":\["c2g=","LWM=","cmVhZCB4","Yf9i","ww==","w6nimIM="\]/);
});

test("a listener's exception is uncaught, as from any EventEmitter (not swallowed by Node-API)", async () => {
  const script = `
    c.on('exec', () => { throw new Error('listener failed'); });
    require('node:child_process').spawn('/bin/true');
  `;
  const { code, out, err } = await runScript(script);
  assert.equal(code, 1, out + err);
  assert.match(err, /Error: listener failed/);
  assert.doesNotMatch(err, /DEP0168/);
});

test('a long argv (over several pages of /proc/PID/cmdline) arrives whole and exact', async (t) => {
  const c = new ProcConnector({ events: 'exec,exit' });
  t.after(() => c.stop());
  c.start();
  const rec = record(c);
  const big = Array.from({ length: 6 }, (_, i) => `${i}`.repeat(5000 + i)); // ~30 KB
  const cp = spawn('/bin/sh', ['-c', 'read x', 'sh', ...big], { stdio: ['pipe', 'ignore', 'ignore'] });
  await rec.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === cp.pid));
  cp.stdin.end();
  await rec.until(exited(cp.pid));
  const exec = rec.events.find((e) => e.event === 'exec' && e.pid === cp.pid);
  assert.deepEqual(exec.argv, ['/bin/sh', '-c', 'read x', 'sh', ...big]);
  const exit = rec.events.find((e) => e.event === 'exit' && e.pid === cp.pid);
  assert.equal(exit.cmdline, exec.argv.join(' '));
});
