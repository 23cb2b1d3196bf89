'use strict';
// The trace's reports a person opens: the HTML report in a real headless Chromium (every
// process drawn, a click shows its argv, nothing fetched from the network; a screenshot kept
// in build/test-artifacts/), and the Chrome trace-event file (the shape Perfetto reads).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { chromeTrace, htmlReport, trace } = require('..');
const { tmpDir } = require('./server-helpers');
const { chromiumPath, openPage } = require('./chromium');

const BIN = path.join(__dirname, '..', 'bin', 'procMonitor');
const ARTIFACTS = path.join(__dirname, '..', 'build', 'test-artifacts');
// An argument that would be markup if the page ever put data into HTML.
const EVIL = '<img src=x onerror="document.body.dataset.pwned=1">';
const JOB = `sh -c "sleep 0.05" pm-first; sh -c "sleep 0.05; exit 3" '${EVIL}'; sleep 0.05`;

let jobSummary;
async function summary() {
  jobSummary ??= await trace('/bin/sh', ['-c', JOB, 'pm-report'], { stdio: 'ignore' }).done;
  return jobSummary;
}

function flat(node, out = []) {
  out.push(node);
  for (const c of node.children) flat(c, out);
  return out;
}

test('--chrome-trace: a lane per process in tree order, a slice per program with its argv and status', async (t) => {
  const dir = tmpDir(t, 'pm-chrome-');
  const file = path.join(dir, 'c.json');
  const r = spawnSync(process.execPath, [BIN, 'trace', '-q', '--chrome-trace', file, '--', 'sh', '-c', 'sh -c "sleep 0.05; exit 2"; sleep 0.05'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ct = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(ct.displayTimeUnit, 'ms');
  const lanes = ct.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args.name.trim());
  assert.equal(lanes.length, 4, JSON.stringify(lanes));
  assert.match(lanes[0], /^\d+ sh$/);
  const slices = ct.traceEvents.filter((e) => e.ph === 'X');
  for (const e of slices) {
    assert.ok(Number.isInteger(e.ts) && e.ts >= 0 && Number.isInteger(e.dur) && e.dur >= 1, JSON.stringify(e));
    assert.equal(e.pid, 1);
  }
  const failed = slices.find((e) => e.args.code === 2);
  assert.deepEqual(failed.args.argv, ['sh', '-c', 'sleep 0.05; exit 2']);
  assert.equal(failed.args.status, 'exit 2');
  assert.ok(ct.traceEvents.some((e) => e.ph === 'i' && e.tid === failed.tid && e.name === 'failed: exit 2'));
  // The same from the library, from the same kind of summary.
  const s = await summary();
  const lib = chromeTrace(s);
  assert.equal(lib.traceEvents.filter((e) => e.name === 'thread_name').length, s.processes);
});

test('--html in a real headless Chromium: every process drawn, a click shows its argv, no markup from argv, no network; a screenshot kept', async (t) => {
  if (!chromiumPath()) {
    assert.ok(!process.env.CI, 'CI installs chromium (.ci/run)');
    return t.skip('chromium is not installed (apt-get install chromium): the HTML report cannot be rendered here');
  }
  const s = await summary();
  const dir = tmpDir(t, 'pm-html-');
  const file = path.join(dir, 'report.html');
  fs.writeFileSync(file, htmlReport(s));
  const html = fs.readFileSync(file, 'utf8');
  assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'nothing loaded from elsewhere');
  const page = await openPage(t);
  await page.load(`file://${file}`);
  await page.evaluate('new Promise((r) => (function wait() { document.body.dataset.ready ? r() : setTimeout(wait, 20); })())');
  assert.equal(await page.evaluate('document.body.dataset.ready'), String(s.processes));
  assert.equal(await page.evaluate("document.querySelectorAll('#timeline .bar').length"), s.processes, 'a bar per process');
  // Bars wide enough are labelled with their program's name (shortened to fit, never past the bar).
  const labels = await page.evaluate(`[...document.querySelectorAll('#timeline .lbl')].map((l) => {
    const t = l.getBBox(), mid = t.y + t.height / 2;
    const inBar = [...document.querySelectorAll('#timeline .bar')].some((b) => { const r = b.getBBox(); return t.x >= r.x && t.x + t.width <= r.x + r.width + 0.5 && mid >= r.y && mid <= r.y + r.height; });
    return { text: l.textContent, inBar };
  })`);
  assert.ok(
    labels.some((l) => l.text === 'sh'),
    `the command's bar is labelled: ${JSON.stringify(labels)}`,
  );
  for (const l of labels) {
    assert.match(l.text, /^(sh|sleep|s\S*…)$/, JSON.stringify(labels));
    assert.ok(l.inBar, `within its bar: ${JSON.stringify(l)}`);
  }
  assert.equal(await page.evaluate("document.querySelectorAll('#tree .row').length"), s.processes, 'a row per process');
  assert.equal(await page.evaluate('document.body.dataset.pwned ?? null'), null, 'argv is text, never markup');
  // Click the bar of the process that failed (exit 3): its details show its argv, one item per argument.
  const target = flat(s.tree).find((n) => n.code === 3);
  assert.ok(target, 'the failed process is in the summary');
  const box = await page.evaluate(
    `(() => { const b = [...document.querySelectorAll('#timeline .bar')].find((e) => e.dataset.index === String(${flat(s.tree).indexOf(target)})); const r = b.getBoundingClientRect(); return { x: r.left + Math.min(r.width / 2, 5), y: r.top + r.height / 2, cls: b.getAttribute('class') }; })()`,
  );
  assert.match(box.cls, /failed/);
  await page.click(box.x, box.y);
  const argv = await page.evaluate("[...document.querySelectorAll('#details .argv li')].map((li) => li.textContent)");
  assert.deepEqual(argv, target.argv);
  assert.ok(argv.includes(EVIL));
  assert.match(await page.evaluate("document.getElementById('details').textContent"), /exit 3 after/);
  // Search narrows the tree: by pid, or by a piece of argv (the root's argv holds the whole script).
  const search = (q) =>
    page.evaluate(
      `(() => { const s = document.getElementById('search'); s.value = ${JSON.stringify(q)}; s.dispatchEvent(new Event('input')); return document.querySelectorAll('#tree .row').length; })()`,
    );
  assert.equal(await search(String(target.pid)), 1);
  assert.equal(await search('pm-first'), 2);
  assert.equal(await search(''), s.processes);
  const shot = path.join(ARTIFACTS, 'trace-report.png');
  await page.screenshot(shot);
  assert.ok(fs.statSync(shot).size > 5000);
  t.diagnostic(`screenshot: ${path.relative(path.join(__dirname, '..'), shot)}`);
});
