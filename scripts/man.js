'use strict';
// Writes the man pages (man/*.1) from the commands' --help texts (lib/cli/man.ts), or with
// --check says whether the committed ones are what the help texts make now (the tests run it).
const fs = require('node:fs');
const path = require('node:path');
const { manPage } = require('../dist/cli/man');
const { USAGE } = require('../dist/cli/daemon');
const { CLIENT_USAGE } = require('../dist/cli/client');
const { TRACE_USAGE } = require('../dist/cli/trace');

const root = path.join(__dirname, '..');
const { version } = require('../package.json');
const PAGES = [
  { file: 'procMonitor.1', name: 'procMonitor', summary: 'serve Linux process events (fork, exec, exit, ...) from the proc connector', help: USAGE },
  { file: 'procMonitor-client.1', name: 'procMonitor-client', summary: 'print the events of a procMonitor server', help: CLIENT_USAGE },
  { file: 'procMonitor-trace.1', name: 'procMonitor trace', summary: 'run a command and report every process it ran', help: TRACE_USAGE },
];

const check = process.argv.includes('--check');
let stale = 0;
for (const p of PAGES) {
  const text = manPage({ name: p.name, summary: p.summary, help: p.help, version });
  const file = path.join(root, 'man', p.file);
  if (check) {
    const have = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (have !== text) {
      process.stderr.write(`man/${p.file} is not what --help makes now: run npm run man\n`);
      stale++;
    }
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
}
process.exit(stale > 0 ? 1 : 0);
