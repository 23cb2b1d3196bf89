/**
 * How the daemon stops: SIGINT and SIGTERM (or the reader failing) stop it once, within
 * SHUTDOWN_MS in all; SIGHUP never kills it (it reopens the --output file, if any). Holds
 * when the stop began and the exit status.
 */

/**
 * After SIGINT/SIGTERM the whole shutdown (clients, socket file, metrics, NATS, and syslog's
 * last flush) takes at most this long: the process exits well within a second.
 */
export const SHUTDOWN_MS = 800;
/** The end of SHUTDOWN_MS that is syslog's, after everything else has closed and logged. */
const SYSLOG_CLOSE_MS = 200;

export class Shutdown {
  /** When the first SIGINT/SIGTERM came (Date.now()), or null. */
  private since: number | null = null;
  /** The exit status once stopped: 0, or 1 after a runtime failure. */
  status = 0;
  private stopper: (() => void) | null = null;

  constructor(private readonly log: (line: string) => void) {}

  /**
   * Handles the signals from now on: one that arrives while starting up stops the daemon as
   * soon as it is up.
   */
  listen(): void {
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGHUP', () => (this.onHangup ? this.onHangup() : this.log('SIGHUP ignored (SIGINT or SIGTERM stop the daemon)')));
  }

  /** What SIGHUP does (reopen the --output file, as logrotate expects); otherwise it is ignored. */
  onHangup: (() => void) | null = null;

  /** Stops the daemon (the first time), saying why. */
  stop(why: string): void {
    if (this.since !== null) return;
    this.since = Date.now();
    this.log(`${why}: stopping`);
    this.stopper?.();
  }

  /**
   * Resolves with the exit status once stopped: `close` closes everything, given what is left
   * of SHUTDOWN_MS (without syslog's end of it, when `syslog`).
   */
  stopped(close: () => Promise<unknown>, syslog: boolean): Promise<number> {
    return new Promise<number>((resolve) => {
      this.stopper = () => {
        // Never hang on shutdown: whatever is still open by then is abandoned (the process exits).
        // Syslog's last flush comes after, within SHUTDOWN_MS too. (A signal that came while
        // starting up still leaves the clients' grace to close cleanly.)
        const budget = SHUTDOWN_MS - (syslog ? SYSLOG_CLOSE_MS : 50);
        const left = Math.max(300, (this.since ?? Date.now()) + budget - Date.now());
        setTimeout(() => resolve(this.status), left).unref();
        void close().then(
          () => resolve(this.status),
          () => resolve(this.status),
        );
      };
      if (this.since !== null) this.stopper();
    });
  }

  /** How long syslog's last flush may take: after a signal, what is left of SHUTDOWN_MS. */
  syslogGrace(): number {
    return this.since === null ? 250 : Math.max(20, this.since + SHUTDOWN_MS - Date.now());
  }
}
