'use strict';
// A real headless Chromium (Debian's `chromium`), driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and 4): no WebSocket, no
// npm package.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** The browser's path, or null when none is installed. */
function chromiumPath() {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

/** Starts a browser (closed after the test); `session.send(method, params)` talks to one page of it. */
async function openPage(t, { width = 1200, height = 800 } = {}) {
  const bin = chromiumPath();
  if (!bin) throw new Error('chromium is not installed (Debian: apt-get install chromium)');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-chromium-'));
  const cp = spawn(
    bin,
    ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--remote-debugging-pipe', `--user-data-dir=${profile}`, 'about:blank'],
    // Its own process group: its helpers (zygote, renderer, GPU) go with it.
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true },
  );
  let stderr = '';
  cp.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => cp.once('exit', resolve));
  t.after(async () => {
    try {
      process.kill(-cp.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited;
    // Its helpers may still be going down: the profile is removed once nothing writes to it.
    for (let i = 0; ; i++) {
      try {
        fs.rmSync(profile, { recursive: true, force: true });
        break;
      } catch (err) {
        if (i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  const toBrowser = cp.stdio[3];
  const fromBrowser = cp.stdio[4];
  let nextId = 1;
  const waiting = new Map();
  const listeners = [];
  let buf = '';
  fromBrowser.on('data', (d) => {
    buf += d.toString('utf8');
    for (let at = buf.indexOf('\0'); at >= 0; at = buf.indexOf('\0')) {
      const msg = JSON.parse(buf.slice(0, at));
      buf = buf.slice(at + 1);
      if (msg.id && waiting.has(msg.id)) {
        const { resolve, reject, method } = waiting.get(msg.id);
        waiting.delete(msg.id);
        if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
        else resolve(msg.result);
      } else if (msg.method) for (const l of listeners) l(msg);
    }
  });
  cp.on('exit', (code) => {
    for (const { reject } of waiting.values()) reject(new Error(`chromium exited (${code}): ${stderr}`));
    waiting.clear();
  });
  const raw = (method, params = {}, sessionId) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`${method}: no answer in 20 s; chromium said: ${stderr}`));
      }, 20000);
      waiting.set(id, {
        method,
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  const { targetId } = await raw('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await raw('Target.attachToTarget', { targetId, flatten: true });
  const send = (method, params) => raw(method, params, sessionId);
  await send('Page.enable');
  await send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
  return {
    send,
    /** Evaluates `expression` in the page; its value. */
    async evaluate(expression) {
      const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
      if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    },
    /** Loads `url` and resolves once its load event has fired. */
    async load(url) {
      const loaded = new Promise((resolve) => listeners.push((m) => m.method === 'Page.loadEventFired' && resolve()));
      await send('Page.navigate', { url });
      await loaded;
    },
    /** A real mouse click at page coordinates. */
    async click(x, y) {
      for (const type of ['mouseMoved', 'mousePressed', 'mouseReleased']) await send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: 1 });
    },
    async screenshot(file) {
      const { data } = await send('Page.captureScreenshot', { format: 'png' });
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, Buffer.from(data, 'base64'));
    },
  };
}

module.exports = { chromiumPath, openPage };
