'use strict';
// Shell completion (procMonitor completion bash|zsh) and the man pages, both made from the
// --help texts. The hazards: a completion offering an option --help does not list (or a value
// the parser refuses), a man page that says less than --help, or one that is stale.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { BIN } = require('./daemon');
const { helpOptions } = require('../dist/cli/help');
const { CHOICES } = require('../dist/cli/completion');
const { USAGE, parseArgs } = require('../dist/cli/daemon');
const { CLIENT_USAGE, parseClientArgs } = require('../dist/cli/client');
const { TRACE_USAGE, parseTraceArgs } = require('../dist/cli/trace');

const ROOT = path.join(__dirname, '..');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** What the bash completion offers for the words typed so far (the last one being completed). */
function bashComplete(words) {
  const script = spawnSync(process.execPath, [BIN, 'completion', 'bash'], { encoding: 'utf8' }).stdout;
  const fn = words[0] === 'procMonitor' ? '_pm_procMonitor' : '_pm_procMonitor_client';
  const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('bash completion: options, their values, event lists, the subcommands, procMonitor-client', () => {
  assert.deepEqual(bashComplete(['procMonitor', '--for']), ['--format']);
  assert.deepEqual(bashComplete(['procMonitor', '--format', '']), ['json', 'text']);
  assert.deepEqual(bashComplete(['procMonitor', '--schema', 'e']), ['ecs']);
  assert.deepEqual(bashComplete(['procMonitor', '-e', 'fork,e']), ['fork,exec', 'fork,exit']);
  assert.deepEqual(bashComplete(['procMonitor', '--cgroups', '']), ['yes', 'no']);
  assert.deepEqual(bashComplete(['procMonitor', '']), ['trace', 'completion']);
  assert.deepEqual(bashComplete(['procMonitor', 'completion', '']), ['bash', 'zsh']);
  assert.deepEqual(bashComplete(['procMonitor', 'trace', '--left']), ['--leftovers']);
  assert.deepEqual(bashComplete(['procMonitor', 'trace', '--leftovers', '']), ['report', 'wait', 'kill']);
  assert.deepEqual(bashComplete(['procMonitor', '--clients', '']), [], 'a number: nothing to offer');
  assert.deepEqual(bashComplete(['procMonitor-client', '--sch']), ['--schema']);
  // Every option --help lists, and nothing else.
  assert.deepEqual(
    bashComplete(['procMonitor', '--']).sort(),
    helpOptions(USAGE)
      .map((o) => `--${o.long}`)
      .sort(),
  );
  assert.deepEqual(
    bashComplete(['procMonitor-client', '--']).sort(),
    helpOptions(CLIENT_USAGE)
      .map((o) => `--${o.long}`)
      .sort(),
  );
  // A file for FILE.
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'pm-compl-'));
  fs.writeFileSync(path.join(dir, 'procmonitor.yaml'), '');
  try {
    assert.deepEqual(bashComplete(['procMonitor', '--config', `${dir}/proc`]), [`${dir}/procmonitor.yaml`]);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
  const bad = spawnSync(process.execPath, [BIN, 'completion', 'fish'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'procMonitor: completion takes bash or zsh: procMonitor completion bash|zsh\n');
});

test(
  'zsh completion: the script parses, loads under compinit and registers both commands',
  { skip: has('zsh') ? false : process.env.CI === 'true' ? false : 'zsh is not installed' },
  () => {
    const r = spawnSync(
      'zsh',
      [
        '-f',
        '-c',
        `autoload -U compinit && compinit -u -D && source <(${process.execPath} ${BIN} completion zsh) && print -r -- "$_comps[procMonitor] $_comps[procMonitor-client]"`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.trim(), '_pm_procMonitor _pm_procMonitor_client');
  },
);

test('every value the completion offers is one the parsers take', () => {
  for (const [flag, values] of Object.entries(CHOICES)) {
    for (const v of values) {
      if (flag === 'leftovers') assert.equal(parseTraceArgs([`--${flag}`, v, 'true']).leftovers, v);
      else if (helpOptions(USAGE).some((o) => o.long === flag)) {
        const extra = flag === 'syslog-facility' ? ['--syslog', '--syslog-events'] : [];
        assert.doesNotThrow(() => parseArgs(['--direct', ...extra, `--${flag}`, v], {}), `--${flag} ${v}`);
      } else assert.doesNotThrow(() => parseClientArgs([`--${flag}`, v, '--json']), `client --${flag} ${v}`);
    }
  }
});

test('the man pages: current (what --help makes now), every option in them, no groff warning', () => {
  const check = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'man.js'), '--check'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.man, ['./man/procMonitor.1', './man/procMonitor-client.1', './man/procMonitor-trace.1']);
  for (const [page, help] of [
    ['procMonitor.1', USAGE],
    ['procMonitor-client.1', CLIENT_USAGE],
    ['procMonitor-trace.1', TRACE_USAGE],
  ]) {
    const file = path.join(ROOT, 'man', page);
    const g = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', file], { encoding: 'utf8' });
    if (g.error) assert.fail(`groff: ${g.error.message}`);
    assert.equal(g.stderr, '', `${page}: groff warnings`);
    const text = spawnSync('groff', ['-man', '-Tascii', '-P-cbou', file], { encoding: 'utf8' })
      .stdout.replace(/-\n\s*/g, '-')
      .replace(/\s+/g, ' ');
    for (const o of helpOptions(help)) assert.ok(text.includes(`--${o.long}`), `${page}: --${o.long}`);
    assert.match(text, /SYNOPSIS/);
  }
});
