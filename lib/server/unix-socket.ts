// The Unix socket file: what is at its path (nothing, a stale socket, a live one), a lock so
// that two starters never both replace a stale one, and listening/closing as promises.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { BroadcastServerError } from './types';

/** What is at a would-be socket path: nothing, a stale socket, or a live one (throws for the rest). */
export function probeSocketPath(p: string): Promise<'none' | 'stale'> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve('none');
    return Promise.reject(new BroadcastServerError('EACCES', `cannot inspect ${p}: ${(err as Error).message}`, { cause: err }));
  }
  if (!st.isSocket()) {
    return Promise.reject(new BroadcastServerError('EEXIST', `${p} exists and is not a socket; not removing it (choose another path or remove it yourself)`));
  }
  return new Promise((resolve, reject) => {
    const s = net.createConnection(p);
    s.once('connect', () => {
      s.destroy();
      reject(new BroadcastServerError('EADDRINUSE', `another process is listening on ${p} (is another procMonitor running?)`));
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === 'ECONNREFUSED') resolve('stale');
      else if (err.code === 'ENOENT') resolve('none');
      else reject(new BroadcastServerError(err.code ?? 'EIO', `cannot tell whether ${p} is in use: ${err.message}`, { cause: err }));
    });
  });
}

/** A lock older than this counts as abandoned (its holder died while it held it). */
export const PATH_LOCK_STALE_MS = 10000;
/** A lock whose process is gone counts as abandoned once it is this old. */
export const PATH_LOCK_DEAD_MS = 1000;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Whether the lock file at `lock` (stats `st`) was left by a process that died holding it.
 * A file that is not one of ours (its content is not a pid line) never is: it is not removed.
 */
export function lockAbandoned(lock: string, st: fs.Stats): boolean {
  let text: string;
  try {
    text = fs.readFileSync(lock, 'utf8');
  } catch {
    return false; // gone or unreadable: look again
  }
  const m = /^(\d+)\n$/.exec(text);
  if (!m) return false;
  const age = Date.now() - st.mtimeMs;
  if (age > PATH_LOCK_STALE_MS) return true;
  if (age < PATH_LOCK_DEAD_MS) return false;
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Runs `fn` holding `<target>.lock`, which serialises the removal of a stale socket at
 * `target` among concurrent starters (of any process). The lock file is made complete under
 * a private name, then link()ed into place: link() fails if the lock exists, so exactly one
 * starter holds it. A lock left by a process that died holding it (a window of a few
 * milliseconds) is broken after a second. Held only while it decides, never for the server's
 * life: the live socket itself is what keeps a second instance out.
 */
export async function withPathLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${target}.lock`;
  const mine = path.join(path.dirname(target), `.${path.basename(target)}.lock-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const fail = (err: unknown, what: string) =>
    new BroadcastServerError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot ${what} ${lock}: ${(err as Error).message}`, { cause: err });
  try {
    fs.writeFileSync(mine, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    throw fail(err, 'create a file next to');
  }
  let held: fs.Stats;
  try {
    const deadline = Date.now() + PATH_LOCK_STALE_MS + 5000;
    for (;;) {
      try {
        fs.linkSync(mine, lock);
        held = fs.lstatSync(lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(err, 'create');
      }
      let st: fs.Stats | null = null;
      try {
        st = fs.lstatSync(lock);
      } catch {
        continue; // released meanwhile
      }
      if (st.isFile() && lockAbandoned(lock, st)) {
        try {
          const again = fs.lstatSync(lock);
          if (again.ino === st.ino && again.dev === st.dev) fs.unlinkSync(lock);
        } catch {
          /* gone already */
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new BroadcastServerError('EBUSY', `${lock} is held by another starter, or is not a lock of procmonitor's; if no procMonitor is starting, remove it`);
      }
      await sleep(10);
    }
  } finally {
    try {
      fs.unlinkSync(mine); // the lock, if taken, is the other name of this file
    } catch {
      /* ignore */
    }
  }
  try {
    return await fn();
  } finally {
    try {
      const st = fs.lstatSync(lock);
      if (st.ino === held.ino && st.dev === held.dev) fs.unlinkSync(lock);
    } catch {
      /* ignore */
    }
  }
}

/**
 * Removes the socket at `p` if it is stale, deciding under the path lock: a concurrent
 * starter that removed it first and put its own socket in place is seen (the file is
 * another, or it answers) and left alone. Rejects with EADDRINUSE when a live socket is there.
 */
export function removeStaleSocket(p: string): Promise<void> {
  return withPathLock(p, async () => {
    let before: fs.Stats;
    try {
      before = fs.lstatSync(p);
    } catch {
      return; // gone: the caller tries again
    }
    if (!before.isSocket()) return; // the caller's next look reports it
    if ((await probeSocketPath(p)) !== 'stale') return;
    // Nothing else removes a socket from the path while we hold the lock, and link() cannot
    // put one there while this one is there: the file checked is the file removed.
    try {
      const st = fs.lstatSync(p);
      if (st.ino === before.ino && st.dev === before.dev) fs.unlinkSync(p);
    } catch {
      /* gone already */
    }
  });
}

export function listenOn(server: net.Server, opts: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts);
  });
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
