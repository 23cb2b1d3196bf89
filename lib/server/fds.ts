// File descriptors of this process: the soft limit and how many are open (for refusing
// connections before accept() runs out).
import * as fs from 'node:fs';
import { FD_RESERVE } from './types';

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

/**
 * Refuses connections before accept() runs out of descriptors: a new connection must leave
 * FD_RESERVE free under the soft limit. Costs a comparison until the connections alone come
 * near the limit; then /proc/self/fd is counted, at most every 50 ms (in between: the
 * descriptors that are not connections as of that count, plus the connections now).
 */
export class FdGuard {
  /** The soft RLIMIT_NOFILE as of start() (Infinity: unknown, unlimited). */
  private limit = Infinity;
  /** Below this many connections, the limit is too far away to count. */
  private countFrom = Infinity;
  /** Descriptors that are not connections, as of the last count of /proc/self/fd. */
  private others = 0;
  private countedAt = 0;
  /** Refusing for want of descriptors since the last check (for one log line per episode). */
  private isShort = false;

  constructor(private readonly log: (line: string) => void) {}

  /**
   * Learns the soft limit (Node raised it to the hard limit at its start: read it now, not
   * before) and the descriptors already open. Without /proc the check is off.
   */
  start(conns: number): void {
    const limit = softFdLimit();
    const open = openFds();
    if (limit === Infinity || open < 0) return;
    this.limit = limit;
    this.others = Math.max(0, open - conns);
    this.countedAt = Date.now();
    // Other descriptors may come and go between counts (the connector's reads of /proc,
    // sockets of --metrics, --syslog, --nats): start counting well before the reserve.
    const slack = Math.max(64, limit >> 4);
    this.countFrom = Math.max(0, limit - FD_RESERVE - slack - this.others);
  }

  /** True when one more connection than `conns` would leave fewer than FD_RESERVE free; `refused` (so far) is for the log. */
  short(conns: number, refused: () => number): boolean {
    let used = 0;
    let short = false;
    if (conns >= this.countFrom) {
      const now = Date.now();
      if (now - this.countedAt >= 50) {
        const open = openFds();
        if (open === Infinity) {
          this.others = this.limit; // not even one descriptor to read the directory with
        } else if (open >= 0) {
          this.others = Math.max(0, open - conns);
          this.countedAt = now;
        }
      }
      used = Math.min(this.others + conns, this.limit);
      short = this.limit - used < FD_RESERVE;
    }
    if (short !== this.isShort) {
      this.isShort = short;
      if (short) this.log(`${used} of ${this.limit} file descriptors open (soft limit): refusing new connections while fewer than ${FD_RESERVE} are free`);
      else this.log(`file descriptors free again (${refused()} connections refused for want of them so far): accepting connections`);
    }
    return short;
  }
}
