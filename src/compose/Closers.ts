/** What start-up opened, closed in reverse order on shutdown (or when start-up fails half-way). */
import type { Logger } from '../logger.js';

export class Closers {
  private readonly list: Array<{ name: string; close: () => Promise<void> | void }> = [];
  constructor(private readonly log: Logger) {}

  add(name: string, close: () => Promise<void> | void): void {
    this.list.push({ name, close });
  }

  /** Close everything once, newest first; a failing closer is logged and the rest still run. */
  async closeAll(): Promise<void> {
    for (const c of this.list.splice(0).reverse()) {
      try {
        await c.close();
      } catch (err) {
        this.log.warn({ err, closer: c.name }, 'shutdown.close_failed');
      }
    }
  }
}
