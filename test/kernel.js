'use strict';
// What this kernel allows, found out by trying, never inferred from its version: whether it
// lets an unprivileged process subscribe to process events depends on how it was built.
// Each probe runs once per test file, in a child process under setpriv / unshare.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

/**
 * What runs a command as another user: setpriv, with NODE_V8_COVERAGE dropped (a coverage run
 * sets it, and a node that cannot write its report there would fail for that alone).
 */
const AS_USER = ['env', '-u', 'NODE_V8_COVERAGE', 'setpriv'];

/** Arguments that run a command as nobody without capabilities. */
const NOBODY = [...AS_USER, '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];

/**
 * setpriv arguments that run a command as nobody with only the given capabilities (names as
 * setpriv takes them, e.g. 'net_admin'), ambient so that they survive the exec of node.
 */
function nobodyWith(...caps) {
  const list = caps.map((c) => `+${c}`).join(',');
  return [...AS_USER, '--reuid=nobody', '--regid=nogroup', '--clear-groups', `--inh-caps=-all,${list}`, `--ambient-caps=${list}`, `--bounding-set=-all,${list}`];
}

/** Least privilege: nobody with CAP_NET_ADMIN alone. */
const NET_ADMIN_ONLY = nobodyWith('net_admin');

/** Why the unprivileged tests' positive paths cannot run on a kernel that refuses. */
const REFUSES_UNPRIVILEGED = 'kernel refuses unprivileged proc connector subscribers';

const cache = new Map();

/**
 * Starts a ProcConnector under `wrap` (a command that runs the rest) and stops it. Resolves
 * to { ok: true } or { ok: false, code, message, name, coded } (coded: a ProcConnectorError);
 * throws if the child did not answer.
 */
function tryStart(wrap) {
  const key = wrap.join(' ');
  if (cache.has(key)) return cache.get(key);
  const script = `
    const { ProcConnector, ProcConnectorError } = require(${JSON.stringify(ROOT)});
    let r;
    try { new ProcConnector({ events: 'exec', ackTimeout: 500 }).start().stop(); r = { ok: true }; }
    catch (e) { r = { ok: false, code: e.code, message: e.message, name: e.name, coded: e instanceof ProcConnectorError }; }
    console.log(JSON.stringify(r));
  `;
  const p = spawnSync(wrap[0], [...wrap.slice(1), process.execPath, '-e', script], { encoding: 'utf8', timeout: 15000 });
  if (p.status !== 0) throw new Error(`probing the kernel under ${key} failed: ${p.error ?? p.stderr}`);
  const r = JSON.parse(p.stdout);
  cache.set(key, r);
  return r;
}

/** Does this kernel let a process without privileges (nobody, no capabilities) subscribe? */
const unprivileged = () => tryStart(NOBODY);

module.exports = { AS_USER, NOBODY, NET_ADMIN_ONLY, nobodyWith, REFUSES_UNPRIVILEGED, tryStart, unprivileged };
