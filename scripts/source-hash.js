#!/usr/bin/env node
'use strict';
// The inputs the prebuilds are built from, hashed: binding.gyp, every file under native/, the
// prebuild script and the header it force-includes (scripts/prebuild.sh,
// scripts/glibcxx-compat.h), and the version of node-addon-api (whose headers are compiled in).
//   node scripts/source-hash.js --write [DIR]   record them (those of DIR, default the repo) in prebuilds/SOURCE_HASH (scripts/prebuild.sh does)
//   node scripts/source-hash.js --check   exit 1 and say which inputs differ when the prebuilds are stale
//   node scripts/source-hash.js --info    list the prebuilds: size, ELF machine, glibc symbol versions needed
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const HASH_FILE = path.join(ROOT, 'prebuilds', 'SOURCE_HASH');

// Build inputs outside native/, hashed when present (one deleted counts as removed).
const FIXED_SOURCES = ['binding.gyp', 'scripts/glibcxx-compat.h', 'scripts/prebuild.sh'];
// Not a file: node-addon-api's version, as installed (its napi.h and napi-inl.h are compiled in).
const ADDON_API = 'node-addon-api version';

function listSources(root = ROOT) {
  const out = FIXED_SOURCES.filter((rel) => fs.existsSync(path.join(root, rel)));
  const walk = (rel) => {
    for (const ent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = `${rel}/${ent.name}`;
      if (ent.isDirectory()) walk(r);
      else if (ent.isFile()) out.push(r);
    }
  };
  walk('native');
  return out.sort();
}

/** The version of node-addon-api that a build in root compiles against (throws when none is installed). */
function addonApiVersion(root = ROOT) {
  const file = path.join(root, 'node_modules', 'node-addon-api', 'package.json');
  let version;
  try {
    ({ version } = JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch (err) {
    throw new Error(`node-addon-api: cannot read ${file} (run npm ci): ${err.message}`);
  }
  if (typeof version !== 'string' || !version) throw new Error(`node-addon-api: no version in ${file}`);
  return version;
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

/** { 'native/addon.cc': 'sha256 hex', ..., 'node-addon-api version': 'sha256 of "node-addon-api@X.Y.Z"' } now. */
function computeHashes(root = ROOT) {
  const files = {};
  for (const rel of listSources(root)) files[rel] = sha256(fs.readFileSync(path.join(root, rel)));
  files[ADDON_API] = sha256(`node-addon-api@${addonApiVersion(root)}`);
  return files;
}

/** One hash over all of them (names and contents). */
function combinedHash(files) {
  const h = crypto.createHash('sha256');
  for (const rel of Object.keys(files).sort()) h.update(`${files[rel]}  ${rel}\n`);
  return h.digest('hex');
}

/** The hashes recorded in prebuilds/SOURCE_HASH, or null when there is none. */
function readRecorded(file = HASH_FILE) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const files = {};
  let combined = null;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!m) continue;
    if (m[2] === '*') combined = m[1];
    else files[m[2]] = m[1];
  }
  return { files, combined };
}

/** Differences between the recorded and the current sources: [] when the prebuilds are current. */
function compare(recorded, current) {
  const diffs = [];
  for (const rel of Object.keys(current)) {
    if (!(rel in recorded.files)) diffs.push(`${rel}: added since the prebuilds were made`);
    else if (recorded.files[rel] !== current[rel]) diffs.push(`${rel}: changed since the prebuilds were made`);
  }
  for (const rel of Object.keys(recorded.files)) {
    if (!(rel in current)) diffs.push(`${rel}: removed since the prebuilds were made`);
  }
  return diffs;
}

/** The prebuilt binaries: [{ rel, file, size }]. */
function listPrebuilds(root = ROOT) {
  const dir = path.join(root, 'prebuilds');
  const out = [];
  let tuples = [];
  try {
    tuples = fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
  } catch {
    return out;
  }
  for (const t of tuples) {
    for (const name of fs.readdirSync(path.join(dir, t.name))) {
      if (!name.endsWith('.node')) continue;
      const file = path.join(dir, t.name, name);
      out.push({ rel: `prebuilds/${t.name}/${name}`, file, size: fs.statSync(file).size });
    }
  }
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}

/** ELF facts from readelf (binutils): machine, needed libraries, version requirements. */
function elfInfo(file) {
  const text = execFileSync('readelf', ['-h', '-d', '-V', '-W', file], { encoding: 'utf8' });
  const machine = (/Machine:\s+(.+)/.exec(text) || [])[1]?.trim() ?? '?';
  const needed = [...text.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const versions = [...new Set([...text.matchAll(/Name: ((?:GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+)/g)].map((m) => m[1]))];
  const cmp = (a, b) => {
    const pa = a.split('.').map(Number);
    const pb = b.split('.').map(Number);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
    }
    return 0;
  };
  const glibc = versions
    .filter((v) => v.startsWith('GLIBC_'))
    .map((v) => v.slice(6))
    .sort(cmp);
  const stripped = !/\.symtab/.test(execFileSync('readelf', ['-S', '-W', file], { encoding: 'utf8' }));
  return { machine, needed, versions, glibcMax: glibc[glibc.length - 1] ?? null, stripped };
}

module.exports = {
  HASH_FILE,
  ADDON_API,
  listSources,
  addonApiVersion,
  computeHashes,
  combinedHash,
  readRecorded,
  compare,
  listPrebuilds,
  elfInfo,
};

if (require.main === module) {
  const arg = process.argv[2];
  if (arg === '--write') {
    // The sources may come from another folder (scripts/prebuild.sh with PREBUILD_FROM).
    const root = process.argv[3] ? path.resolve(process.argv[3]) : ROOT;
    const files = computeHashes(root);
    const lines = [
      '# sha256 of the inputs the prebuilds in this folder were built from (scripts/prebuild.sh):',
      "# native/, binding.gyp, scripts/prebuild.sh, scripts/glibcxx-compat.h and node-addon-api's",
      `# version (node-addon-api@${addonApiVersion(root)}). test/prebuild.test.js fails when any of them`,
      '# differs: run `npm run prebuilds` then.',
      ...Object.keys(files).map((rel) => `${files[rel]}  ${rel}`),
      `${combinedHash(files)}  *`,
      '',
    ];
    fs.mkdirSync(path.dirname(HASH_FILE), { recursive: true });
    fs.writeFileSync(HASH_FILE, lines.join('\n'));
    console.error(`wrote ${path.relative(ROOT, HASH_FILE)} (${Object.keys(files).length} inputs)`);
  } else if (arg === '--check') {
    const recorded = readRecorded();
    if (!recorded) {
      console.error('no prebuilds/SOURCE_HASH: run `npm run prebuilds`');
      process.exit(1);
    }
    const diffs = compare(recorded, computeHashes());
    if (diffs.length) {
      console.error(`prebuilds are stale (run \`npm run prebuilds\`; node-addon-api is now ${addonApiVersion()}):\n  ${diffs.join('\n  ')}`);
      process.exit(1);
    }
    console.error('prebuilds match their build inputs');
  } else if (arg === '--info') {
    for (const p of listPrebuilds()) {
      let facts = '';
      try {
        const e = elfInfo(p.file);
        facts = `${e.machine}; needs ${e.needed.join(', ')}; glibc >= ${e.glibcMax}; ${e.stripped ? 'stripped' : 'NOT stripped'}`;
      } catch (err) {
        facts = `(readelf: ${err.message})`;
      }
      console.log(`${p.rel}  ${p.size} bytes  ${facts}`);
    }
  } else {
    console.error('usage: node scripts/source-hash.js --write | --check | --info');
    process.exit(2);
  }
}
