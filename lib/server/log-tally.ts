/**
 * Paces log lines that a peer can cause at will (refusals, wrong passwords, failed
 * handshakes): the first few of each kind in an interval go out as they come, the rest are
 * counted and summed up in one line when the interval ends ("refused (too-many-pending):
 * 22807 more from 50 addresses in the last 10 s"). A flood costs a line per kind per
 * interval, never a line each, and the first lines still say at once what is going on.
 */
export class LogTally {
  private readonly kinds = new Map<string, { passed: number; held: number; peers: Set<string> }>();
  private timer: NodeJS.Timeout | null = null;
  private since = 0;

  /**
   * @param log where lines go
   * @param intervalMs the interval (default 10 s)
   * @param burst lines of one kind let through per interval (default 5)
   * @param maxPeers distinct peers counted per kind at most (beyond, "N+ addresses")
   */
  constructor(
    private readonly log: (line: string) => void,
    private readonly intervalMs = 10000,
    private readonly burst = 5,
    private readonly maxPeers = 10000,
  ) {}

  /** Logs `line` now, or counts it under `kind` (caused by `peer`) when the kind's burst is spent. */
  add(kind: string, line: string, peer: string): void {
    let k = this.kinds.get(kind);
    if (!k) {
      k = { passed: 0, held: 0, peers: new Set() };
      this.kinds.set(kind, k);
    }
    if (!this.timer) {
      this.since = Date.now();
      this.timer = setInterval(() => this.flush(), this.intervalMs);
      this.timer.unref();
    }
    if (k.passed < this.burst) {
      k.passed++;
      this.log(line);
      return;
    }
    k.held++;
    if (k.peers.size < this.maxPeers) k.peers.add(peer);
  }

  /** Sums up what was held back, and starts a new interval (the timer stops once one passes quietly). */
  flush(): void {
    const secs = Math.max(1, Math.round((Date.now() - this.since) / 1000));
    let quiet = true;
    for (const [kind, k] of this.kinds) {
      if (k.passed > 0) quiet = false;
      if (k.held === 0) continue;
      const peers = `${k.peers.size}${k.peers.size >= this.maxPeers ? '+' : ''} address${k.peers.size === 1 ? '' : 'es'}`;
      this.log(`${kind}: ${k.held} more from ${peers} in the last ${secs} s`);
    }
    this.kinds.clear();
    this.since = Date.now();
    if (quiet && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Sums up what is held back and stops. */
  close(): void {
    this.flush();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
