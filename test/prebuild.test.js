'use strict';
// The committed prebuilds (prebuilds/, made by `npm run prebuilds`): current with the sources,
// stripped, an old enough glibc baseline, and each one loaded and used on its own architecture:
// linux-x64 by this Node.js, linux-arm64 by Debian's arm64 Node.js under qemu-aarch64-static
// (unpacked by scripts/fetch-arm64-node.sh, which .ci/run calls).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, execFileSync } = require('node:child_process');
const hash = require('../scripts/source-hash.js');

const ROOT = path.join(__dirname, '..');
const CI = process.env.CI === 'true' || process.env.CI === '1';
const ARM64_ROOT = process.env.PROCMONITOR_ARM64_ROOT || '/var/tmp/procmonitor-arm64-root';
const PREBUILDS = {
  x64: path.join(ROOT, 'prebuilds', 'linux-x64', 'procmonitor.glibc.node'),
  arm64: path.join(ROOT, 'prebuilds', 'linux-arm64', 'procmonitor.glibc.node'),
};
// Highest symbol versions a prebuild may need: glibc 2.17 (CentOS 7, Debian 8, Ubuntu 14.04 and
// every later one) and the libstdc++ of GCC 6 (GLIBCXX_3.4.22, CXXABI_1.3.9). Node.js >= 18's own
// Linux builds need glibc 2.28 (and GLIBCXX_3.4.21); the distributions that have it (Debian 10,
// RHEL 8, Ubuntu 18.10 and later) ship the libstdc++ of GCC 8 or later (docs/deployment.md: Platforms).
const MAX = { GLIBC: '2.17', GLIBCXX: '3.4.22', CXXABI: '1.3.9' };

// The environment of a child that runs a test file itself: without NODE_TEST_CONTEXT, which would
// make it report to this runner in its binary protocol instead of printing TAP.
function childEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function cmpVersion(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  }
  return 0;
}

function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

test('prebuilds/SOURCE_HASH matches their build inputs (no stale prebuild can ship)', () => {
  const recorded = hash.readRecorded();
  assert.ok(recorded, 'prebuilds/SOURCE_HASH is missing: run `npm run prebuilds`');
  const current = hash.computeHashes();
  // Every input of the build is covered: the sources, the build script and the header it
  // force-includes, and the node-addon-api headers (by version).
  for (const rel of ['binding.gyp', 'native/addon.cc', 'scripts/prebuild.sh', 'scripts/glibcxx-compat.h', hash.ADDON_API]) {
    assert.ok(rel in current, `${rel} is not hashed`);
  }
  const diffs = hash.compare(recorded, current);
  assert.deepEqual(diffs, [], `the prebuilds were made from other inputs; run \`npm run prebuilds\` and commit prebuilds/:\n  ${diffs.join('\n  ')}`);
  assert.equal(recorded.combined, hash.combinedHash(current));
});

test('the source hash notices a changed, added or removed input, and another node-addon-api', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-hash-'));
  const write = (rel, text) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  };
  try {
    write('binding.gyp', '{}');
    write('native/a.cc', 'int a;');
    write('scripts/prebuild.sh', 'echo build');
    write('scripts/glibcxx-compat.h', '#pragma once');
    write('scripts/fuzz.sh', 'not an input');
    write('node_modules/node-addon-api/package.json', JSON.stringify({ name: 'node-addon-api', version: '8.0.0' }));
    const before = hash.computeHashes(dir);
    assert.deepEqual(Object.keys(before).sort(), ['binding.gyp', 'native/a.cc', hash.ADDON_API, 'scripts/glibcxx-compat.h', 'scripts/prebuild.sh']);
    assert.equal(hash.addonApiVersion(dir), '8.0.0');
    const recorded = { files: before };
    assert.deepEqual(hash.compare(recorded, hash.computeHashes(dir)), []);
    write('scripts/fuzz.sh', 'changed, still not an input');
    assert.deepEqual(hash.compare(recorded, hash.computeHashes(dir)), []);

    write('native/a.cc', 'int a = 1;');
    write('native/b.h', '');
    write('scripts/prebuild.sh', 'echo build -O3');
    write('node_modules/node-addon-api/package.json', JSON.stringify({ name: 'node-addon-api', version: '8.1.0' }));
    const diffs = hash.compare(recorded, hash.computeHashes(dir));
    assert.deepEqual(diffs.sort(), [
      'native/a.cc: changed since the prebuilds were made',
      'native/b.h: added since the prebuilds were made',
      `${hash.ADDON_API}: changed since the prebuilds were made`,
      'scripts/prebuild.sh: changed since the prebuilds were made',
    ]);
    fs.rmSync(path.join(dir, 'native', 'a.cc'));
    fs.rmSync(path.join(dir, 'scripts', 'glibcxx-compat.h'));
    const gone = hash.compare(recorded, hash.computeHashes(dir));
    assert.ok(gone.includes('native/a.cc: removed since the prebuilds were made'), gone.join('; '));
    assert.ok(gone.includes('scripts/glibcxx-compat.h: removed since the prebuilds were made'), gone.join('; '));
    // Without node-addon-api installed there is nothing to judge the prebuilds against.
    fs.rmSync(path.join(dir, 'node_modules'), { recursive: true });
    assert.throws(() => hash.computeHashes(dir), /node-addon-api/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('prebuilds: linux-x64 and linux-arm64 glibc, stripped, glibc <= 2.17, nothing but libc and libstdc++ needed', (t) => {
  const list = hash.listPrebuilds().map((p) => p.rel);
  assert.ok(list.includes('prebuilds/linux-x64/procmonitor.glibc.node'), list.join(', '));
  assert.ok(list.includes('prebuilds/linux-arm64/procmonitor.glibc.node'), list.join(', '));
  if (!hasCommand('readelf')) {
    if (CI) assert.fail('readelf (binutils) is needed in CI');
    t.skip('readelf (binutils) not installed');
    return;
  }
  const machines = { x64: 'X86-64', arm64: 'AArch64' };
  for (const [arch, file] of Object.entries(PREBUILDS)) {
    const e = hash.elfInfo(file);
    assert.match(e.machine, new RegExp(machines[arch]), `${arch}: ${e.machine}`);
    assert.ok(e.stripped, `${arch}: not stripped`);
    for (const lib of e.needed) assert.match(lib, /^(libc|libm|libstdc\+\+|libgcc_s|ld-linux[-\w]*)\.so\.\d+$/, `${arch} needs ${lib}`);
    for (const v of e.versions) {
      const [, kind, num] = /^(GLIBC|GLIBCXX|CXXABI|GCC)_(.+)$/.exec(v);
      if (MAX[kind]) assert.ok(cmpVersion(num, MAX[kind]) <= 0, `${arch} needs ${v} (at most ${kind}_${MAX[kind]} allowed)`);
    }
    assert.ok(fs.statSync(file).size < 512 * 1024, `${arch}: ${fs.statSync(file).size} bytes`);
    const top = (kind) =>
      e.versions
        .filter((v) => v.startsWith(`${kind}_`))
        .map((v) => v.slice(kind.length + 1))
        .sort(cmpVersion)
        .pop();
    t.diagnostic(`${path.relative(ROOT, file)}: ${fs.statSync(file).size} bytes, needs GLIBC_${top('GLIBC')}, GLIBCXX_${top('GLIBCXX')}, CXXABI_${top('CXXABI')}`);
  }
});

// A script run by either Node.js with PREBUILDS_ONLY=1 (node-gyp-build then ignores build/ and
// must pick the prebuild): which file was loaded, the addon's exports, and a real exec event
// through ProcConnector when the kernel's connector answers.
const PROBE = `
const path = require('node:path');
const root = process.argv[1];
const out = { arch: process.arch, node: process.version };
out.resolved = path.relative(root, require('node-gyp-build').resolve(root));
const binding = require('node-gyp-build')(root);
out.exports = Object.keys(binding).sort();
const { ProcConnector } = require(path.join(root, 'dist', 'index.js'));
const conn = new ProcConnector({ events: 'exec' });
try {
  conn.start();
} catch (err) {
  out.startError = err.code + ': ' + err.message;
  console.log(JSON.stringify(out));
  process.exit(0);
}
const marker = 'pm-prebuild-' + process.pid;
const timer = setTimeout(() => { out.timeout = true; conn.stop(); console.log(JSON.stringify(out)); }, 20000);
conn.on('exec', (ev) => {
  if (ev.pid === child.pid) {
    out.exec = { pid: ev.pid, argv: ev.argv, match: ev.argv.includes(marker) };
    clearTimeout(timer);
    conn.stop();
    console.log(JSON.stringify(out));
  }
});
const child = require('node:child_process').spawn('/bin/sh', ['-c', 'sleep 0.3; exit 0', marker], { stdio: 'ignore' });
`;

function probe(cmd, args) {
  const r = spawnSync(cmd, [...args, '-e', PROBE, ROOT], {
    encoding: 'utf8',
    env: childEnv({ PREBUILDS_ONLY: '1' }),
    timeout: 120000,
  });
  assert.equal(r.status, 0, `${cmd} exited with ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

test('linux-x64 prebuild: loads with PREBUILDS_ONLY, parser tests pass, a real exec event arrives', { skip: process.arch !== 'x64' && 'not an x64 machine' }, () => {
  const out = probe(process.execPath, []);
  assert.equal(out.resolved, path.join('prebuilds', 'linux-x64', 'procmonitor.glibc.node'));
  assert.deepEqual(out.exports, ['Connector', 'JournalSocket', 'LineFilter', 'buildRequest', 'filterError', 'lookupId', 'parse', 'peerCred']);
  assert.equal(out.startError, undefined);
  assert.ok(out.exec && out.exec.match, JSON.stringify(out));
  const r = spawnSync(process.execPath, ['--test-reporter=tap', path.join(__dirname, 'parser.test.js')], {
    encoding: 'utf8',
    env: childEnv({ PREBUILDS_ONLY: '1' }),
    timeout: 60000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# fail 0/);
});

function arm64Node(t) {
  const node = path.join(ARM64_ROOT, 'usr', 'bin', 'node');
  const ok = hasCommand('qemu-aarch64-static') && fs.existsSync(node) && fs.existsSync(path.join(ARM64_ROOT, '.complete'));
  if (!ok) {
    const why = `no arm64 Node.js under ${ARM64_ROOT} or no qemu-aarch64-static: run \`sudo bash scripts/fetch-arm64-node.sh\``;
    if (CI) assert.fail(`${why} (CI must run this test; .ci/run calls that script)`);
    t.skip(why);
    return null;
  }
  return ['qemu-aarch64-static', ['-L', ARM64_ROOT, node]];
}

test('linux-arm64 prebuild under qemu-aarch64-static: loads, parser tests pass, connector answers or says why', (t) => {
  const qemu = arm64Node(t);
  if (!qemu) return;
  const [cmd, args] = qemu;
  const out = probe(cmd, args);
  assert.equal(out.arch, 'arm64');
  assert.equal(out.resolved, path.join('prebuilds', 'linux-arm64', 'procmonitor.glibc.node'));
  assert.deepEqual(out.exports, ['Connector', 'JournalSocket', 'LineFilter', 'buildRequest', 'filterError', 'lookupId', 'parse', 'peerCred']);
  t.diagnostic(`arm64 Node.js ${out.node} under qemu`);
  // The whole parser suite (crafted datagrams), run in that process: node --test would spawn
  // process.execPath, an arm64 binary the kernel cannot run without binfmt_misc.
  const r = spawnSync(cmd, [...args, path.join(__dirname, 'parser.test.js')], {
    encoding: 'utf8',
    env: childEnv({ PREBUILDS_ONLY: '1' }),
    timeout: 120000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# fail 0/);
  assert.doesNotMatch(r.stdout, /# pass 0\b/);
  if (out.startError) {
    // qemu-user passes only NETLINK_ROUTE, _KOBJECT_UEVENT and _AUDIT sockets through; it
    // answers the connector's socket() with EPROTONOSUPPORT, which the library reports as such.
    assert.match(out.startError, /^EPROTONOSUPPORT/, out.startError);
    t.diagnostic(`proc connector under qemu-user: ${out.startError} (qemu-user does not pass NETLINK_CONNECTOR through); no live event checked on arm64`);
  } else {
    assert.ok(out.exec && out.exec.match, JSON.stringify(out));
  }
});

test('node-gyp-build picks the prebuild that fits: napi, any runtime (Electron too), glibc', () => {
  const load = require('node-gyp-build');
  const picked = spawnSync(process.execPath, ['-p', `require('node-gyp-build').resolve(${JSON.stringify(ROOT)})`], {
    encoding: 'utf8',
    env: childEnv({ PREBUILDS_ONLY: '1' }),
  });
  assert.equal(picked.status, 0, picked.stderr);
  assert.equal(picked.stdout.trim(), PREBUILDS[process.arch] ?? picked.stdout.trim());
  // The tags prebuildify wrote are understood: napi build, any runtime (Electron too), glibc.
  const tags = load.parseTags('procmonitor.glibc.node');
  assert.equal(tags.libc, 'glibc');
  assert.ok(load.matchTags('node', process.versions.modules)(tags));
  assert.ok(load.matchTags('electron', '125')(tags));
});

test('the prebuild script uses the toolchains named in .ci/run and docs/deployment.md (test/docs.test.js checks the doc)', () => {
  // Only a static check: `npm run prebuilds` takes a cross compiler and is not run by the tests.
  const script = fs.readFileSync(path.join(ROOT, 'scripts', 'prebuild.sh'), 'utf8');
  assert.match(script, /prebuildify" --napi --strip --tag-libc/);
  assert.match(script, /aarch64-linux-gnu-g\+\+/);
  try {
    execFileSync('bash', ['-n', path.join(ROOT, 'scripts', 'prebuild.sh')]);
    execFileSync('bash', ['-n', path.join(ROOT, 'scripts', 'fetch-arm64-node.sh')]);
  } catch (err) {
    assert.fail(`shell syntax: ${err.stderr}`);
  }
});
