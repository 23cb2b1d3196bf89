// File descriptors of this process: the soft limit and how many are open (for refusing
// connections before accept() runs out).
import * as fs from 'node:fs';

/** The soft limit on open files of this process (/proc/self/limits), or Infinity. */
export function softFdLimit(): number {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return Infinity;
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  const n = m ? Number(m[1]) : NaN; // "unlimited" is NaN
  return Number.isSafeInteger(n) && n > 0 ? n : Infinity;
}

/** Descriptors open in this process; Infinity when not even one is free to count them; -1 without /proc. */
export function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1; // not the one reading the directory
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? Infinity : -1;
  }
}
