/**
 * First come, first served waiting for backend capacity. A lab that does not fit waits here (its
 * page shows the queue position) instead of failing or half-starting; it is woken when another lab
 * releases capacity, and at least every retryMs in case capacity came back another way.
 */
export class CapacityQueue {
  private readonly order: string[] = [];
  private readonly waiters = new Map<string, () => void>();
  private closed = false;

  constructor(private readonly retryMs: number) {}

  /** Adds the instance (once) and returns its 1-based position. */
  enqueue(instanceId: string): number {
    if (!this.order.includes(instanceId)) this.order.push(instanceId);
    return this.order.indexOf(instanceId) + 1;
  }

  position(instanceId: string): number | undefined {
    const i = this.order.indexOf(instanceId);
    return i < 0 ? undefined : i + 1;
  }

  remove(instanceId: string): void {
    const i = this.order.indexOf(instanceId);
    if (i >= 0) this.order.splice(i, 1);
    this.waiters.get(instanceId)?.();
  }

  get length(): number {
    return this.order.length;
  }

  /** Resolves when capacity may be free (release(), the retry timer, abort or close). Only the head is woken by release(). */
  wait(instanceId: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(instanceId);
        resolve();
      };
      const timer = setTimeout(done, this.retryMs);
      timer.unref();
      signal.addEventListener('abort', done);
      this.waiters.set(instanceId, done);
      if (this.closed) done();
    });
  }

  /** Capacity was released: wake the first waiter. */
  release(): void {
    const head = this.order[0];
    if (head) this.waiters.get(head)?.();
  }

  close(): void {
    this.closed = true;
    for (const w of [...this.waiters.values()]) w();
  }
}
