// Stalled clients: a client whose waiting bytes made no progress for the stall timeout is
// closed. Looked at a few times per timeout (at most every second), so it is closed between
// the timeout and the timeout + 1 s after its last progress.
import type { Conn } from './conn';

export class StallWatch {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly timeoutMs: number,
    private readonly clients: () => Iterable<Conn>,
    private readonly stalled: (conn: Conn, queued: number, ms: number) => void,
  ) {}

  /** Starts looking (a timeout of 0: never). */
  start(): void {
    if (this.timeoutMs <= 0 || this.timer) return;
    const every = Math.max(10, Math.min(1000, Math.floor(this.timeoutMs / 4)));
    this.timer = setInterval(() => this.check(Date.now()), every);
    this.timer.unref();
  }

  /**
   * Progress is bytes accepted by the kernel: a write completing (bytesWritten less what is
   * still queued grows) or the kernel-side write queue of a write in progress shrinking. A
   * client fed from the ring ('catch-up') always has bytes waiting while it is behind, so
   * the same look covers it; one with nothing waiting is idle, not stalled.
   */
  check(now: number): void {
    for (const conn of this.clients()) {
      const sock = conn.sock;
      if (sock.destroyed) continue;
      const queued = sock.writableLength;
      const handle = (sock as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
      const inWrite = typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0;
      const done = sock.bytesWritten - queued;
      const progressed = done > conn.doneMark || inWrite < conn.queueMark;
      conn.doneMark = done;
      conn.queueMark = inWrite;
      if (queued === 0) {
        conn.stallSince = 0;
      } else if (progressed || conn.stallSince === 0) {
        conn.stallSince = now;
      } else if (now - conn.stallSince >= this.timeoutMs) {
        this.stalled(conn, queued, now - conn.stallSince);
      }
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
