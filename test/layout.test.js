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

/** Lines of each C++ class: its definition in a header plus its member functions defined out of line. */
function cppClassLines() {
  const sizes = new Map();
  const add = (name, n) => sizes.set(name, (sizes.get(name) ?? 0) + n);
  for (const f of CPP) {
    const lines = read(f).split('\n');
    for (let i = 0; i < lines.length; i++) {
      // A class body (clang-format: `class Name ... {` at any indent, closed by `};` at the same indent),
      // or a member defined out of line (`... Name::member(...) ... {` at column 0, closed by `}` there).
      const cls = /^(\s*)(?:class|struct)\s+(\w+)[^;]*\{\s*$/.exec(lines[i]);
      const member = /^[A-Za-z].*?\b(\w+)::~?\w+\(.*\{\s*$/.exec(lines[i]) ?? /^[A-Za-z].*?\b(\w+)::~?\w+\([^;]*$/.exec(lines[i]);
      if (cls) {
        const end = lines.findIndex((l, j) => j > i && l.startsWith(`${cls[1]}};`));
        if (end > i) add(cls[2], end - i + 1);
      } else if (member) {
        const end = lines.findIndex((l, j) => j >= i && l === '}');
        if (end >= i) {
          add(member[1], end - i + 1);
          i = end;
        }
      }
    }
  }
  return sizes;
}

test(`no C++ class (its definition and its members) is over ${MAX_CLASS_LINES} lines`, () => {
  const sizes = cppClassLines();
  assert.ok(sizes.size > 0, 'classes found');
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

test('only native/addon.cc touches Node-API', () => {
  const touching = CPP.filter((f) => /#include\s*[<"](napi|node_api|js_native_api)\.h[>"]|\bnapi_\w+\(/.test(read(f)));
  assert.deepEqual(touching, [path.join('native', 'addon.cc')]);
});
