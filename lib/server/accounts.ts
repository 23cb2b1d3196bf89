import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { loadBinding } from '../native';

export type IdDb = 'passwd' | 'group';

/** A name as an id from a `name:x:id:...` file (/etc/passwd, /etc/group text); null if absent. */
function idIn(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
  }
  return null;
}

/** A numeric id given as a number or a string of digits; undefined if it is a name; throws if it is no id. */
function numericId(name: string | number, what: string): number | undefined {
  if (typeof name === 'number') {
    if (!Number.isInteger(name) || name < 0 || name > 0xfffffffe) throw new Error(`bad ${what} id ${name}`);
    return name;
  }
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    if (n > 0xfffffffe) throw new Error(`bad ${what} id ${name}`);
    return n;
  }
  return undefined;
}

/**
 * A user or group name (or number) as an id, at once (for options at start, never per
 * request): /etc/passwd or /etc/group, else `getent`. Throws `unknown user "x"`.
 */
export function lookupIdSync(db: IdDb, name: string | number, what: string): number {
  const n = numericId(name, what);
  if (n !== undefined) return n;
  const s = String(name);
  try {
    const id = idIn(fs.readFileSync(`/etc/${db}`, 'utf8'), s);
    if (id !== null) return id;
  } catch {
    /* fall through to getent */
  }
  try {
    const id = idIn(execFileSync('getent', [db, s], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }), s);
    if (id !== null) return id;
  } catch {
    /* not found */
  }
  throw new Error(`unknown ${what} "${s}"`);
}

const FOUND_MS = 5 * 60 * 1000;
const MISSING_MS = 30 * 1000;
const CACHE_MAX = 1024;
const LOOKUPS_AT_ONCE = 2;
const QUEUE_MAX = 256;
const LOOKUP_TIMEOUT_MS = 10000;

/**
 * Names to ids for requests, never on the JS thread: the addon's getpwnam_r/getgrnam_r on the
 * thread pool (NSS may be LDAP, and slow), else an asynchronous `getent`. Answers are cached
 * (found: 5 min, missing: 30 s; at most 1,024 names), the same name is looked up once however
 * many ask, and at most 2 lookups run at once (half of libuv's default pool) with 256 waiting: beyond, a request is refused
 * rather than queued without end.
 */
export class IdResolver {
  private readonly cache = new Map<string, { id: number | null; until: number }>();
  private readonly inFlight = new Map<string, Promise<number | null>>();
  private readonly queue: (() => void)[] = [];
  private running = 0;

  constructor(private readonly lookup: (db: IdDb, name: string) => Promise<number | null> = defaultLookup) {}

  /** The id of `name` (a number or digits: itself). Rejects with `unknown user "x"` and the like. */
  async resolve(db: IdDb, name: string | number, what: string): Promise<number> {
    const n = numericId(name, what);
    if (n !== undefined) return n;
    const key = `${db}:${String(name)}`;
    const hit = this.cache.get(key);
    let id: number | null;
    if (hit && hit.until > Date.now()) id = hit.id;
    else {
      let p = this.inFlight.get(key);
      if (!p) {
        p = this.limited(() => this.lookup(db, String(name)));
        this.inFlight.set(key, p);
        p.then(
          (v) => this.remember(key, v),
          () => {},
        ).finally(() => this.inFlight.delete(key));
      }
      id = await p;
    }
    if (id === null) throw new Error(`unknown ${what} "${String(name)}"`);
    return id;
  }

  private remember(key: string, id: number | null): void {
    this.cache.delete(key);
    this.cache.set(key, { id, until: Date.now() + (id === null ? MISSING_MS : FOUND_MS) });
    while (this.cache.size > CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
  }

  private limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= LOOKUPS_AT_ONCE && this.queue.length >= QUEUE_MAX) {
      return Promise.reject(new Error('too many user name lookups waiting; try again later'));
    }
    return new Promise<T>((resolve, reject) => {
      const run = () => {
        this.running++;
        fn()
          .then(resolve, reject)
          .finally(() => {
            this.running--;
            const next = this.queue.shift();
            if (next) next();
          });
      };
      if (this.running < LOOKUPS_AT_ONCE) run();
      else this.queue.push(run);
    });
  }
}

function defaultLookup(db: IdDb, name: string): Promise<number | null> {
  const b = loadBinding();
  if (!(b instanceof Error)) return b.lookupId(db, name);
  return new Promise((resolve) => {
    execFile('getent', [db, name], { encoding: 'utf8', timeout: LOOKUP_TIMEOUT_MS }, (err, out) => resolve(err ? null : idIn(out, name)));
  });
}

const SUBID_FILE_MAX = 64 * 1024;
const SUBID_RECHECK_MS = 10000;

/**
 * Subordinate uids (/etc/subuid: `user:first:count`): a user who may run processes under a
 * range of uids (rootless containers, `unshare --map-auto`) counts as itself for every
 * per-user limit, whichever of them its process runs as. The file is re-read when it changes
 * (looked at every 10 s at most), and only the first 64 KiB of it; owners are taken from
 * /etc/passwd (a name found nowhere stands for itself).
 */
export class SubordinateIds {
  private ranges: { first: number; count: number; owner: number | string }[] = [];
  private checkedAt = -Infinity;
  private mtime = -1;

  constructor(private readonly file = '/etc/subuid') {}

  /** The account `uid` counts as: its owner's uid (or name), else itself. */
  ownerOf(uid: number): number | string {
    this.refresh();
    for (const r of this.ranges) if (uid >= r.first && uid - r.first < r.count) return r.owner;
    return uid;
  }

  private refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt < SUBID_RECHECK_MS) return;
    this.checkedAt = now;
    let text = '';
    try {
      const st = fs.statSync(this.file);
      if (st.mtimeMs === this.mtime) return;
      this.mtime = st.mtimeMs;
      const fd = fs.openSync(this.file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        const buf = Buffer.alloc(Math.min(SUBID_FILE_MAX, Math.max(0, st.size)));
        text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      this.mtime = -1;
      this.ranges = [];
      return;
    }
    let passwd = '';
    try {
      passwd = fs.readFileSync('/etc/passwd', 'utf8');
    } catch {
      /* owners stand for themselves by name */
    }
    const ranges: typeof this.ranges = [];
    for (const line of text.split('\n')) {
      const f = line.trim().split(':');
      if (f.length !== 3 || !f[0] || !/^\d+$/.test(f[1] ?? '') || !/^\d+$/.test(f[2] ?? '')) continue;
      const owner = /^\d+$/.test(f[0]) ? Number(f[0]) : (idIn(passwd, f[0]) ?? f[0]);
      ranges.push({ first: Number(f[1]), count: Number(f[2]), owner });
    }
    this.ranges = ranges;
  }
}
