'use strict';
// The pure netlink parser, fed crafted datagrams: no kernel involved.
const test = require('node:test');
const assert = require('node:assert/strict');
const binding = require('node-gyp-build')(require('node:path').join(__dirname, '..'));

const WHAT = { none: 0, fork: 1, exec: 2, uid: 4, gid: 0x40, sid: 0x80, ptrace: 0x100, comm: 0x200, coredump: 0x40000000, exit: 0x80000000 };

// One netlink message carrying a cn_msg carrying a proc_event with `body` as its union.
function message({ what, cpu = 0, ts = 123456789012345n, seq = 7, ack = 0, body = Buffer.alloc(24), idx = 1, val = 1, cnLen, nlLen, nlType = 3 }) {
  const ev = Buffer.alloc(16 + body.length);
  ev.writeUInt32LE(what >>> 0, 0);
  ev.writeUInt32LE(cpu >>> 0, 4);
  ev.writeBigUInt64LE(ts, 8);
  body.copy(ev, 16);
  const cn = Buffer.alloc(20);
  cn.writeUInt32LE(idx, 0);
  cn.writeUInt32LE(val, 4);
  cn.writeUInt32LE(seq, 8);
  cn.writeUInt32LE(ack, 12);
  cn.writeUInt16LE(cnLen ?? ev.length, 16);
  const nl = Buffer.alloc(16);
  const total = 16 + 20 + ev.length;
  nl.writeUInt32LE(nlLen ?? total, 0);
  nl.writeUInt16LE(nlType, 4);
  const msg = Buffer.concat([nl, cn, ev]);
  const pad = (4 - (msg.length % 4)) % 4;
  return Buffer.concat([msg, Buffer.alloc(pad)]);
}

function ints(...v) {
  const b = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => b.writeUInt32LE(x >>> 0, i * 4));
  return b;
}

test('fork: parent and child pids, cpu, sequence, unaligned 64-bit timestamp', () => {
  const r = binding.parse(message({ what: WHAT.fork, cpu: 1, seq: 42, ts: 0x0102030405060708n, body: ints(100, 100, 200, 200) }));
  assert.equal(r.events.length, 1);
  const e = r.events[0];
  assert.equal(e.what, 'fork');
  assert.equal(e.cpu, 1);
  assert.equal(e.seq, 42);
  assert.equal(e.timestampNs, 0x0102030405060708n);
  assert.deepEqual([e.ppid, e.ptgid, e.pid, e.tgid], [100, 100, 200, 200]);
});

test('exec, uid, gid, sid, ptrace, coredump fields', () => {
  const buf = Buffer.concat([
    message({ what: WHAT.exec, body: ints(5, 5) }),
    message({ what: WHAT.uid, body: ints(6, 6, 1000, 0) }),
    message({ what: WHAT.gid, body: ints(7, 7, 100, 101) }),
    message({ what: WHAT.sid, body: ints(8, 8) }),
    message({ what: WHAT.ptrace, body: ints(9, 9, 10, 10) }),
    message({ what: WHAT.coredump, body: ints(11, 11, 1, 1) }),
  ]);
  const r = binding.parse(buf);
  assert.deepEqual(
    r.events.map((e) => e.what),
    ['exec', 'uid', 'gid', 'sid', 'ptrace', 'coredump'],
  );
  assert.deepEqual([r.events[1].a, r.events[1].b], [1000, 0]);
  assert.deepEqual([r.events[2].a, r.events[2].b], [100, 101]);
  assert.equal(r.events[4].ptgid, 10);
  assert.equal(r.events[5].ptgid, 1);
  assert.equal(r.stats.messages, 6);
});

test('comm: 16 bytes, NUL-terminated or not', () => {
  const body = Buffer.concat([ints(3, 3), Buffer.from('exactly16bytes!!')]);
  const r = binding.parse(message({ what: WHAT.comm, body }));
  assert.equal(r.events[0].comm, 'exactly16bytes!!');
  const short = Buffer.concat([ints(3, 3), Buffer.from('sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0')]);
  assert.equal(binding.parse(message({ what: WHAT.comm, body: short })).events[0].comm, 'sh');
});

test('exit: raw status and signal; parent only when the kernel sent it', () => {
  const full = binding.parse(message({ what: WHAT.exit, body: ints(20, 20, 768, 17, 1, 1) })).events[0];
  assert.deepEqual([full.pid, full.a, full.b, full.ptgid, full.hasParent], [20, 768, 17, 1, true]);
  // An older kernel's shorter union (no parent fields).
  const old = binding.parse(message({ what: WHAT.exit, body: ints(20, 20, 9, 17) })).events[0];
  assert.equal(old.hasParent, false);
  assert.equal(old.a, 9);
});

test('acknowledgement: error number', () => {
  const r = binding.parse(message({ what: WHAT.none, cpu: 0xffffffff, ack: 5, body: ints(1) }));
  assert.equal(r.events[0].what, 'none');
  assert.equal(r.events[0].a, 1);
  assert.equal(r.events[0].ack, 5);
});

test('short, truncated and inconsistent datagrams are skipped, never over-read', () => {
  const good = message({ what: WHAT.exec, body: ints(5, 5) });
  for (let n = 0; n < good.length; n++) {
    const r = binding.parse(good.subarray(0, n));
    assert.equal(r.events.length, 0, `prefix of ${n} bytes`);
  }
  // cn_msg.len larger than the message
  assert.equal(binding.parse(message({ what: WHAT.exec, body: ints(5, 5), cnLen: 400 })).stats.malformed, 1);
  // union too short for the kind
  assert.equal(binding.parse(message({ what: WHAT.fork, body: ints(1, 1), cnLen: 24 })).events.length, 0);
  // nlmsg_len smaller than a header, or past the end
  assert.equal(binding.parse(message({ what: WHAT.exec, body: ints(5, 5), nlLen: 8 })).events.length, 0);
  assert.equal(binding.parse(message({ what: WHAT.exec, body: ints(5, 5), nlLen: 4000 })).events.length, 0);
});

test('unknown kinds, foreign connector ids and control messages are skipped', () => {
  const buf = Buffer.concat([
    message({ what: 0x400, body: ints(1, 1) }),
    message({ what: WHAT.exec, idx: 4, body: ints(1, 1) }),
    message({ what: WHAT.exec, nlType: 1, body: ints(1, 1) }),
    message({ what: WHAT.exec, nlType: 2, body: ints(1, 1) }),
    message({ what: WHAT.exec, body: ints(9, 9) }),
  ]);
  const r = binding.parse(buf);
  assert.deepEqual(
    r.events.map((e) => e.pid),
    [9],
  );
  assert.equal(r.stats.unknown, 1);
  assert.equal(r.stats.foreign, 1);
  assert.equal(r.stats.errors, 1);
});

test('many messages in one buffer, random garbage never crashes', () => {
  const many = Buffer.concat(Array.from({ length: 100 }, (_, i) => message({ what: WHAT.exec, seq: i, body: ints(i, i) })));
  assert.deepEqual(
    binding.parse(many).events.map((e) => e.seq),
    Array.from({ length: 100 }, (_, i) => i),
  );
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(Array.from({ length: i % 300 }, rnd));
    if (b.length >= 8 && i % 3 === 0) b.writeUInt32LE(b.length, 0);
    binding.parse(b);
  }
  assert.throws(() => binding.parse('not a buffer'), /Buffer/);
});

test('subscription request: 4-byte op and 8-byte proc_input', () => {
  const four = binding.buildRequest(1, false, 0, 11, 22, 33);
  assert.equal(four.length, 16 + 20 + 4);
  assert.equal(four.readUInt32LE(0), 40);
  assert.equal(four.readUInt32LE(8), 11); // nlmsg_seq
  assert.equal(four.readUInt32LE(12), 33); // nlmsg_pid
  assert.deepEqual([four.readUInt32LE(16), four.readUInt32LE(20)], [1, 1]); // CN_IDX_PROC, CN_VAL_PROC
  assert.equal(four.readUInt32LE(28), 22); // cn_msg.ack
  assert.equal(four.readUInt16LE(32), 4);
  assert.equal(four.readUInt32LE(36), 1); // PROC_CN_MCAST_LISTEN
  const eight = binding.buildRequest(2, true, 0x80000003, 1, 2, 3);
  assert.equal(eight.length, 44);
  assert.equal(eight.readUInt16LE(32), 8);
  assert.equal(eight.readUInt32LE(36), 2);
  assert.equal(eight.readUInt32LE(40), 0x80000003);
});
