'use strict';
// Client slots, taken directly (no sockets): a local user cannot keep root's client out, nor
// take more than its share; a client that closed its sending side makes room for a newcomer.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Slots } = require('../dist/server/slots');

let nextId = 1;
/** A Conn as far as Slots looks at it. */
function conn({ transport = 'unix', uid = 1000, peerEnded = false } = {}) {
  return { id: nextId++, transport, uid, account: `uid ${uid}`, accountUid: uid, peerEnded, reason: null };
}

function slots(limits) {
  const clients = new Set();
  const gone = [];
  const s = new Slots(limits, clients, (c) => {
    gone.push(c);
    clients.delete(c);
  });
  const take = (c) => {
    const r = s.take(c);
    if (!r) clients.add(c);
    return r;
  };
  return { s, clients, gone, take };
}

test('a local user holds at most maxPerUser slots; others and root still get theirs', () => {
  const { take } = slots({ maxClients: 10, reserved: 2, maxPerUser: 3 });
  for (let i = 0; i < 3; i++) assert.equal(take(conn({ uid: 65534 })), null);
  const r = take(conn({ uid: 65534 }));
  assert.equal(r.reason, 'too-many-for-user');
  assert.match(r.message, /65534/);
  assert.equal(take(conn({ uid: 1000 })), null, 'another user');
  assert.equal(take(conn({ uid: 0 })), null, 'root');
});

test('local users together leave the reserved slots free: root gets in, over TCP too', () => {
  const { take, clients } = slots({ maxClients: 4, reserved: 2, maxPerUser: 4 });
  assert.equal(take(conn({ uid: 1001 })), null);
  assert.equal(take(conn({ uid: 1002 })), null);
  assert.equal(take(conn({ uid: 1003 })).reason, 'too-many-clients');
  assert.equal(take(conn({ uid: 0 })), null, 'root takes a reserved slot');
  assert.equal(take(conn({ transport: 'tcp', uid: null })), null, 'a TCP client (it has the password) takes the last');
  assert.equal(clients.size, 4);
  assert.equal(take(conn({ uid: 0 })).reason, 'too-many-clients', 'full is full, for root too');
});

test('a full server lets go of the longest-ended client rather than refuse a newcomer', () => {
  const { take, gone } = slots({ maxClients: 2, reserved: 0, maxPerUser: 2 });
  const ended = conn({ uid: 0, peerEnded: true });
  assert.equal(take(conn({ uid: 0 })), null);
  assert.equal(take(ended), null);
  assert.equal(take(conn({ uid: 0 })), null, 'the ended one made room');
  assert.deepEqual(gone, [ended]);
  assert.equal(ended.reason, 'end');
});

test("a user at its limit makes room only from its own ended clients, never another's", () => {
  const { take, gone } = slots({ maxClients: 10, reserved: 0, maxPerUser: 1 });
  const other = conn({ uid: 1002, peerEnded: true });
  assert.equal(take(other), null);
  const mine = conn({ uid: 1001, peerEnded: true });
  assert.equal(take(mine), null);
  assert.equal(take(conn({ uid: 1001 })), null);
  assert.deepEqual(gone, [mine]);
  assert.equal(take(conn({ uid: 1001 })).reason, 'too-many-for-user');
  assert.equal(other.reason, null);
});
