'use strict';
// The package as users get it: `npm pack`, installed into an empty folder with install scripts
// off and no compiler on the PATH, then used: require and import, types, a real exec event,
// the bins, a fake non-Linux platform; and the from-source fallback when no prebuild fits.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync, execFileSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const PKG = require('../package.json');
const MAX_PACKED = 740 * 1024; // bytes of the .tgz: 394,894 after the splits by state (server, client, outputs, native) and docs/*.md, 410,701 with lib/trace/, 445,491 with the exit cost (option cost), 473,723 with cwd, flush() and subtree (the prebuilds grew 8 KB), 507,320 with the context fields (login identity, tty, namespaces, env: the prebuilds grew 16 KB), 589,183 with the filter (its pattern engine) and redaction (the prebuilds grew 66 KB each), 641,909 with the filter on lines (native/line_*.cc, addon_lines.cc: the x64 prebuild grew 32 KB) and the file output, 669,090 with journald (lib/outputs/journald*, native/journal_socket.*, addon_journal.*), 694,722 with the config file, ECS, the man pages, completion and CHANGELOG.md; about 5% to spare
const MAX_UNPACKED = 2000 * 1024; // 1,157,822 bytes after those splits (two prebuilds ~390 KB, dist/ ~560 KB, docs ~115 KB), 1,210,815 with lib/trace/, 1,270,672 with the exit cost, 1,326,189 with cwd, flush() and subtree, 1,398,164 once the arm64 prebuild crossed a 64 KB page (its segments are aligned to 64 KB for kernels with 64 KB pages: 4 KB more packed), 1,648,823 with the context fields, the filter and redaction, 1,757,532 with the filter on lines and the file output, 1,904,991 with journald, the config file, ECS, man pages and completion; about 5% to spare
const MAX_FILES = 255; // 156 after those splits (each module is a .js and a .d.ts, the native sources in small files), 165 with lib/trace/ and docs/trace.md, 169 with native/exit_cost.* and taskstats.*, 179 with lib/connector-options.ts and native/lineage.*, 199 with the context fields, the filter and redaction (lib/filter.*, native/context.*, proc_dir.*, process_context.*, wire_fields.*, filter.*, pattern*.*, redact.*), 209 with native/line_*.*, addon_lines.* and lib/outputs/file.*, lib/cli/output.*, 223 with journald (lib/outputs/journald*.*, lib/cli/journald.*, lib/cli/log.*, native/journal_socket.*, addon_journal.*), 239 with lib/ecs.*, lib/cli/config.*, help.*, man.*, completion.*, daemon-tcp.*, man/*.1, CHANGELOG.md; about 5% to spare

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-package-'));
const app = path.join(tmp, 'app');
const bin = path.join(tmp, 'bin'); // node and npm only: no gcc, g++, cc, c++, make, python
const installed = path.join(app, 'node_modules', 'procmonitor');
let packed; // npm pack --json entry

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cleanEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k];
  return env;
}
const noCompilerEnv = () => cleanEnv({ PATH: bin, npm_config_nodedir: '/nonexistent', npm_config_update_notifier: 'false' });

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// Starts a connector for exec, runs /bin/sh with a marker argument, prints what it saw as JSON.
const EXEC_PROBE = `
  const marker = 'pm-package-' + process.pid;
  const conn = new ProcConnector({ events: 'exec' });
  conn.start();
  const timer = setTimeout(() => { conn.stop(); console.log(JSON.stringify({ timeout: true })); }, 15000);
  conn.on('exec', (ev) => {
    if (ev.pid !== child.pid) return;
    clearTimeout(timer);
    conn.stop();
    console.log(JSON.stringify({ pid: ev.pid, expected: child.pid, argv: ev.argv, user: ev.user }));
  });
  const child = spawn('/bin/sh', ['-c', '/bin/sleep 0.3; exit 0', marker], { stdio: 'ignore' });
`;

test('npm pack: only what users need, small', (t) => {
  const out = sh('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT, env: cleanEnv() });
  packed = JSON.parse(out.slice(out.indexOf('[')))[0];
  const files = packed.files.map((f) => f.path).sort();
  const allowed = [
    /^package\.json$/,
    /^README\.md$/,
    /^docs\/[\w-]+\.md$/, // the reference the README links to
    /^LICENSE$/,
    /^dist\/((cli|client|outputs|server|trace)\/)?[\w-]+\.(js|d\.ts)$/,
    /^esm\/index\.mjs$/,
    /^bin\/procMonitor(-client)?$/,
    /^native\/[\w-]+\.(cc|h)$/,
    /^binding\.gyp$/,
    /^prebuilds\/linux-(x64|arm64)\/procmonitor\.(glibc|musl)\.node$/,
    /^prebuilds\/SOURCE_HASH$/,
    /^man\/procMonitor(-client|-trace)?\.1$/, // man procMonitor (package.json "man")
    /^CHANGELOG\.md$/,
  ];
  const unexpected = files.filter((f) => !allowed.some((re) => re.test(f)));
  assert.deepEqual(unexpected, [], `files that users do not need: ${unexpected.join(', ')}`);
  for (const need of [
    'package.json',
    'LICENSE',
    'dist/index.js',
    'dist/index.d.ts',
    'dist/native.js',
    'esm/index.mjs',
    'bin/procMonitor',
    'bin/procMonitor-client',
    'binding.gyp', // the from-source fallback
    'native/addon.cc',
    'prebuilds/linux-x64/procmonitor.glibc.node',
    'prebuilds/linux-arm64/procmonitor.glibc.node',
    'man/procMonitor.1',
    'man/procMonitor-client.1',
    'man/procMonitor-trace.1',
    'CHANGELOG.md',
    // Every doc, so that the README's links work in an installed copy too.
    ...fs
      .readdirSync(path.join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md')) // (images are for the repository's pages, not the package)
      .map((f) => `docs/${f}`),
  ]) {
    assert.ok(files.includes(need), `${need} missing from the tarball`);
  }
  // No compiled file points at a source map that is not shipped.
  for (const f of files.filter((p) => p.endsWith('.js'))) {
    const m = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(fs.readFileSync(path.join(ROOT, f), 'utf8'));
    if (m) assert.ok(files.includes(path.posix.join(path.posix.dirname(f), m[1])), `${f} refers to ${m[1]}, which is not in the tarball`);
  }
  // Every source binding.gyp compiles is there.
  const gyp = fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8');
  for (const src of gyp.match(/native\/[\w.-]+/g)) assert.ok(files.includes(src), `${src} missing`);
  assert.ok(packed.size < MAX_PACKED, `tarball ${packed.size} bytes > ${MAX_PACKED}`);
  assert.ok(packed.unpackedSize < MAX_UNPACKED, `unpacked ${packed.unpackedSize} bytes`);
  assert.ok(files.length <= MAX_FILES, `${files.length} files`);
  t.diagnostic(`tarball ${packed.filename}: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${files.length} files`);
});

test('installs with --ignore-scripts and no compiler on the PATH', () => {
  assert.ok(packed, 'npm pack failed');
  fs.mkdirSync(app);
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
  fs.symlinkSync(npmCli, path.join(bin, 'npm'));
  for (const cc of ['gcc', 'g++', 'cc', 'c++', 'make', 'python3']) {
    const r = spawnSync('/bin/sh', ['-c', `command -v ${cc}`], { env: noCompilerEnv() });
    assert.notEqual(r.status, 0, `${cc} is on the restricted PATH`);
  }
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  sh(path.join(bin, 'npm'), ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', path.join(tmp, packed.filename)], {
    cwd: app,
    env: noCompilerEnv(),
  });
  assert.ok(fs.existsSync(path.join(installed, 'package.json')));
  assert.ok(!fs.existsSync(path.join(installed, 'build')), 'nothing was built');
  const deps = fs
    .readdirSync(path.join(app, 'node_modules'))
    .filter((d) => !d.startsWith('.'))
    .sort();
  // What the library needs, nothing more: nats (--nats), prom-client (--metrics) and yaml
  // (--config) are optional peers, installed by those who use them (see the next test).
  assert.deepEqual(deps, ['mri', 'node-addon-api', 'node-gyp-build', 'procmonitor']);
});

test('the optional peers: without them, --nats, --metrics and --config say what to install; installed beside, they work', () => {
  const exe = path.join(app, 'node_modules', '.bin', 'procMonitor');
  const run = (args) => spawnSync(exe, args, { cwd: app, env: noCompilerEnv(), encoding: 'utf8', timeout: 20000 });
  const cfg = path.join(tmp, 'pm.yaml');
  fs.writeFileSync(cfg, 'clients: 12\n');
  const cases = [
    [['--direct', '--nats', 'nats://127.0.0.1:1'], 1, 'NATS needs the nats package (it is not installed): npm install nats, with -g beside a global procmonitor'],
    [['--direct', '--metrics', '127.0.0.1:0'], 1, 'metrics needs the prom-client package (it is not installed): npm install prom-client, with -g beside a global procmonitor'],
    [['--config', cfg, '--print-config'], 2, '--config (and --print-config) needs the yaml package (it is not installed): npm install yaml, with -g beside a global procmonitor'],
  ];
  for (const [args, status, line] of cases) {
    const r = run(args);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`procMonitor: ${line}\n`), `${args.join(' ')}: ${r.stderr}`);
  }
  // Installed beside procmonitor (from the cache CI's npm ci filled), they are found.
  sh(
    path.join(bin, 'npm'),
    ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', `yaml@${PKG.peerDependencies.yaml}`, `prom-client@${PKG.peerDependencies['prom-client']}`],
    {
      cwd: app,
      env: noCompilerEnv(),
    },
  );
  const printed = run(['--config', cfg, '--print-config']);
  assert.equal(printed.status, 0, printed.stderr);
  assert.match(printed.stdout, /^clients: "12" {2}# .*pm\.yaml:1$/m);
  const metrics = spawnSync('/usr/bin/timeout', ['-s', 'INT', '2', exe, '--direct', '-e', 'exec', '--metrics', '127.0.0.1:0'], {
    cwd: app,
    env: noCompilerEnv(),
    encoding: 'utf8',
  });
  assert.match(metrics.stderr, /procMonitor: metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/);
});

test('require: the prebuild is loaded and ProcConnector receives a real exec event', () => {
  const script = `
    const { spawn } = require('node:child_process');
    const path = require('node:path');
    const pm = require('procmonitor');
    const resolved = require('node-gyp-build').resolve(path.dirname(require.resolve('procmonitor/package.json')));
    console.log(JSON.stringify({ resolved, exports: Object.keys(pm).sort() }));
    const { ProcConnector } = pm;
    ${EXEC_PROBE}
  `;
  const out = sh(process.execPath, ['-e', script], { cwd: app, env: noCompilerEnv() }).trim().split('\n');
  const info = JSON.parse(out[0]);
  assert.equal(info.resolved, path.join(installed, 'prebuilds', `linux-${process.arch}`, 'procmonitor.glibc.node'));
  assert.ok(info.exports.includes('ProcConnector') && info.exports.includes('createBroadcastServer'));
  const ev = JSON.parse(out[1]);
  assert.equal(ev.timeout, undefined, 'no exec event arrived');
  assert.equal(ev.pid, ev.expected);
  assert.deepEqual(ev.argv.slice(0, 3), ['/bin/sh', '-c', '/bin/sleep 0.3; exit 0']);
  assert.match(ev.argv[3], /^pm-package-\d+$/);
});

test('import: named and default exports, the same objects as require', () => {
  const file = path.join(app, 'probe.mjs');
  fs.writeFileSync(
    file,
    `
    import { createRequire } from 'node:module';
    import { spawn } from 'node:child_process';
    import pm, { ProcConnector, ProcConnectorError, createBroadcastServer, connect, toLine } from 'procmonitor';
    const require = createRequire(import.meta.url);
    const cjs = require('procmonitor');
    const same = ProcConnector === cjs.ProcConnector && pm === cjs && typeof createBroadcastServer === 'function'
      && typeof connect === 'function' && typeof toLine === 'function' && typeof ProcConnectorError === 'function';
    console.log(JSON.stringify({ same }));
    ${EXEC_PROBE}
  `,
  );
  const out = sh(process.execPath, [file], { cwd: app, env: noCompilerEnv() }).trim().split('\n');
  assert.deepEqual(JSON.parse(out[0]), { same: true });
  const ev = JSON.parse(out[1]);
  assert.equal(ev.timeout, undefined, 'no exec event arrived');
  assert.equal(ev.pid, ev.expected);
});

test('types: one set of declarations serves require and import (TypeScript, nodenext)', () => {
  const dir = path.join(app, 'ts');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'cjs.cts'),
    `import { ProcConnector, type ExecEvent } from 'procmonitor';
     import pm = require('procmonitor');
     const c: ProcConnector = new pm.ProcConnector({ events: 'exec' });
     c.on('exec', (ev: ExecEvent) => { const argv: string[] = ev.argv; void argv; });
     void ProcConnector;\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'esm.mts'),
    `import pm, { ProcConnector, createBroadcastServer, type ExecEvent } from 'procmonitor';
     const c = new ProcConnector({ events: ['exec', 'exit'] });
     c.on('exec', (ev: ExecEvent) => { const pid: number = ev.pid; void pid; });
     const same: typeof ProcConnector = pm.ProcConnector;
     void same; void createBroadcastServer;\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: ['cjs.cts', 'esm.mts'],
    }),
  );
  sh(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir, env: noCompilerEnv() });
});

test('the procMonitor bin runs: --version, and --direct prints exec events until SIGTERM', async () => {
  const exe = path.join(app, 'node_modules', '.bin', 'procMonitor');
  const v = sh(exe, ['--version'], { cwd: app, env: noCompilerEnv() });
  assert.equal(v.trim(), `procMonitor ${PKG.version}`);
  sh(path.join(app, 'node_modules', '.bin', 'procMonitor-client'), ['--help'], { cwd: app, env: noCompilerEnv() });

  const marker = `pm-bin-${process.pid}`;
  const daemon = spawn(exe, ['--direct', '-e', 'exec'], { cwd: app, env: noCompilerEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  daemon.stdout.on('data', (d) => (stdout += d));
  daemon.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => daemon.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 15000;
  let seen = null;
  while (!seen && Date.now() < deadline) {
    spawnSync('/bin/sh', ['-c', '/bin/sleep 0.3; exit 0', marker]);
    await new Promise((r) => setTimeout(r, 100));
    seen = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((ev) => ev.event === 'exec' && ev.argv.includes(marker));
  }
  daemon.kill('SIGTERM');
  const { code } = await exited;
  assert.ok(seen, `no exec event on stdout; stderr: ${stderr}`);
  assert.equal(code, 0, stderr);
});

test('on a non-Linux platform the package imports; start() throws EPLATFORM', () => {
  const fake = path.join(tmp, 'fake-platform.cjs');
  fs.writeFileSync(fake, "Object.defineProperty(process, 'platform', { value: 'darwin', configurable: true });\n");
  const cjs = sh(
    process.execPath,
    [
      '-r',
      fake,
      '-e',
      `const { ProcConnector } = require('procmonitor'); const c = new ProcConnector(); try { c.start(); console.log('started'); } catch (e) { console.log(process.platform, e.code); }`,
    ],
    { cwd: app, env: noCompilerEnv() },
  );
  assert.equal(cjs.trim(), 'darwin EPLATFORM');
  const esm = sh(
    process.execPath,
    [
      '-r',
      fake,
      '--input-type=module',
      '-e',
      `import { ProcConnector } from 'procmonitor'; try { new ProcConnector().start(); console.log('started'); } catch (e) { console.log(process.platform, e.code); }`,
    ],
    { cwd: app, env: noCompilerEnv() },
  );
  assert.equal(esm.trim(), 'darwin EPLATFORM');
});

test('on a non-Linux platform npm refuses the install ("os": ["linux"]); with --force it installs and imports', () => {
  assert.ok(packed, 'npm pack failed');
  const fake = path.join(tmp, 'fake-platform-npm.cjs');
  fs.writeFileSync(fake, "Object.defineProperty(process, 'platform', { value: 'darwin', configurable: true });\n");
  const npmCli = fs.realpathSync(path.join(bin, 'npm'));
  const other = path.join(tmp, 'app-darwin');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'package.json'), JSON.stringify({ name: 'app-darwin', version: '1.0.0', private: true }));
  // npm itself believes it runs on macOS.
  const npm = (...args) =>
    spawnSync(process.execPath, ['-r', fake, npmCli, 'install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', ...args, path.join(tmp, packed.filename)], {
      cwd: other,
      env: noCompilerEnv(),
      encoding: 'utf8',
      timeout: 120000,
    });
  const refused = npm();
  assert.notEqual(refused.status, 0, refused.stdout);
  assert.match(refused.stderr, /EBADPLATFORM/);
  assert.ok(!fs.existsSync(path.join(other, 'node_modules', 'procmonitor')));
  const forced = npm('--force');
  assert.equal(forced.status, 0, forced.stderr);
  const out = sh(
    process.execPath,
    [
      '-r',
      fake,
      '-e',
      `const { ProcConnector } = require('procmonitor'); try { new ProcConnector().start(); console.log('started'); } catch (e) { console.log(process.platform, e.code); }`,
    ],
    { cwd: other, env: noCompilerEnv() },
  );
  assert.equal(out.trim(), 'darwin EPLATFORM');
});

// No non-Linux machine here to install on, so gyp is told it is generating for another OS
// (-DOS=mac, -DOS=win: the variable binding.gyp's condition reads) and the build is run.
test('binding.gyp compiles nothing off Linux: a forced or bundled install there builds no addon', { timeout: 120000 }, () => {
  const gyp = JSON.parse(fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, ''));
  const target = gyp.targets.find((t) => t.target_name === 'procmonitor');
  assert.equal(target.sources, undefined, 'sources only inside the OS condition');
  const [cond, onLinux, elsewhere] = target.conditions.find((c) => /OS/.test(c[0]));
  assert.equal(cond.replace(/\s/g, ''), "OS=='linux'");
  assert.ok(onLinux.sources.length > 0);
  assert.deepEqual(elsewhere, { type: 'none' });

  // The node-gyp of the npm that runs the tests (npm says which; else the one beside npm on
  // PATH, which need not be under this node's prefix: CI runs other Node versions' binaries).
  let nodeGyp = process.env.npm_config_node_gyp;
  if (!nodeGyp || !fs.existsSync(nodeGyp)) {
    const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    nodeGyp = path.join(path.dirname(path.dirname(npmCli)), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
  let nodedir = spawnSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8', env: cleanEnv() }).stdout.trim();
  if (!nodedir || nodedir === 'undefined' || nodedir === 'null') nodedir = '/usr';
  const dir = path.join(tmp, 'gyp-os');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(ROOT, 'binding.gyp'), path.join(dir, 'binding.gyp'));
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'native'), path.join(dir, 'native'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const gypRun = (cmd, os) => sh(process.execPath, [nodeGyp, cmd, `--nodedir=${nodedir}`, '--', `-DOS=${os}`], { cwd: dir, env: cleanEnv() });
  for (const os of ['mac', 'win']) {
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    gypRun('rebuild', os);
    const mk = fs.readFileSync(path.join(dir, 'build', 'procmonitor.target.mk'), 'utf8');
    assert.doesNotMatch(mk, /^OBJS :=|native\//m, `OS=${os}: sources in the makefile`);
    const built = fs.readdirSync(path.join(dir, 'build'), { recursive: true }).filter((f) => /\.(node|o)$/.test(f));
    assert.deepEqual(built, [], `OS=${os}: built ${built.join(', ')}`);
  }
  // The same check sees the sources when the OS is Linux (configure only: other tests compile).
  fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
  gypRun('configure', 'linux');
  const mk = fs.readFileSync(path.join(dir, 'build', 'procmonitor.target.mk'), 'utf8');
  for (const src of onLinux.sources) assert.ok(mk.includes(src.replace(/\.cc$/, '.o')), `${src} not built on Linux`);
});

test('no prebuild fits: importing still works (ENOADDON on start), and npm rebuild compiles from source', { timeout: 300000 }, () => {
  fs.rmSync(path.join(installed, 'prebuilds'), { recursive: true, force: true });
  const probe = `
    const { spawn } = require('node:child_process');
    const path = require('node:path');
    const { ProcConnector } = require('procmonitor');
    try { new ProcConnector({ events: 'exec' }).start().stop(); } catch (e) { console.log(JSON.stringify({ code: e.code })); process.exit(0); }
    console.log(JSON.stringify({ resolved: require('node-gyp-build').resolve(path.dirname(require.resolve('procmonitor/package.json'))) }));
    ${EXEC_PROBE}
  `;
  const before = JSON.parse(sh(process.execPath, ['-e', probe], { cwd: app, env: noCompilerEnv() }).trim().split('\n')[0]);
  assert.deepEqual(before, { code: 'ENOADDON' });
  // With a compiler (and Node's headers from npm's nodedir), the install script builds it.
  sh('npm', ['rebuild', 'procmonitor', '--foreground-scripts'], { cwd: app, env: cleanEnv() });
  assert.ok(fs.existsSync(path.join(installed, 'build', 'Release', 'procmonitor.node')), 'build/Release/procmonitor.node');
  const out = sh(process.execPath, ['-e', probe], { cwd: app, env: noCompilerEnv() }).trim().split('\n');
  assert.equal(JSON.parse(out[0]).resolved, path.join(installed, 'build', 'Release', 'procmonitor.node'));
  const ev = JSON.parse(out[1]);
  assert.equal(ev.pid, ev.expected);
});
