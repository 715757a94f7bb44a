/**
 * The skeleton of a background duty (the lab supervisor, the warm duty): one pass at a time —
 * callers during a pass share it — a pass at start and then every interval, and stop(), which
 * clears the timer, asks the pass in flight to end early (the pass reads `stopping` between its
 * items) and waits for it. Who runs it is leadership's business: the composition root starts and
 * stops the duty with the lease (leadership.ts).
 */
export class PeriodicPass<R> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<R> | undefined;
  private stopRequested = false;

  constructor(private readonly passOnce: () => Promise<R>) {}

  /** True from stop() until the next start(): the pass in flight should end after its current item. */
  get stopping(): boolean {
    return this.stopRequested;
  }

  /** Run one pass now, or join the one in flight. */
  run(): Promise<R> {
    this.running ??= this.passOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** A pass now and one every intervalMs (a pass still running when the next is due is joined, not doubled). */
  start(intervalMs: number): void {
    if (this.timer) clearInterval(this.timer);
    this.stopRequested = false;
    void this.run();
    this.timer = setInterval(() => void this.run(), intervalMs);
    this.timer.unref();
  }

  /** No more passes; resolves once the pass in flight (if any) has ended. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopRequested = true;
    await this.running;
  }
}
