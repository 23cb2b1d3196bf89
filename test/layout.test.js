'use strict';
// The house stays readable: no source file over 500 lines, no class over 300, no import loop,
// no library module importing command-line code, and only addon.cc touching Node-API.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const ROOT = path.join(__dirname, '..');
const MAX_FILE_LINES = 500;
const MAX_CLASS_LINES = 300;

function walk(dir, exts) {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return walk(rel, exts);
    return exts.some((x) => e.name.endsWith(x)) ? [rel] : [];
  });
}

const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const lineCount = (text) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
const TS = walk('lib', ['.ts']);
const CPP = walk('native', ['.cc', '.h']);

test(`no source file in lib/ or native/ is over ${MAX_FILE_LINES} lines`, () => {
  const long = [...TS, ...CPP].map((f) => [f, lineCount(read(f))]).filter(([, n]) => n > MAX_FILE_LINES);
  assert.deepEqual(long, []);
});

test(`no TypeScript class is over ${MAX_CLASS_LINES} lines`, () => {
  const long = [];
  for (const f of TS) {
    const sf = ts.createSourceFile(f, read(f), ts.ScriptTarget.Latest, true);
    const visit = (n) => {
      if (ts.isClassDeclaration(n) || ts.isClassExpression(n)) {
        const lines = sf.getLineAndCharacterOfPosition(n.end).line - sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
        if (lines > MAX_CLASS_LINES) long.push(`${f}: class ${n.name?.text ?? '(anonymous)'}: ${lines} lines`);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  assert.deepEqual(long, []);
});

/** C++ text without comments and string or character literals (their braces do not count). */
function codeOnly(text) {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'/g, (m) => m.replace(/[^\n]/g, ' '));
}

/** The line after the block whose `{` is the first one at or after `from` (null when a `;` comes first: a declaration). */
function blockEnd(lines, from) {
  let depth = 0;
  let opened = false;
  for (let i = from; i < lines.length; i++) {
    for (const ch of lines[i]) {
      if (!opened && ch === ';') return null;
      if (ch === '{') {
        depth++;
        opened = true;
      } else if (ch === '}' && --depth === 0 && opened) return i + 1;
    }
  }
  return null;
}

/**
 * Lines of each C++ class: its definition (`class`/`struct` NAME ... { ... }) plus every member
 * defined out of line (`NAME::member(`, `NAME<T>::member(`, constructors, destructors,
 * operators, one-liners), each counted brace by brace.
 */
function cppClassLines() {
  const sizes = new Map();
  const files = CPP.map((f) => codeOnly(read(f)).split('\n'));
  for (const lines of files) {
    for (let i = 0; i < lines.length; i++) {
      const m = /^\s*(?:template\s*<[^>]*>\s*)?(?:class|struct)\s+(?:\[\[\w+\]\]\s*)?(\w+)\b(?!\s*;)/.exec(lines[i]);
      if (!m) continue;
      const end = blockEnd(lines, i);
      if (end !== null) sizes.set(m[1], (sizes.get(m[1]) ?? 0) + end - i);
    }
  }
  const member = /^(?:[\w:<>,*&\s]*?\s)?(\w+)(?:<[^>]*>)?::(~?\w+|operator\s*\S+?)\s*\(/;
  for (const lines of files) {
    for (let i = 0; i < lines.length; i++) {
      if (/^\s/.test(lines[i])) continue; // definitions start at column 0 (clang-format)
      const m = member.exec(lines[i]);
      if (!m || !sizes.has(m[1])) continue;
      const end = blockEnd(lines, i);
      if (end === null) continue;
      sizes.set(m[1], sizes.get(m[1]) + end - i);
      i = end - 1;
    }
  }
  return sizes;
}

test(`no C++ class (its definition and its members) is over ${MAX_CLASS_LINES} lines`, (t) => {
  const sizes = cppClassLines();
  t.diagnostic(
    `largest: ${[...sizes]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ')}`,
  );
  for (const known of ['Monitor', 'ProcessTable', 'ConnectorSocket']) assert.ok((sizes.get(known) ?? 0) > 50, `${known} found: ${sizes.get(known)}`);
  const long = [...sizes].filter(([, n]) => n > MAX_CLASS_LINES).map(([c, n]) => `${c}: ${n} lines`);
  assert.deepEqual(long, []);
});

/** lib/ modules each imports (relative imports, type-only ones included), as paths from lib/ without extension. */
function importGraph() {
  const graph = new Map();
  for (const f of TS) {
    const from = f.replace(/\.ts$/, '');
    const deps = [];
    for (const m of read(f).matchAll(/^(?:import|export)\b[^;]*?from\s+'(\.[^']+)'/gms)) {
      let to = path.normalize(path.join(path.dirname(from), m[1]));
      if (!TS.includes(`${to}.ts`) && TS.includes(path.join(to, 'index.ts'))) to = path.join(to, 'index');
      deps.push(to);
    }
    graph.set(from, deps);
  }
  return graph;
}

test('no import loop among the modules of lib/ (type-only imports included)', () => {
  const graph = importGraph();
  const loops = [];
  const state = new Map(); // 1: on the path, 2: done
  const visit = (m, trail) => {
    if (state.get(m) === 2) return;
    if (state.get(m) === 1) {
      loops.push([...trail.slice(trail.indexOf(m)), m].join(' → '));
      return;
    }
    state.set(m, 1);
    for (const d of graph.get(m) ?? []) visit(d, [...trail, m]);
    state.set(m, 2);
  };
  for (const m of graph.keys()) visit(m, []);
  assert.deepEqual(loops, []);
});

test('library modules never import command-line code (lib/cli/)', () => {
  const bad = [];
  for (const [m, deps] of importGraph()) {
    const cli = path.join('lib', 'cli') + path.sep;
    if (m.startsWith(cli)) continue;
    for (const d of deps) if (d.startsWith(cli)) bad.push(`${m} imports ${d}`);
  }
  assert.deepEqual(bad, []);
});

test('only the binding (native/addon.cc and the objects it assembles, addon_lines and addon_journal) touches Node-API', () => {
  const touching = CPP.filter((f) => /#include\s*[<"](napi|node_api|js_native_api)\.h[>"]|\bnapi_\w+\(/.test(read(f)));
  assert.deepEqual(
    touching.sort(),
    ['addon.cc', 'addon_journal.cc', 'addon_journal.h', 'addon_lines.cc', 'addon_lines.h'].map((f) => path.join('native', f)),
  );
});

/** The README's "How the code is laid out" section, and its bullets (each with its sub-bullets). */
function layoutSection() {
  const readme = read('README.md');
  const start = readme.indexOf('## How the code is laid out');
  assert.ok(start >= 0, 'the README has the section');
  const end = readme.indexOf('\n## ', start + 5);
  const text = readme.slice(start, end < 0 ? undefined : end);
  const bullets = text.split(/\n(?=- )/).filter((b) => b.startsWith('- '));
  return { text, bullets };
}

test("the README's layout section names every file of lib/ (in its folder's bullet) and native/, and nothing that is not there", () => {
  const { text, bullets } = layoutSection();
  const missing = [];
  for (const f of TS) {
    const parts = f.split(path.sep); // lib, [folder,] file
    if (parts.length === 2) {
      if (!text.includes(`lib/${parts[1]}`) && !text.includes(`\`${parts[1]}\``)) missing.push(f);
      continue;
    }
    const bullet = bullets.find((b) => b.startsWith(`- \`lib/${parts[1]}/\``));
    if (!bullet || !bullet.includes(parts[2])) missing.push(f);
  }
  for (const f of CPP) {
    const name = path.basename(f);
    const stem = name.replace(/\.(cc|h)$/, '');
    if (!text.includes(name) && !text.includes(`${stem}.cc`)) missing.push(f);
  }
  assert.deepEqual(missing, []);
  // Every source file it names exists.
  const names = new Set([...TS, ...CPP].map((f) => path.basename(f)));
  const named = [...text.matchAll(/\b([\w-]+\.(?:ts|cc|h))\b/g)].map((m) => m[1]);
  assert.deepEqual(
    named.filter((n) => !names.has(n)),
    [],
  );
});
