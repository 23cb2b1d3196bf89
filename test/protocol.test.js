'use strict';
// lib/protocol.ts on its own: the request parser and the refusal codes, without sockets.
const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');

test('parseRequest: every field, and a clear message for each mistake', () => {
  assert.deepEqual(pm.parseRequest('{}'), {});
  assert.deepEqual(pm.parseRequest('{"resume_from":42,"stream":"ab12cd34","snapshot":true,"events":["exec","exit"],"users":["root",0]}'), {
    resume_from: 42,
    stream: 'ab12cd34',
    snapshot: true,
    events: ['exec', 'exit'],
    users: ['root', 0],
  });
  assert.deepEqual(pm.parseRequest('{"events":"exec,fork"}').events, ['exec', 'fork']);
  assert.deepEqual(pm.parseRequest('{"schema":"ecs"}'), { schema: 'ecs' });
  assert.throws(() => pm.parseRequest('{"schema":"ECS"}'), /^Error: schema must be default or ecs$/);
  assert.throws(() => pm.parseRequest('{"schema":1}'), /^Error: schema must be default or ecs$/);
  const filtered = pm.parseRequest('{"match":{"comm":["ssh","scp"],"failed":true},"exclude":{"user":"root"}}');
  assert.deepEqual(filtered.match, { comm: ['ssh', 'scp'], failed: true });
  assert.deepEqual(filtered.exclude, { user: 'root' });
  assert.deepEqual(filtered.filter.rules, ['match', 'comm', 'ssh', 'match', 'comm', 'scp', 'match', 'failed', 'true', 'exclude', 'user', 'root']);
  const bad = [
    ['nope', /not JSON/],
    ['[1]', /must be a JSON object/],
    ['{"x":1}', /unknown request field "x" \(known: resume_from, stream, snapshot, events, users, match, exclude, schema\)/],
    ['{"match":{"colour":"red"}}', /filter: unknown key "colour"/],
    ['{"exclude":{"argv":"/(?=x)/"}}', /filter: exclude argv=\/\(\?=x\)\/: lookaround/],
    ['{"match":[]}', /filter\.match must be an object/],
    ['{"resume_from":-1}', /resume_from must be a whole number/],
    ['{"resume_from":1.5}', /resume_from must be a whole number/],
    ['{"stream":""}', /stream must be the id from a hello line/],
    ['{"snapshot":"yes"}', /snapshot must be true or false/],
    ['{"events":["bogus"]}', /events: unknown event "bogus"/],
    ['{"events":[1]}', /events must be a list of event names/],
    ['{"users":[]}', /users must be a list of 1 to 256/],
    [`{"users":[${Array(257).fill(0).join(',')}]}`, /users must be a list of 1 to 256/],
    ['{"users":[-1]}', /users must be a list of user names or uids/],
    ['{"users":[""]}', /users must be a list of user names or uids/],
  ];
  for (const [line, re] of bad) assert.throws(() => pm.parseRequest(line), re, line);
});

test('refusalCode: each refusal line the server sends, by its code', () => {
  assert.equal(pm.refusalCode(pm.AUTH_FAILED), 'EAUTH');
  assert.equal(pm.refusalCode(pm.CLIENT_CERT_REFUSED), 'EAUTH');
  assert.equal(pm.refusalCode(pm.AUTH_TIMEOUT), 'ETIMEDOUT');
  for (const line of [pm.tooManyClientsLine(10), pm.tooManyPendingLine(128), pm.tooManyForUserLine(1000, 3), pm.TOO_MANY_FILES]) assert.equal(pm.refusalCode(line), 'EBUSY', line);
  assert.equal(pm.refusalCode(pm.badRequestLine('the request is not JSON')), 'EREQUEST');
  assert.equal(pm.refusalCode('HTTP/1.1 400 Bad Request'), 'EPROTO');
  assert.equal(pm.refusalCode(pm.AUTH_SUCCESS), 'EPROTO');
});

test('the answer lines: hello, process, snapshot as the server has always written them, and lostEvent', () => {
  const { helloLine, processLine, snapshotLine, ANSWER_KINDS, lostEvent } = require('..');
  assert.equal(helloLine('ab12cd34', 41, 'T'), '{"event":"hello","time":"T","stream":"ab12cd34","last_seq":41}\n');
  assert.equal(processLine({ pid: 7, ppid: 1, comm: 'sh' }), '{"event":"process","pid":7,"ppid":1,"comm":"sh"}\n');
  assert.equal(snapshotLine(3, 'T'), '{"event":"snapshot","time":"T","count":3}\n');
  assert.match(helloLine('s', 0), /^\{"event":"hello","time":"\d{4}-\d\d-\d\dT[\d:.]+Z","stream":"s","last_seq":0\}\n$/);
  assert.deepEqual([...ANSWER_KINDS], ['hello', 'process', 'snapshot']);
  assert.deepEqual(lostEvent(5, 'nats', 'T'), { event: 'lost', time: 'T', count: 5, source: 'nats' });
});
