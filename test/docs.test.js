'use strict';
// The docs drift from the code: a link to a section that was renamed, an export, a flag or a
// metric added without a word, a doc the README's map does not list. README.md points
// newcomers to docs/*.md (the reference); these tests keep every one of them true the way
// test/cli.test.js keeps docs/cli.md's copy of `procMonitor --help` true.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const DOCS = fs
  .readdirSync(path.join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .sort()
  .map((f) => `docs/${f}`);
const PAGES = ['README.md', 'BENCHMARKS.md', ...DOCS];
const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

/** The text outside fenced code blocks (``` ... ```), line by line. */
function prose(text) {
  const out = [];
  let fence = false;
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) fence = !fence;
    else if (!fence) out.push(line);
  }
  return out;
}

/** Fenced code blocks of a language: [{ lang, code, line }]. */
function codeBlocks(text) {
  const blocks = [];
  let cur = null;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*```(\w*)\s*$/.exec(line);
    if (!m) {
      if (cur) cur.code.push(line);
    } else if (cur) {
      blocks.push({ lang: cur.lang, code: cur.code.join('\n'), line: cur.line });
      cur = null;
    } else cur = { lang: m[1], code: [], line: i + 1 };
  });
  return blocks;
}

/** GitHub's anchors of a page's headings (github-slugger: lower case, punctuation dropped, spaces to -, repeats -1, -2...). */
function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const line of prose(text)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Markdown links [text](target) outside code blocks and code spans. */
function links(text) {
  const out = [];
  for (const line of prose(text)) {
    const bare = line.replace(/`[^`]*`/g, '``');
    for (const m of bare.matchAll(/\]\(([^)\s]+)\)/g)) out.push(m[1]);
  }
  return out;
}

test('every relative link in README.md, BENCHMARKS.md and docs/*.md reaches a file, and its #anchor a heading there', () => {
  let checked = 0;
  for (const page of PAGES) {
    for (const target of links(read(page))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [file, anchor] = target.split('#');
      const rel = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), file));
      assert.ok(!rel.startsWith('..'), `${page}: ${target} leaves the repository`);
      assert.ok(fs.existsSync(path.join(ROOT, rel)), `${page}: ${target}: no file ${rel}`);
      if (anchor !== undefined) {
        assert.ok(rel.endsWith('.md'), `${page}: ${target}: an anchor into a file that is not Markdown`);
        assert.ok(anchors(read(rel)).has(anchor), `${page}: ${target}: ${rel} has no heading #${anchor}`);
      }
      checked++;
    }
  }
  assert.ok(checked > 40, `only ${checked} links found: is the link parser broken?`);
});

test("the README's map of the docs lists every docs/*.md, and only those that exist", () => {
  const readme = read('README.md');
  const at = readme.indexOf('\n## Documentation\n');
  assert.ok(at >= 0, 'the README has a "Documentation" section');
  const section = readme.slice(at + 1, readme.indexOf('\n## ', at + 1));
  const listed = links(section).filter((l) => l.startsWith('docs/'));
  assert.deepEqual([...new Set(listed)].sort(), DOCS, 'the docs the map links to are the files in docs/');
  // One line each, saying what is in it.
  for (const doc of DOCS) {
    const line = section.split('\n').find((l) => l.includes(`](${doc})`));
    assert.match(line, /\|\s*\S.{20,}\|\s*$/, `${doc}: the map says what is in it`);
  }
  assert.ok(section.includes('](BENCHMARKS.md)'), 'the map lists BENCHMARKS.md');
});

test('every public export of the package is documented in docs/library.md, docs/server-and-client.md, docs/nats.md or docs/trace.md', () => {
  const api = ['docs/library.md', 'docs/server-and-client.md', 'docs/nats.md', 'docs/trace.md'].map(read).join('\n');
  const exported = Object.keys(require('../dist/index.js'));
  assert.ok(exported.length > 30, 'dist/index.js exports the API');
  const undocumented = exported.filter((name) => !new RegExp('`' + name + '\\b').test(api));
  assert.deepEqual(undocumented, [], `exports named nowhere in the API docs: ${undocumented.join(', ')}`);
  // Every reason a server turns a connection away ('reject', stats().rejected, the metric).
  const { REJECT_REASONS } = require('../dist/index.js');
  const server = read('docs/server-and-client.md');
  for (const reason of REJECT_REASONS) assert.ok(server.includes('`' + reason + '`'), `reject reason ${reason} in docs/server-and-client.md`);
});

/** The flags of a --help text: [{ long, short }]. */
function helpFlags(help) {
  const out = [];
  for (const m of help.matchAll(/^ {2}(?:-(\w), )?\s*--([a-z][a-z-]*)/gm)) out.push({ short: m[1] ?? null, long: m[2] });
  return out;
}

test('every option of procMonitor, procMonitor trace and procMonitor-client is in docs/cli.md or docs/trace.md, whose copies of --help are their output', () => {
  for (const [bin, sub, file, heading, least] of [
    ['procMonitor', [], 'docs/cli.md', '## The `procMonitor` command', 15],
    ['procMonitor-client', [], 'docs/cli.md', '## `procMonitor-client`', 15],
    ['procMonitor', ['trace'], 'docs/trace.md', '## `procMonitor trace`', 5],
  ]) {
    const doc = read(file);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', bin), ...sub, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const help = r.stdout;
    const head = heading + '\n\n```\n';
    const at = doc.indexOf(head);
    assert.ok(at >= 0, `${file} has the section ${heading}`);
    const copy = doc.slice(at + head.length, doc.indexOf('```\n', at + head.length));
    assert.equal(copy, help, `${file}'s copy of ${bin} ${sub.join(' ')} --help is its output`);
    const flags = helpFlags(help);
    assert.ok(flags.length > least, `${bin} ${sub.join(' ')} --help: the flags are found`);
    for (const { long, short } of flags) {
      assert.ok(doc.includes(`--${long}`), `${bin} --${long} in ${file}`);
      if (short) assert.ok(doc.includes(`-${short}, --${long}`), `${bin} -${short} in ${file}`);
    }
  }
  const doc = read('docs/cli.md');
  // Every flag the daemon's parser knows (cli.test.js checks --help lists them all).
  const { DAEMON_FLAGS } = require('../dist/cli/daemon');
  for (const flag of [...DAEMON_FLAGS.string, ...DAEMON_FLAGS.boolean]) assert.ok(doc.includes(`--${flag}`), `--${flag} in docs/cli.md`);
});

test('every metric the daemon serves is in the table of docs/cli.md', () => {
  const source = fs
    .readdirSync(path.join(ROOT, 'dist'), { recursive: true })
    .filter((f) => f.endsWith('.js'))
    .map((f) => fs.readFileSync(path.join(ROOT, 'dist', f), 'utf8'))
    .join('\n');
  const names = [...new Set([...source.matchAll(/['"`](procmonitor_[a-z_]+)['"`]/g)].map((m) => m[1]))];
  assert.ok(names.length > 20, `metric names found in dist/: ${names.length}`);
  const doc = read('docs/cli.md');
  const at = doc.indexOf('### Metrics (`--metrics`)');
  const table = doc.slice(at, doc.indexOf('\n### ', at + 1));
  const missing = names.filter((n) => !new RegExp('`' + n + '(\\{[a-z]+\\})?`').test(table));
  assert.deepEqual(missing, [], `metrics not in docs/cli.md's table: ${missing.join(', ')}`);
});

test('the JavaScript in README.md and docs/*.md compiles, and takes from procmonitor only what it exports', () => {
  const exported = new Set(Object.keys(require('../dist/index.js')));
  let blocks = 0;
  for (const page of ['README.md', ...DOCS]) {
    for (const { lang, code, line } of codeBlocks(read(page))) {
      if (lang !== 'js') continue;
      blocks++;
      // The examples use top-level await: compile them as an async function's body.
      assert.doesNotThrow(() => new vm.Script(`(async () => {\n${code}\n})`), `${page}:${line}: the example does not compile`);
      for (const m of code.matchAll(/const \{([^}]*)\} = require\('procmonitor'\)/g)) {
        for (const name of m[1]
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)) {
          assert.ok(exported.has(name), `${page}:${line}: ${name} is not exported by procmonitor`);
        }
      }
    }
  }
  assert.ok(blocks >= 5, `JavaScript examples found: ${blocks}`);
});

test('docs/deployment.md names the toolchain and flags scripts/prebuild.sh uses', () => {
  const doc = read('docs/deployment.md');
  const script = read('scripts/prebuild.sh');
  for (const s of ['--napi --strip --tag-libc', 'g++-aarch64-linux-gnu']) {
    assert.ok(script.includes(s), `scripts/prebuild.sh uses ${s}`);
    assert.ok(doc.includes(s), `docs/deployment.md names ${s}`);
  }
  for (const arch of ['x64', 'arm64']) assert.ok(doc.includes(`prebuilds/linux-${arch}/procmonitor.glibc.node`), `docs/deployment.md lists the ${arch} prebuild`);
});
