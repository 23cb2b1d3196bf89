#!/usr/bin/env node
'use strict';
/*
 * What a stream's own filter costs per line (a client's request line, connector.events({filter})):
 * the addon's LineFilter (native/line_filter.h: the reader's EventFilter on what each line says)
 * over real lines, against the least a filter written in JavaScript would pay (JSON.parse of
 * each line, then a test of its fields), side by side: the ways take turns, round after round,
 * and each round's figures are divided by that round's JSON.parse (the machine is shared and
 * noisy). Also what the fields every event now carries (exe on fork and exit, cwd on fork) add
 * to the lines, in bytes.
 *
 *   node bench/filter.js [ROUNDS] [N]      (as root; default 7 rounds over the lines of N=3000 children)
 */
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { ProcConnector } = require('..');
const { loadBinding } = require('../dist/native');
const { compileFilter } = require('../dist/filter');

const rounds = Number(process.argv[2] || 7);
const n = Number(process.argv[3] || 3000);
const binding = loadBinding();
if (binding instanceof Error) throw binding;

// Each case: the filter, and the same test in JavaScript on a parsed event.
const CASES = {
  'argv glob': [{ match: { argv: '*pmfilter-mark*' } }, (e) => typeof e.cmdline === 'string' && /pmfilter-mark/.test(e.cmdline)],
  'exe + failed, exclude root': [
    { match: { exe: '/usr/bin/*', failed: true }, exclude: { user: 'root' } },
    (e) => e.event === 'exit' && e.exit_code !== 0 && (e.exe ?? '').startsWith('/usr/bin/') && e.user !== 'root',
  ],
  'subtree (this process)': [{ match: { subtree: process.pid } }, null],
};

/** The lines of a storm of n children of one shell, as the reader wrote them. */
async function capture() {
  const c = new ProcConnector({ events: 'fork,exec,exit' }).start();
  const parts = [];
  c.on('lines', (lb) => parts.push(Buffer.from(lb.buf)));
  execFileSync('sh', ['-c', `i=0; while [ $i -lt ${n} ]; do /bin/true pmfilter-mark; i=$((i+1)); done`]);
  await new Promise((r) => setTimeout(r, 500));
  c.stop();
  const buf = Buffer.concat(parts);
  const ends = [];
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) ends.push(i + 1);
  return { buf, ends: Uint32Array.from(ends) };
}

function nsNow() {
  return process.hrtime.bigint();
}

function byNative(filter, lines) {
  const f = compileFilter(filter);
  const lf = new binding.LineFilter(f.rules, f.subtree.length ? [...f.subtree] : []);
  const t0 = nsNow();
  const keep = lf.keep(lines.buf, lines.ends);
  const ns = Number(nsNow() - t0);
  return { ns, kept: keep.reduce((a, b) => a + b, 0) };
}

function byJs(test, lines) {
  const t0 = nsNow();
  let kept = 0;
  let start = 0;
  for (const end of lines.ends) {
    const e = JSON.parse(lines.buf.toString('utf8', start, end));
    if (test === null || test(e)) kept++;
    start = end;
  }
  return { ns: Number(nsNow() - t0), kept };
}

/** Bytes of the fields added to fork and exit lines (exe; cwd on forks), and of all lines. */
function added(lines) {
  let extra = 0;
  let start = 0;
  for (const end of lines.ends) {
    const text = lines.buf.toString('utf8', start, end);
    start = end;
    if (!/^\{"event":"(fork|exit)"/.test(text)) continue;
    const e = JSON.parse(text);
    extra += Buffer.byteLength(`,"exe":${JSON.stringify(e.exe)}`);
    if (e.event === 'fork' && e.cwd !== undefined) extra += Buffer.byteLength(`,"cwd":${JSON.stringify(e.cwd)}`);
  }
  return extra;
}

(async () => {
  const lines = await capture();
  const count = lines.ends.length;
  const table = {};
  for (const [name] of Object.entries(CASES)) table[name] = { native: [], js: [], ratio: [], kept: null };
  for (let r = 0; r < rounds; r++) {
    for (const [name, [filter, test]] of Object.entries(CASES)) {
      const a = byNative(filter, lines);
      const b = byJs(test, lines);
      const row = table[name];
      row.native.push(a.ns / count);
      row.js.push(b.ns / count);
      row.ratio.push(a.ns / b.ns);
      row.kept = a.kept;
      if (test !== null && a.kept !== b.kept) throw new Error(`${name}: the addon kept ${a.kept}, JavaScript ${b.kept}`);
    }
  }
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const out = { lines: count, bytes: lines.buf.length, addedBytes: added(lines), rounds, cases: {} };
  console.log(`${count} lines (${(lines.buf.length / count).toFixed(0)} bytes each on average), ${rounds} rounds; medians:`);
  console.log('| filter | kept | LineFilter ns/line | JSON.parse + test ns/line | ratio |');
  console.log('|:--|--:|--:|--:|--:|');
  for (const [name, row] of Object.entries(table)) {
    const o = { kept: row.kept, nativeNsPerLine: median(row.native), jsNsPerLine: median(row.js), ratio: median(row.ratio) };
    out.cases[name] = o;
    console.log(`| ${name} | ${o.kept} | ${o.nativeNsPerLine.toFixed(0)} | ${o.jsNsPerLine.toFixed(0)} | ${o.ratio.toFixed(2)} |`);
  }
  console.log(
    `fields added to fork and exit lines (exe; cwd on forks): ${out.addedBytes} bytes over ${lines.buf.length} (${((100 * out.addedBytes) / lines.buf.length).toFixed(1)}%)`,
  );
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'filter.json'), `${JSON.stringify(out, null, 2)}\n`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
