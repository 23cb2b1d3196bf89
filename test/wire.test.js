'use strict';
// The reader writes each event's NDJSON line itself (native/wire.cc): those bytes must be
// exactly what JSON.stringify gives for the object parsed from them, for every kind of event
// and every awkward string, and the 'lines' a connector emits must match its 'batch'.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { ProcConnector, toLine, linesOf, parseLines, KIND_NAMES } = require('..');
const { record, exited } = require('./helpers');

test("the reader's lines are byte for byte JSON.stringify of their events; 'lines' matches 'batch'", async (t) => {
  const c = new ProcConnector({ events: 'all', threads: true, ancestors: 'all' });
  t.after(() => c.stop());
  const pairs = [];
  let pending = null;
  c.on('lines', (lb) => {
    pending = lb;
  });
  c.on('batch', (batch) => {
    pairs.push([pending, batch]);
    pending = null;
  });
  c.start();
  const rec = record(c);
  // Arguments with everything JSON must escape, multibyte and invalid UTF-8; an exit by
  // signal, one with a status, a thread (python), a comm change.
  const raw = ['q"uote', 'back\\slash', 'ctl\x01\x1f\x7f', 'tab\tnl\nret\r', 'é☃😀', '\u2028'];
  const pyArgs = raw.map((s) => `bytes.fromhex('${Buffer.from(s).toString('hex')}')`).join(', ');
  const py = `import os, threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
open('/proc/self/comm', 'w').write('pm-wire-test')
os.execv(b'/bin/sh', [b'sh', b'-c', b'read x; kill -TERM $$', ${pyArgs}, bytes([0x61, 0xff, 0xe2, 0x98])])`;
  const cp = spawn('python3', ['-c', py], { stdio: ['pipe', 'ignore', 'inherit'] });
  await rec.until((evs) => evs.some((e) => e.event === 'exec' && e.pid === cp.pid && e.argv[0] === 'sh'));
  cp.stdin.end();
  await rec.until(exited(cp.pid));
  const other = spawn('/bin/sh', ['-c', 'exit 7'], { stdio: 'ignore' });
  await rec.until(exited(other.pid));
  c.stop();

  let lines = 0;
  const kinds = new Set();
  for (const [lb, batch] of pairs) {
    assert.ok(lb, "'lines' came before each 'batch'");
    assert.equal(lb.ends.length, batch.length);
    let start = 0;
    for (let i = 0; i < batch.length; i++) {
      const bytes = lb.buf.subarray(start, lb.ends[i]);
      assert.equal(bytes.toString('utf8'), toLine(batch[i]), `line ${lines}`);
      assert.equal(KIND_NAMES[lb.kinds[i]], batch[i].event);
      const uid = batch[i].uid;
      assert.equal(lb.uids[i], typeof uid === 'number' ? uid : -1, JSON.stringify(batch[i]));
      start = lb.ends[i];
      lines++;
      kinds.add(batch[i].event);
    }
    assert.equal(start, lb.buf.length);
  }
  for (const k of ['fork', 'exec', 'exit', 'comm']) assert.ok(kinds.has(k), `saw ${k}: ${[...kinds]}`);
  const exec = rec.events.find((e) => e.event === 'exec' && e.pid === cp.pid && e.argv[0] === 'sh');
  assert.deepEqual(exec.argv.slice(3), [...raw, 'a\uFFFD\uFFFD']);
  const exit = rec.events.find((e) => e.event === 'exit' && e.pid === cp.pid && !e.thread);
  assert.equal(exit.signal, 'SIGTERM');
  assert.equal(exit.uid, 0);
  assert.equal(typeof exit.duration_ms, 'number');
  assert.ok(
    rec.events.some((e) => e.event === 'exit' && e.thread && e.tgid === cp.pid),
    'the thread exit',
  );
});

test('linesOf and parseLines: objects to lines and back', () => {
  const evs = [
    { event: 'exec', pid: 1, user: 'a"b', cmdline: 'x\ny', time: 't', ppid: 0, uid: 5, argv: ['x\ny'], comm: 'c', exe: '/e' },
    { event: 'lost', time: 't', count: 3, source: 'kernel' },
    { event: 'exit', pid: 2, exit_code: 0, user: 'u', time: 't', code: 0, signal: null, core: false, comm: 'c', cmdline: '', ppid: 1, uid: null, duration_ms: null },
  ];
  const lb = linesOf(evs);
  assert.equal(lb.buf.toString(), evs.map(toLine).join(''));
  assert.deepEqual([...lb.uids], [5, -1, -1]);
  assert.deepEqual(
    [...lb.kinds].map((k) => KIND_NAMES[k]),
    ['exec', 'lost', 'exit'],
  );
  assert.deepEqual(parseLines(lb.buf), evs);
  assert.deepEqual(parseLines(Buffer.alloc(0)), []);
});
