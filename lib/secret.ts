import * as fs from 'node:fs';

/** Largest password file read, bytes: a password is at most 256 bytes, so this is generous. */
export const MAX_SECRET_FILE_BYTES = 4096;

export interface SecretFile {
  /** The file's text, one trailing newline (`\n` or `\r\n`) removed. */
  text: string;
  /** Set when others than the owner may read the file: say so, but go on. */
  warning: string | null;
}

/**
 * Reads a secret (a password) from a file the way a secret should be read: it must be a
 * regular file (never a FIFO, a device or a directory: opened without blocking and checked
 * before anything is read) of at most MAX_SECRET_FILE_BYTES, that only its owner may write.
 * A file others may read is taken, with a warning. Throws an Error whose message is one
 * line naming `what` (e.g. "--auth-file") and the remedy.
 */
export function readSecretFile(file: string, what: string): SecretFile {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`${what} ${file} is not a regular file (${kindOf(st)}); give a file holding the password`);
    if (st.size > MAX_SECRET_FILE_BYTES) throw new Error(`${what} ${file} is ${st.size} bytes; a password file holds at most ${MAX_SECRET_FILE_BYTES}`);
    const writable = who(st.mode, 0o020, 0o002);
    if (writable) throw new Error(`${what} ${file} can be changed by ${writable} (mode ${mode(st.mode)}); refusing it: chmod go-w ${file} (0600 is usual)`);
    const buf = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_SECRET_FILE_BYTES) throw new Error(`${what} ${file} grew past ${MAX_SECRET_FILE_BYTES} bytes while it was read`);
    const readable = who(st.mode, 0o040, 0o004);
    return {
      text: buf.toString('utf8', 0, n).replace(/\r?\n$/, ''),
      warning: readable ? `warning: ${what} ${file} can be read by ${readable} (mode ${mode(st.mode)}): chmod 600 ${file}` : null,
    };
  } finally {
    fs.closeSync(fd);
  }
}

function who(m: number, group: number, others: number): string {
  return [m & group ? 'its group' : '', m & others ? 'every user' : ''].filter(Boolean).join(' and ');
}

function mode(m: number): string {
  return (m & 0o7777).toString(8).padStart(4, '0');
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
