/**
 * Expiry without TTL indexes (FerretDB 1.x has none): one sweeper, one list of rules, used by
 * every collection that needs expiry — ours and the ones ltijs expects TTL indexes for.
 */
import type mongoose from 'mongoose';
import type { Logger } from '../logger.js';

export type ExpiryRule =
  /** Delete documents whose `field` (a Date) is in the past. */
  | { collection: string; field: string; kind: 'expiresAt' }
  /** Delete documents whose `field` (a Date) is older than maxAgeMs. */
  | { collection: string; field: string; kind: 'maxAge'; maxAgeMs: number };

export class ExpirySweeper {
  private readonly rules: ExpiryRule[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly connection: mongoose.Connection, private readonly log: Logger) {}

  add(rule: ExpiryRule): this {
    this.rules.push(rule);
    return this;
  }

  /** One pass over every rule; returns how many documents were removed. Never overlaps itself. */
  sweep(now = new Date()): Promise<number> {
    this.running ??= this.sweepOnce(now).finally(() => { this.running = undefined; });
    return this.running;
  }

  private async sweepOnce(now: Date): Promise<number> {
    let removed = 0;
    for (const r of this.rules) {
      const cutoff = r.kind === 'expiresAt' ? now : new Date(now.getTime() - r.maxAgeMs);
      try {
        const res = await this.connection.collection(r.collection).deleteMany({ [r.field]: { $lt: cutoff } });
        removed += res.deletedCount;
      } catch (err) {
        this.log.warn({ err, collection: r.collection }, 'sweeper.failed');
      }
    }
    if (removed > 0) this.log.debug({ removed }, 'sweeper.swept');
    return removed;
  }

  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => void this.sweep(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
