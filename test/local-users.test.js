'use strict';
// Hazards from local users of the Unix socket (mode 0666: anyone on the host may connect):
// taking every client slot, flooding requests, resume and snapshot floods, slow user-name
// lookups. The attacker runs as nobody (setpriv); root's clients must keep their share.
const test = require('node:test');
const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tooManyForUserLine, tooManyClientsLine } = require('..');
const { IdResolver } = require('../dist/server/accounts');
const { tmpDir, serve, FakeSource, rawConnect, until, events, checkAccounting, feeder } = require('./server-helpers');
const { AS_USER, NOBODY } = require('./kernel');

const PEER = path.join(__dirname, 'fixtures', 'local-peer.js');
const NOBODY_UID = Number(childProcess.execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());

/** A directory nobody can reach a socket in. */
function openDir(t) {
  const dir = tmpDir(t, 'pm-local-');
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Runs the local-peer fixture as nobody; resolves with its JSON line. */
function asNobody(sock, ...args) {
  return new Promise((resolve, reject) => {
    childProcess.execFile(NOBODY[0], [...NOBODY.slice(1), process.execPath, PEER, sock, ...args.map(String)], { encoding: 'utf8', timeout: 30000 }, (err, out, errText) => {
      if (err) return reject(new Error(`${err.message}\n${errText}`));
      resolve(JSON.parse(out));
    });
  });
}

/** A source with a process table of `n` records (for snapshot requests). */
class TableSource extends FakeSource {
  constructor(n) {
    super();
    this.table = Array.from({ length: n }, (_, i) => ({ pid: 1000 + i, ppid: 1, comm: 'proc', exe: '/bin/true', cmdline: `proc ${i}`, user: 'root', uid: 0 }));
  }
  snapshot() {
    return this.table;
  }
}

test('a local user cannot take every client slot: it gets maxClientsPerUser, and root still connects', async (t) => {
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const logs = [];
  const srv = await serve(t, { source: new FakeSource(), unix: { path: p }, log: (l) => logs.push(l) }); // 10 clients, 3 per user
  const got = await asNobody(p, 'hold', 10, 1000);
  const refused = got.filter((r) => r.text === tooManyForUserLine(NOBODY_UID, 3));
  assert.equal(refused.length, 7, JSON.stringify(got));
  assert.ok(refused.every((r) => r.closed));
  assert.equal(srv.stats().rejected['too-many-for-user'], 7);
  // Who connected is logged (SO_PEERCRED).
  assert.ok(
    logs.some((l) => new RegExp(`^unix: client \\d+ connected \\(\\d+/10\\), uid ${NOBODY_UID}, pid \\d+$`).test(l)),
    logs.join('\n'),
  );
  const root = rawConnect(p);
  t.after(() => root.sock.destroy());
  await until(() => logs.some((l) => /connected \(\d+\/10\), uid 0, pid \d+$/.test(l)), 5000, 'root connected');
  assert.equal(root.closed, false);
});

test('local users together leave the reserved slots to root', async (t) => {
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const srv = await serve(t, { source: new FakeSource(), unix: { path: p }, maxClients: 10, maxClientsPerUser: 10 }); // 2 reserved
  const held = asNobody(p, 'hold', 10, 1500);
  await until(() => srv.stats().clients === 8, 5000, 'nobody streaming 8');
  const roots = [rawConnect(p), rawConnect(p)];
  t.after(() => roots.forEach((r) => r.sock.destroy()));
  await until(() => srv.stats().clients === 10, 5000, 'root in the reserved slots');
  const got = await held;
  assert.equal(got.filter((r) => r.text === tooManyClientsLine(10)).length, 2, JSON.stringify(got));
  assert.ok(roots.every((r) => !r.closed));
});

test('request floods from a local user (snapshots, unknown user names) are answered at its rate; root streams completely and is not slowed', async (t) => {
  // Nothing on the event loop per request: no getent is run, whatever the names.
  const spawned = [];
  for (const fn of ['execFileSync', 'execFile', 'spawnSync']) {
    const orig = childProcess[fn];
    childProcess[fn] = function (...args) {
      if (String(args[0]).includes('getent')) spawned.push(args[1]);
      return orig.apply(this, args);
    };
    t.after(() => (childProcess[fn] = orig));
  }
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new TableSource(2000);
  const srv = await serve(t, { source, unix: { path: p } }); // 2 requests a second, 10 at once
  const healthy = rawConnect(p);
  t.after(() => healthy.sock.destroy());
  await until(() => srv.stats().clients === 1);
  const feed = feeder(source);
  const [snaps, names] = await Promise.all([asNobody(p, 'requests', '{"snapshot":true}', 2000), asNobody(p, 'requests', '{"users":["no-such-user-pm"]}', 2000)]);
  const total = await feed.stop();
  // One budget for the user: 10 at once, then 2 a second, over both loops (plus one in flight).
  const answered = snaps.answered + names.answered;
  console.log(`# nobody: ${snaps.tries + names.tries} requests in 2 s, ${answered} answered (bound 15)`);
  assert.ok(answered <= 10 + 2 * 2.5 + 1, JSON.stringify({ snaps, names }));
  assert.ok(snaps.answered >= 1 && names.answered >= 1, JSON.stringify({ snaps, names }));
  await until(() => events(healthy).length >= total, 15000, 'the healthy stream complete');
  assert.equal(checkAccounting(events(healthy), total).lost, 0);
  // Root's own requests are not held back: 20 snapshots in a row, each answered at once.
  for (let i = 0; i < 20; i++) {
    const r = rawConnect(p);
    r.sock.write('{"snapshot":true}\n');
    await until(() => /"event":"snapshot"/.test(r.text()), 5000, `root snapshot ${i}`);
    r.sock.destroy();
  }
  assert.deepEqual(spawned, []);
});

test('resume floods from a local user go out at its answer budget; the live stream is never held back', async (t) => {
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new FakeSource();
  // 1 MiB a second, 4 MiB at once, for the test (16 MiB and 64 MiB by default).
  const srv = await serve(t, { source, unix: { path: p }, answerBytesPerSecond: 1 << 20 });
  // 8 MB in the ring to resume from.
  await source.stream(400, 100, 200, 10);
  assert.ok(srv.stats().replay.bytes > 8e6);
  const healthy = rawConnect(p);
  t.after(() => healthy.sock.destroy());
  await until(() => srv.stats().clients === 1);
  const n0 = source.n;
  const feed = feeder(source);
  // Each try reads 1 MiB of the 8 it resumed from, then tries again.
  const flood = await asNobody(p, 'requests', '{"resume_from":0}', 3000, 1 << 20);
  const total = await feed.stop();
  console.log(`# nobody: ${flood.tries} resumes from 0 in 3 s got ${(flood.bytes / 1048576).toFixed(1)} MiB (budget 4 MiB + 1 MiB/s)`);
  assert.ok(flood.bytes <= (4 + 3 + 1) * 1048576, `${flood.bytes} bytes`);
  assert.ok(flood.bytes >= 1048576, `${flood.bytes} bytes: it got its share`);
  // The live client, which asked for nothing, got every event made after it connected.
  await until(() => events(healthy).length >= total - n0, 15000, 'the healthy stream complete');
  const evs = events(healthy);
  assert.equal(evs[0].n, n0);
  assert.equal(evs.length, total - n0);
});

test('IdResolver: a slow user database never blocks the event loop; one lookup per name, cached; bounded', async () => {
  let calls = 0;
  const slow = (db, name) =>
    new Promise((resolve) => {
      calls++;
      setTimeout(() => resolve(name === 'alice' ? 1234 : null), 300);
    });
  const ids = new IdResolver(slow);
  let ticks = 0;
  const iv = setInterval(() => ticks++, 10);
  const t0 = Date.now();
  const all = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => ids.resolve('passwd', i % 2 ? 'alice' : 'nobody-here', 'user')));
  clearInterval(iv);
  assert.equal(calls, 2, 'one lookup per name however many ask');
  assert.ok(ticks >= 10, `the loop kept turning (${ticks} ticks in ${Date.now() - t0} ms)`);
  assert.equal(all.filter((r) => r.status === 'fulfilled' && r.value === 1234).length, 25);
  assert.match(all.find((r) => r.status === 'rejected').reason.message, /^unknown user "nobody-here"$/);
  // Cached, found and missing alike.
  assert.equal(await ids.resolve('passwd', 'alice', 'user'), 1234);
  await assert.rejects(ids.resolve('passwd', 'nobody-here', 'user'), /unknown user/);
  assert.equal(calls, 2);
  // Numbers are themselves; nonsense is refused without a lookup.
  assert.equal(await ids.resolve('passwd', '42', 'user'), 42);
  await assert.rejects(ids.resolve('passwd', 99999999999, 'user'), /bad user id/);
  // Many distinct names: 2 at once, 256 waiting, beyond that refused at once.
  let running = 0;
  let peak = 0;
  const hang = () =>
    new Promise((resolve) => {
      running++;
      peak = Math.max(peak, running);
      setTimeout(() => (running--, resolve(null)), 50);
    });
  const many = new IdResolver(hang);
  const res = await Promise.allSettled(Array.from({ length: 300 }, (_, i) => many.resolve('passwd', `u${i}`, 'user')));
  assert.equal(peak, 2);
  assert.equal(res.filter((r) => r.status === 'rejected' && /too many user name lookups/.test(r.reason.message)).length, 42);
});

test('the real account database through the addon: names to ids off the JS thread', async () => {
  const ids = new IdResolver();
  assert.equal(await ids.resolve('passwd', 'root', 'user'), 0);
  assert.equal(await ids.resolve('passwd', 'nobody', 'user'), NOBODY_UID);
  assert.equal(await ids.resolve('group', 'root', 'group'), 0);
  await assert.rejects(ids.resolve('passwd', 'no-such-user-pm', 'user'), /^Error: unknown user "no-such-user-pm"$/);
  await assert.rejects(ids.resolve('passwd', 'a\u0000b', 'user'), /unknown user/);
});

// ------------------------------------------------------------------ what a local user sees

test('parseProcPolicy: hidepid and gid of the /proc mount (the last one listed), numeric or named', () => {
  const { parseProcPolicy, seesOnlyOwn } = require('../dist/server/visibility');
  const line = (opts, sup) => `22 27 0:21 / /proc ${opts} shared:12 - proc proc ${sup}`;
  assert.deepEqual(parseProcPolicy(line('rw,relatime', 'rw')), { hidepid: 'off', gid: null });
  assert.deepEqual(parseProcPolicy(line('rw,nosuid', 'rw,hidepid=invisible,gid=4')), { hidepid: 'invisible', gid: 4 });
  assert.deepEqual(parseProcPolicy(line('rw', 'rw,hidepid=2')), { hidepid: 'invisible', gid: null });
  assert.deepEqual(parseProcPolicy(line('rw', 'rw,hidepid=1')), { hidepid: 'noaccess', gid: null });
  assert.deepEqual(parseProcPolicy(line('rw', 'rw,hidepid=ptraceable,subset=pid')), { hidepid: 'ptraceable', gid: null });
  assert.deepEqual(parseProcPolicy(`${line('rw', 'rw,hidepid=2')}\n${line('rw', 'rw')}`), { hidepid: 'off', gid: null }, 'the mount on top counts');
  assert.deepEqual(parseProcPolicy('30 22 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n'), { hidepid: 'off', gid: null });
  assert.deepEqual(parseProcPolicy(''), { hidepid: 'off', gid: null });
  const me = { gid: 65534, pid: process.pid };
  assert.equal(seesOnlyOwn('host', { hidepid: 'off', gid: null }, me), false);
  assert.equal(seesOnlyOwn('host', { hidepid: 'invisible', gid: null }, me), true);
  assert.equal(seesOnlyOwn('host', { hidepid: 'invisible', gid: 65534 }, me), false, 'the exempt group (primary)');
  assert.equal(seesOnlyOwn('own', { hidepid: 'off', gid: null }, me), true);
  assert.equal(seesOnlyOwn('all', { hidepid: 'invisible', gid: null }, me), false);
});

/** Runs a command as nobody and waits for it. */
function runAsNobody(...cmd) {
  childProcess.execFileSync(NOBODY[0], [...NOBODY.slice(1), ...cmd], { stdio: 'ignore' });
}

for (const [visibility, restricted] of [
  ['host', true],
  ['all', false],
]) {
  test(`/proc with hidepid=invisible, --peer-visibility ${visibility}: a local user sees ${restricted ? 'only its own processes (events and snapshot)' : 'every process'}`, async (t) => {
    const { daemon } = require('./daemon');
    const dir = openDir(t);
    const p = path.join(dir, 'pm.sock');
    // The daemon in a mount namespace of its own, with /proc as a hardened host mounts it.
    const wrap = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t proc -o hidepid=invisible proc /proc && exec "$@"', 'sh'];
    const d = daemon(t, ['--socket', p, '-e', 'exec', '--peer-visibility', visibility], { wrap });
    await d.ready;
    const stream = asNobody(p, 'ask', '', 2500);
    await until(() => /connected .*uid \d+/.test(d.err) && d.err.includes(`uid ${NOBODY_UID}`), 5000, 'nobody connected');
    assert.equal(d.err.includes('its own processes only'), restricted, d.err);
    // (Each lives long enough for its argv to be read.)
    childProcess.execFileSync('/bin/sh', ['-c', 'sleep 0.3', 'pm-root-marker'], { stdio: 'ignore' });
    runAsNobody('/bin/sh', '-c', 'sleep 0.3', 'pm-nobody-marker');
    const { text } = await stream;
    assert.match(text, /"cmdline":"\/bin\/sh -c sleep 0.3 pm-nobody-marker"/);
    if (restricted) {
      assert.doesNotMatch(text, /pm-root-marker/);
      for (const line of text.split('\n').filter(Boolean)) {
        const ev = JSON.parse(line);
        if (ev.event !== 'lost') assert.equal(ev.uid, NOBODY_UID, line);
      }
    } else {
      assert.match(text, /"cmdline":"\/bin\/sh -c sleep 0.3 pm-root-marker"/);
    }
    // A snapshot: its own processes (at least the asking one), and, if restricted, nothing else,
    // even when it asks for root's.
    const snap = (await asNobody(p, 'ask', '{"snapshot":true,"users":["root","nobody"]}', 1500)).text;
    const procs = snap
      .split('\n')
      .filter((l) => l.includes('"event":"process"'))
      .map((l) => JSON.parse(l));
    assert.ok(
      procs.some((r) => r.uid === NOBODY_UID),
      snap.slice(0, 400),
    );
    assert.equal(
      procs.some((r) => r.uid === 0),
      !restricted,
    );
  });
}

test("the daemon's own secrets (--auth) never appear in its snapshot records or events", async (t) => {
  const { daemon, freePort } = require('./daemon');
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const SECRET = 'pm-topsecret-ZZ';
  const d = daemon(t, ['--socket', p, '--tcp', String(await freePort()), '--bind', '127.0.0.1', '--auth', SECRET, '-e', 'all', '--threads']);
  await d.ready;
  const stream = asNobody(p, 'ask', '{"snapshot":true}', 2000);
  // Something of the daemon's own happens meanwhile: a TCP client (its threads stay, but the
  // stream and snapshot carry the daemon's record).
  const { text } = await stream;
  const own = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((r) => r.event === 'process' && r.pid === d.pid);
  assert.ok(own, 'the daemon is in its own snapshot');
  assert.match(own.cmdline, /--auth \*\*\*\*\*/);
  assert.ok(!text.includes(SECRET), 'the secret is nowhere in what nobody got');
});

test("a local user's connect loop cannot flood the log: 20 lines per 10 s, then a count; root's lines still come", async (t) => {
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const logs = [];
  const source = new FakeSource();
  const srv = await serve(t, { source, unix: { path: p }, maxClientsPerUser: 10, log: (l) => logs.push(l) });
  const { connected } = await asNobody(p, 'churn', 300);
  assert.equal(connected, 300);
  // A client that closed is seen gone when a write to it fails (or a newcomer needs its slot).
  await until(() => (source.batch(1), srv.stats().clients === 0), 5000, 'every churned client gone');
  // Root's lines are not held back by nobody's flood.
  const root = rawConnect(p);
  // (A loaded machine may take seconds to see the churned clients' sockets gone: the line says
  // what was logged instead, if it never comes.)
  const [, rootId] = await until(() => logs.map((l) => /^unix: client (\d+) connected \(1\/10\), uid 0, pid \d+$/.exec(l)).find(Boolean), 20000, "root's line").catch((err) => {
    throw new Error(`${err.message}; the last lines: ${JSON.stringify(logs.slice(-5))}`);
  });
  root.sock.destroy();
  await until(() => (source.batch(1), logs.some((l) => l.startsWith(`unix: client ${rootId} closed (end;`))), 5000, "root's close line");
  await srv.close();
  const nobodyLines = logs.filter((l) => /^unix: client \d+ (connected|closed) /.test(l) && !l.startsWith(`unix: client ${rootId} `));
  assert.ok(nobodyLines.length <= 20, `${nobodyLines.length} lines let through`);
  const summary = logs.find((l) => l.startsWith(`connections of uid ${NOBODY_UID}: `));
  assert.ok(summary, logs.slice(-5).join('\n'));
  const held = Number(/: (\d+) more from 1 address in the last \d+ s$/.exec(summary)[1]);
  // Every connected and closed line of nobody's is either logged or counted (a connection
  // refused because its previous ones were not yet seen gone has neither).
  const refused = srv.stats().rejected['too-many-for-user'] + srv.stats().rejected['too-many-clients'];
  assert.equal(nobodyLines.length + held + 2 * refused, 600, `${nobodyLines.length} + ${held} + 2 × ${refused}`);
});

test('a local user holds one snapshot at a time: its next snapshot waits until the first is written', async (t) => {
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const source = new TableSource(20000); // 2 MB of records: far more than a socket takes unread
  const srv = await serve(t, { source, unix: { path: p }, clientBufferBytes: 256 * 1024 });
  const held = asNobody(p, 'hold', 3, 1500, '{"snapshot":true}');
  await until(() => srv.stats().clients === 3, 5000, 'three clients of nobody');
  await until(() => srv.stats().perClient.some((c) => c.answerBytes > 0), 20000, 'a snapshot under way');
  await new Promise((r) => setTimeout(r, 300)); // the others had their chance
  const answering = srv.stats().perClient.filter((c) => c.answerBytes > 0);
  assert.equal(answering.length, 1, JSON.stringify(srv.stats().perClient.map((c) => [c.mode, c.answerBytes, c.buffered, c.sent])));
  await held;
  // Root is not held to it. (Only root's clients are counted: one of nobody's may still be
  // listed for a moment after its process has gone.)
  const before = new Set(srv.stats().perClient.map((c) => c.id));
  const roots = [rawConnect(p), rawConnect(p)];
  t.after(() => roots.forEach((r) => r.sock.destroy()));
  for (const r of roots) {
    r.sock.write('{"snapshot":true}\n');
    r.sock.pause();
  }
  await until(() => srv.stats().perClient.filter((c) => !before.has(c.id) && c.answerBytes > 0).length === 2, 20000, "both of root's snapshots under way");
});

test("subordinate uids (/etc/subuid) count as their owner: a rootless container cannot multiply a user's share", async (t) => {
  const dir = openDir(t);
  const p = path.join(dir, 'pm.sock');
  const subuid = path.join(dir, 'subuid');
  fs.writeFileSync(subuid, 'nobody:200000:1000\n');
  const srv = await serve(t, { source: new FakeSource(), unix: { path: p }, subordinateIds: subuid }); // 3 per user
  const as = (uid) =>
    new Promise((resolve, reject) => {
      childProcess.execFile(
        AS_USER[0],
        [...AS_USER.slice(1), `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, PEER, p, 'hold', '2', '1000'],
        { encoding: 'utf8', timeout: 30000 },
        (err, out, errText) => (err ? reject(new Error(`${err.message}\n${errText}`)) : resolve(JSON.parse(out))),
      );
    });
  const got = (await Promise.all([as(200001), as(200002)])).flat();
  assert.equal(got.filter((r) => r.text === tooManyForUserLine(NOBODY_UID, 3)).length, 1, JSON.stringify(got));
  assert.equal(srv.stats().rejected['too-many-for-user'], 1);
  // A uid outside every range is its own account.
  const other = await new Promise((resolve, reject) =>
    childProcess.execFile(
      AS_USER[0],
      [...AS_USER.slice(1), '--reuid=300001', '--regid=300001', '--clear-groups', process.execPath, PEER, p, 'hold', '3', '500'],
      { encoding: 'utf8' },
      (err, out) => (err ? reject(err) : resolve(JSON.parse(out))),
    ),
  );
  assert.ok(
    other.every((r) => r.text === ''),
    JSON.stringify(other),
  );
});
