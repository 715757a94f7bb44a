/** A sliding-window limit per key (user): at most `max` takes per `windowMs`, in process or (shared) in the database. */
import { TooManyRequests } from '../../errors.js';
import { takeCheckRate } from '../../store/CheckRate.js';

export class RateLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count one use, or throw TooManyRequests (with the seconds until the next one is allowed). */
  take(key: string, what = 'checks'): void {
    const t = this.now();
    const list = (this.hits.get(key) ?? []).filter((x) => x > t - this.windowMs);
    if (list.length >= this.max) {
      const wait = Math.max(1, Math.ceil(((list[0] ?? t) + this.windowMs - t) / 1000));
      this.hits.set(key, list);
      throw new TooManyRequests(`rate limit: ${key}`, wait, {
        publicMessage: `Too many ${what}: at most ${this.max} per ${Math.round(this.windowMs / 1000)} s. Try again in ${wait} s.`,
      });
    }
    list.push(t);
    this.hits.set(key, list);
  }

  /** Forget keys with no recent use (call now and then). */
  prune(): void {
    const t = this.now();
    for (const [k, list] of this.hits) if (!list.some((x) => x > t - this.windowMs)) this.hits.delete(k);
  }
}

/** The same limit, counted in the database: it holds for a user across every replica. */
export class SharedRateLimiter {
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async take(key: string, what = 'checks'): Promise<void> {
    const wait = await takeCheckRate(key, this.max, this.windowMs, new Date(this.now()));
    if (wait > 0) {
      throw new TooManyRequests(`rate limit: ${key}`, wait, {
        publicMessage: `Too many ${what}: at most ${this.max} per ${Math.round(this.windowMs / 1000)} s. Try again in ${wait} s.`,
      });
    }
  }
}
