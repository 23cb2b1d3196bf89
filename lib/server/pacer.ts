// Pacing in its own piece: items that each need a step at most every `everyMs`, served by one
// interval timer that runs only while any of them has work left.

export class Pacer<T> {
  private readonly items = new Set<T>();
  private timer: NodeJS.Timeout | null = null;

  /** `step(item, now)` does the item's due work (now: performance.now()) and says whether it has more. */
  constructor(
    private readonly everyMs: number,
    private readonly step: (item: T, now: number) => boolean,
  ) {}

  /** Steps `item` now; while it has more work, it is stepped again on each tick. */
  kick(item: T): void {
    if (this.step(item, performance.now())) this.items.add(item);
    else this.items.delete(item);
    if (this.items.size > 0 && !this.timer) {
      this.timer = setInterval(() => this.tick(), this.everyMs);
      this.timer.unref();
    }
  }

  /** Items with work left. */
  get size(): number {
    return this.items.size;
  }

  /** Whether the timer runs. */
  get running(): boolean {
    return this.timer !== null;
  }

  private tick(): void {
    const now = performance.now();
    for (const item of this.items) if (!this.step(item, now)) this.items.delete(item);
    if (this.items.size === 0) this.close();
  }

  /** Forgets every item and stops the timer. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.items.clear();
  }
}
