'use strict';
// NATS for production: the daemon authenticates without putting a secret on its command line
// (a user and a password from a file or the environment, a token file, an NKey, a credentials
// file of NATS's operator mode) and speaks TLS with a CA of its own and a client certificate,
// each against a real nats-server configured for it. The operator, account and user of the
// operator mode are made here with the nkeys library the nats client ships (nsc, NATS's own
// tool, is not packaged by Debian), their JWTs signed as nsc signs them. The hazards: a
// secret in `ps` or in the log, a server that refuses us and stops the daemon, a TLS setting
// that is silently ignored.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./helpers');
const { tmpDir, until } = require('./server-helpers');
const { daemon, freePort, NATS_SERVER, natsServer, refusedUsage } = require('./daemon');

const skip = NATS_SERVER || process.env.CI ? false : 'nats-server is not installed (apt-get install nats-server)';
const T = { skip, timeout: 90000 };
const { connect: natsConnect, StringCodec, nkeys, credsAuthenticator, nkeyAuthenticator } = require('nats');
const sc = StringCodec();
const WAIT = 20000;

/** A nats-server run with the configuration `conf` (text; PORT is replaced by its port). */
async function natsWithConfig(t, dir, conf) {
  const port = await freePort();
  const file = path.join(dir, 'nats.conf');
  fs.writeFileSync(file, conf.replaceAll('PORT', String(port)));
  const cp = await natsServer(t, port, ['-c', file]);
  return { port, cp };
}

/** Subscribes with `opts` (how the test itself authenticates) and records the events. */
async function subscriber(t, opts) {
  const nc = await natsConnect({ maxReconnectAttempts: -1, reconnectTimeWait: 100, ...opts });
  t.after(() => nc.close().catch(() => {}));
  const evs = [];
  nc.subscribe('procmon.>', { callback: (err, m) => !err && evs.push(JSON.parse(sc.decode(m.data))) });
  await nc.flush();
  return evs;
}

/** Runs a process and waits for its exec in `evs`. */
async function sawExec(evs) {
  const { pid } = await run('/bin/true', []);
  await until(() => evs.some((e) => e.event === 'exec' && e.pid === pid), WAIT, `exec of ${pid} through NATS`);
}

/** A file holding `text`, mode 0600. */
function secret(dir, name, text) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `${text}\n`, { mode: 0o600 });
  return f;
}

/** The daemon's command line as `ps` shows it. */
const cmdline = (pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');

test(
  'a user and its password from a file, then from PROCMONITOR_NATS_PASSWORD: events flow, the password in neither ps nor the log; a wrong one is retried, never fatal',
  T,
  async (t) => {
    const dir = tmpDir(t, 'pm-nats-auth-');
    const { port } = await natsWithConfig(t, dir, 'listen: 127.0.0.1:PORT\nauthorization { users = [ { user: pm, password: "pw-from-a-file" } ] }\n');
    const evs = await subscriber(t, { servers: `127.0.0.1:${port}`, user: 'pm', pass: 'pw-from-a-file' });
    const pw = secret(dir, 'pw', 'pw-from-a-file');
    const a = await daemon(t, ['--nats', `nats://127.0.0.1:${port}`, '--nats-user', 'pm', '--nats-password-file', pw, '--direct', '-e', 'exec']).ready;
    await a.saw(/nats: connected to /);
    await sawExec(evs);
    assert.ok(!cmdline(a.pid).includes('pw-from-a-file'));
    await a.stop();
    assert.ok(!a.err.includes('pw-from-a-file'));
    const b = await daemon(t, ['--nats', `nats://127.0.0.1:${port}`, '--nats-user', 'pm', '--direct', '-e', 'exec'], { env: { PROCMONITOR_NATS_PASSWORD: 'pw-from-a-file' } })
      .ready;
    await b.saw(/nats: connected to /);
    await sawExec(evs);
    await b.stop();
    const bad = await daemon(t, ['--nats', `nats://127.0.0.1:${port}`, '--nats-user', 'pm', '--direct', '-e', 'exec'], { env: { PROCMONITOR_NATS_PASSWORD: 'wrong-one' } }).ready;
    await bad.saw(/nats: cannot connect to nats:\/\/127\.0\.0\.1:\d+: .*(Authorization|AUTHORIZATION).*\(attempt 2\)/);
    assert.equal(bad.exitCode, null, 'still running');
    assert.ok(!bad.err.includes('wrong-one'));
    await bad.stop();
  },
);

test('a token file; a user NKey: events flow', T, async (t) => {
  const dir = tmpDir(t, 'pm-nats-auth-');
  const { port } = await natsWithConfig(t, dir, 'listen: 127.0.0.1:PORT\nauthorization { token: "t0ken-in-a-file" }\n');
  const evs = await subscriber(t, { servers: `127.0.0.1:${port}`, token: 't0ken-in-a-file' });
  const a = await daemon(t, ['--nats', `nats://127.0.0.1:${port}`, '--nats-token-file', secret(dir, 'token', 't0ken-in-a-file'), '--direct', '-e', 'exec']).ready;
  await a.saw(/nats: connected to /);
  await sawExec(evs);
  await a.stop();

  const user = nkeys.createUser();
  const seed = Buffer.from(user.getSeed()).toString();
  const dir2 = tmpDir(t, 'pm-nats-nkey-');
  const s2 = await natsWithConfig(t, dir2, `listen: 127.0.0.1:PORT\nauthorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`);
  const evs2 = await subscriber(t, { servers: `127.0.0.1:${s2.port}`, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) });
  const b = await daemon(t, ['--nats', `nats://127.0.0.1:${s2.port}`, '--nats-nkey', secret(dir2, 'user.nk', seed), '--direct', '-e', 'exec']).ready;
  await b.saw(/nats: connected to /);
  await sawExec(evs2);
  assert.ok(!cmdline(b.pid).includes(seed));
  await b.stop();
});

// ---- NATS's operator mode: an operator, an account it signs, a user the account signs.
const b64url = (buf) => Buffer.from(buf).toString('base64url');
/** A JWT as nsc makes them: ed25519-nkey, signed by `signer` (an nkeys key pair). */
function jwt(signer, claims) {
  const body = { iat: Math.floor(Date.now() / 1000), iss: signer.getPublicKey(), ...claims };
  body.jti = Buffer.from(crypto.createHash('sha256').update(JSON.stringify(body)).digest())
    .toString('hex')
    .toUpperCase()
    .slice(0, 52);
  const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const payload = b64url(JSON.stringify(body));
  return `${head}.${payload}.${b64url(signer.sign(new TextEncoder().encode(`${head}.${payload}`)))}`;
}
/** A credentials file's text (what `nsc generate creds` writes). */
const credsText = (userJwt, seed) =>
  `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\nNKEYs are sensitive and should be treated as secrets.\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n\n*************************************************************\n`;

test('--nats-creds: a credentials file of an operator-mode set-up; events flow; a user the account did not sign is refused and retried', T, async (t) => {
  const dir = tmpDir(t, 'pm-nats-creds-');
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const opJwt = jwt(operator, { name: 'pm-op', sub: operator.getPublicKey(), nats: { type: 'operator', version: 2 } });
  const acJwt = jwt(operator, {
    name: 'pm-acc',
    sub: account.getPublicKey(),
    nats: {
      type: 'account',
      version: 2,
      limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 },
      default_permissions: { pub: {}, sub: {} },
    },
  });
  const userCreds = (signer) => {
    const u = nkeys.createUser();
    const uJwt = jwt(signer, { name: 'pm-user', sub: u.getPublicKey(), nats: { type: 'user', version: 2, pub: {}, sub: {}, subs: -1, data: -1, payload: -1 } });
    return credsText(uJwt, Buffer.from(u.getSeed()).toString());
  };
  fs.writeFileSync(path.join(dir, 'op.jwt'), opJwt);
  const { port } = await natsWithConfig(
    t,
    dir,
    `listen: 127.0.0.1:PORT\noperator: ${path.join(dir, 'op.jwt')}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: "${acJwt}" }\n`,
  );
  const mine = userCreds(account);
  const evs = await subscriber(t, { servers: `127.0.0.1:${port}`, authenticator: credsAuthenticator(new TextEncoder().encode(userCreds(account))) });
  const file = secret(dir, 'pm.creds', mine);
  const a = await daemon(t, ['--nats', `nats://127.0.0.1:${port}`, '--nats-creds', file, '--direct', '-e', 'exec']).ready;
  await a.saw(/nats: connected to /);
  await sawExec(evs);
  await a.stop();
  // A user signed by another account than the one the operator signed: refused, retried.
  const bad = await daemon(t, ['--nats', `nats://127.0.0.1:${port}`, '--nats-creds', secret(dir, 'other.creds', userCreds(nkeys.createAccount())), '--direct', '-e', 'exec']).ready;
  await bad.saw(/nats: cannot connect to .*\(attempt 2\)/);
  assert.equal(bad.exitCode, null, 'still running');
  await bad.stop();
});

test('TLS with a CA of our own and a client certificate (the server verifies clients): events flow; without the client certificate, refused and retried', T, async (t) => {
  const dir = tmpDir(t, 'pm-nats-tls-');
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=pm NATS test CA');
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ]) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  }
  const f = (n) => path.join(dir, n);
  const { port } = await natsWithConfig(
    t,
    dir,
    `listen: 127.0.0.1:PORT\ntls { cert_file: "${f('server.crt')}", key_file: "${f('server.key')}", ca_file: "${f('ca.crt')}", verify: true }\n`,
  );
  const evs = await subscriber(t, {
    servers: `localhost:${port}`,
    tls: { ca: fs.readFileSync(f('ca.crt')), cert: fs.readFileSync(f('client.crt')), key: fs.readFileSync(f('client.key')) },
  });
  const tlsFlags = ['--nats-tls-ca', f('ca.crt'), '--nats-tls-cert', f('client.crt'), '--nats-tls-key', f('client.key')];
  // nats:// with --nats-tls-*: TLS all the same.
  const a = await daemon(t, ['--nats', `nats://localhost:${port}`, ...tlsFlags, '--direct', '-e', 'exec']).ready;
  await a.saw(/nats: connected to /);
  await sawExec(evs);
  await a.stop();
  const noCert = await daemon(t, ['--nats', `tls://localhost:${port}`, '--nats-tls-ca', f('ca.crt'), '--direct', '-e', 'exec']).ready;
  await noCert.saw(/nats: cannot connect to tls:\/\/localhost:\d+: .*\(attempt 2\)/);
  assert.equal(noCert.exitCode, null, 'still running');
  await noCert.stop();
  // Usage: the key without its certificate, a file that is no PEM, a password file without a user.
  refusedUsage(['--nats', 'nats://127.0.0.1:4222', '--nats-tls-key', f('client.key')], /^procMonitor: --nats-tls-cert and --nats-tls-key go together$/);
  refusedUsage(['--nats', 'nats://127.0.0.1:4222', '--nats-tls-ca', f('client.ext')], /--nats-tls-ca .*client\.ext/);
  refusedUsage(['--nats', 'nats://127.0.0.1:4222', '--nats-password-file', f('ca.crt')], /^procMonitor: --nats-password-file needs --nats-user$/);
  refusedUsage(['--nats', 'nats://127.0.0.1:4222', '--nats-user', 'pm'], /^procMonitor: --nats-user needs its password: --nats-password-file FILE or PROCMONITOR_NATS_PASSWORD$/);
  refusedUsage(['--nats', 'nats://127.0.0.1:4222', '--nats-nkey', secret(dir, 'bad.nk', 'SUNOTASEED')], /^procMonitor: --nats-nkey: nkeySeed is not a user NKey seed/);
  refusedUsage(['--nats', 'nats://127.0.0.1:4222', '--nats-creds', secret(dir, 'bad.creds', 'hello')], /^procMonitor: --nats-creds: creds is not a NATS credentials file/);
  refusedUsage(['--nats-creds', f('ca.crt')], /^procMonitor: --nats-creds needs --nats URL$/);
});
