// The file output's rotated files (lib/outputs/file.ts): their names (PATH.<ISO time>, in the
// order they were made), their gzipping in the background (to a temporary name, then their
// own: never a cut-short .gz), and the deletion of the oldest.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';

/** A name for `file` rotated now, taken by no other: PATH.<ISO time>, or PATH.<ISO time>-NNN. */
export function rotatedName(file: string): string {
  const stamp = new Date().toISOString().replace(/:/g, '-');
  let to = `${file}.${stamp}`;
  for (let i = 1; fs.existsSync(to) || fs.existsSync(`${to}.gz`); i++) to = `${file}.${stamp}-${String(i).padStart(3, '0')}`;
  return to;
}

/** Gzips a rotated file to FILE.gz, with its mode, then removes it; says in `log` what failed. */
export async function gzipRotated(file: string, log: (line: string) => void): Promise<void> {
  const tmp = `${file}.gz.tmp`;
  try {
    const mode = fs.statSync(file).mode & 0o777;
    await pipeline(fs.createReadStream(file), zlib.createGzip(), fs.createWriteStream(tmp, { mode }));
    fs.renameSync(tmp, `${file}.gz`);
  } catch (err) {
    log(`file: cannot gzip ${file}: ${(err as Error).message}`);
    fs.rmSync(tmp, { force: true });
    return;
  }
  try {
    fs.unlinkSync(file);
  } catch (err) {
    log(`file: cannot remove ${file} (gzipped): ${(err as Error).message}`);
  }
}

/** Deletes the oldest rotated files of `file` beyond `keep`. */
export function pruneRotated(file: string, keep: number, log: (line: string) => void): void {
  const dir = path.dirname(file);
  const base = `${path.basename(file)}.`;
  try {
    const names = fs.readdirSync(dir).filter((n) => n.startsWith(base) && /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z(-\d{3,})?(\.gz)?$/.test(n.slice(base.length)));
    const runs = [...new Set(names.map((n) => n.replace(/\.gz$/, '')))].sort();
    for (const old of runs.slice(0, Math.max(0, runs.length - keep))) {
      for (const f of [old, `${old}.gz`]) fs.rmSync(path.join(dir, f), { force: true });
    }
  } catch (err) {
    log(`file: cannot remove old rotated files: ${(err as Error).message}`);
  }
}
