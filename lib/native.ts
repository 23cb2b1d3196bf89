import * as path from 'node:path';

/** What the addon exports (native/addon.cc). */
export interface NativeConnector {
  start(options: NativeStartOptions): void;
  /** The events still queued: their lines and meta, as for the callback (undefined while the environment is torn down). */
  stop(): [Buffer | undefined, Int32Array];
  ref(): void;
  unref(): void;
  stats(): ConnectorStats;
  /** The records' JSON array (wire_fields.h). */
  snapshot(): string;
  ancestry(pid: number): string | null;
  /** Test hook: the reader thread stops as if reading had failed with `why`. */
  injectFault(why?: string): void;
  /** The events queued so far go to the callback now (synchronously), not at the next wake-up. */
  flush(): void;
}

export interface NativeStartOptions {
  events: number;
  threads: boolean;
  rcvbuf: number;
  kernelFilter: boolean;
  queueMax: number;
  tableMax: number;
  ackTimeout: number;
  nice: number;
  seed: boolean;
  batchInterval: number;
  readInterval: number;
  ancestorEvents: number;
  ancestorDepth: number;
  cgroups: boolean;
  cwd: boolean;
  /** Context groups: 1 login identity, 2 tty, 4 namespaces. */
  context: number;
  env: string[];
  redactPatterns: string[];
  redactDefaults: boolean;
  /** The filter's rules, [side, key, value] flattened (lib/filter.ts). */
  filter: string[];
  redact: string[];
  /** 0 off, 1 taskstats where permitted (else /proc), 2 /proc only. */
  cost: number;
  /** Pids whose subtrees alone are followed; empty: the whole host. */
  subtree: number[];
}

/** Counters of one connector. */
export interface ConnectorStats {
  /** Proc events read from the kernel. */
  received: number;
  /** Events handed to JavaScript. */
  delivered: number;
  /** Events the kernel dropped (socket overflows, sequence gaps). */
  lostKernel: number;
  /** Events dropped because the JS thread fell too far behind. */
  lostQueue: number;
  /** Events the connector's filter kept back (option `filter`). */
  filtered: number;
  /** ENOBUFS errors (socket overflows). */
  enobufs: number;
  /** Unusable netlink messages. */
  malformed: number;
  /** Processes in the live table. */
  tableSize: number;
  /** Processes not remembered because the table was full. */
  tableFull: number;
  /** Receive buffer size granted by the kernel, bytes. */
  rcvbuf: number;
  /** SO_RCVBUFFORCE was allowed (privileged). */
  rcvbufForced: boolean;
  /** The kernel filters events for us (Linux 6.6+). */
  kernelFilter: boolean;
  /** Nice value of the reader thread in effect. */
  nice: number;
  /** Where exit costs come from (option `cost`): 'taskstats', 'proc', or 'none' when off. */
  costSource: 'taskstats' | 'proc' | 'none';
  /** Why /proc rather than taskstats (the kernel's refusal, or "asked for"); "" otherwise. */
  costReason: string;
  /** Process exits given a cost from taskstats, from /proc, and none at all (all fields missing). */
  costTaskstats: number;
  costProc: number;
  costUnknown: number;
  /** Overflows of the taskstats socket (records lost: their processes fall back to /proc). */
  costDropped: number;
}

export interface NativeBinding {
  /**
   * onBatch gets the events as NDJSON lines and, per line, [end offset, kind bit (-1: lost),
   * uid (-1: none)]; then (once) why the reader thread stopped on its own.
   */
  Connector: new (onBatch: (lines: Buffer, meta: Int32Array, fatal?: string) => void) => NativeConnector;
  parse(buf: Buffer): { events: Record<string, unknown>[]; stats: Record<string, number | boolean> };
  buildRequest(op: number, withMask: boolean, mask: number, seq: number, ack: number, portid: number): Buffer;
  /** The uid/gid of a name, from the system's account database (NSS) on the thread pool; null: no such name. */
  lookupId(db: 'passwd' | 'group', name: string): Promise<number | null>;
  /** The credentials of a connected Unix socket's peer (SO_PEERCRED); null if unknown. */
  peerCred(fd: number): { pid: number; uid: number; gid: number } | null;
  /** Why a filter rule is not valid (native/filter.h), or null. */
  filterError(side: string, key: string, value: string): string | null;
  /**
   * A stream's own filter, run on its lines (native/line_filter.h): the rules as `filterError`
   * takes them, flattened, and the pids a subtree follows from the start (none: no subtree).
   * Throws a TypeError naming a rule that is not valid.
   */
  LineFilter: new (rules: string[], followed: number[]) => NativeLineFilter;
  /** A datagram socket for journald's native protocol (native/journal_socket.h); an Error with `errno` if none can be made. */
  JournalSocket: new () => NativeJournalSocket;
}

/**
 * send(): one entry to the socket at `path`, never blocking: 0, or the errno of the failure
 * (EAGAIN: journald's queue is full). An entry too large for a datagram goes as a memfd.
 */
export interface NativeJournalSocket {
  send(path: string, entry: Buffer): number;
  close(): void;
}

/** keep(): per line of `buf` (each ending at its `ends` offset, in order, each seen once), 1 if it goes out. */
export interface NativeLineFilter {
  keep(buf: Buffer, ends: Uint32Array): Uint8Array;
}

let cached: NativeBinding | Error | undefined;

/** Loads the addon once (prebuild or local build); returns the load error instead of throwing. */
export function loadBinding(): NativeBinding | Error {
  if (cached === undefined) {
    try {
      const load = require('node-gyp-build') as (dir: string) => NativeBinding;
      cached = load(path.join(__dirname, '..'));
    } catch (err) {
      cached = err instanceof Error ? err : new Error(String(err));
    }
  }
  return cached;
}
