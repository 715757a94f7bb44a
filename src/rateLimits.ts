/**
 * Rate limits per user and per platform, in process: a token bucket per key that holds up to
 * `perMinute` tokens and refills at `perMinute` a minute. A burst of `perMinute` at once passes (a
 * class of 40 opening the activity at 9:00); after that, one per 60/perMinute seconds. A refusal is
 * TooManyRequests, which the error handler answers with 429 and Retry-After.
 *
 * Sizing (defaults, per minute): launches 10 per user, 600 per platform; websocket tickets 60 per
 * user, 2400 per platform; check runs 600 per platform (per user: CHECK_RATE_PER_MINUTE, counted
 * by the check runner's own sliding window). A class of
 * 40 at once costs 40 launches and ~4 tickets each (two machines, desktop and console): a sixth
 * of the platform's launch burst and a fifteenth of its ticket burst. Several classes of one school
 * starting in the same minute still pass; one user or one platform hammering the tool does not.
 */
import { TooManyRequests } from './errors.js';

interface Bucket {
  tokens: number;
  at: number;
}

/** One limit: at most `perMinute` takes per key per minute, bursts up to `perMinute`. */
export class RateLimit {
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;

  constructor(
    readonly perMinute: number,
    private readonly what: string,
    private readonly now: () => number = Date.now,
  ) {
    this.ratePerMs = perMinute / 60_000;
  }

  /** Count one use for key, or throw TooManyRequests with the seconds until the next one passes. */
  take(key: string): void {
    const t = this.now();
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.perMinute, b.tokens + (t - b.at) * this.ratePerMs) : this.perMinute;
    if (tokens < 1) {
      const wait = Math.max(1, Math.ceil((1 - tokens) / this.ratePerMs / 1000));
      this.buckets.set(key, { tokens, at: t });
      throw new TooManyRequests(`rate limit: ${this.what} for ${key}`, wait, {
        publicMessage: `Too many ${this.what}: at most ${this.perMinute} a minute. Try again in ${wait} s.`,
      });
    }
    this.buckets.set(key, { tokens: tokens - 1, at: t });
    if (this.buckets.size > 10_000) this.prune();
  }

  /** Forget keys whose bucket has refilled (they behave exactly as unknown keys). */
  prune(): void {
    const t = this.now();
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * this.ratePerMs >= this.perMinute) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** A per-user and a per-platform limit on one kind of request. */
export class UserAndPlatformLimit {
  readonly user: RateLimit;
  readonly platform: RateLimit;

  constructor(o: { what: string; perUser: number; perPlatform: number; now?: () => number }) {
    this.user = new RateLimit(o.perUser, o.what, o.now);
    this.platform = new RateLimit(o.perPlatform, `${o.what} from this platform`, o.now);
  }

  /**
   * Count one request by `user` of `platform` (a platform id; unknown for sessions issued before
   * sessions named their platform). The user's limit is checked first, so one user hammering
   * never uses up the platform's budget.
   */
  take(user: string, platform: string | undefined): void {
    this.user.take(platform ? `${platform}\n${user}` : user);
    if (platform) this.platform.take(platform);
  }

  prune(): void {
    this.user.prune();
    this.platform.prune();
  }
}

export interface RateLimitSettings {
  launchPerUser: number;
  launchPerPlatform: number;
  ticketPerUser: number;
  ticketPerPlatform: number;
  checkPerPlatform: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  launchPerUser: 10,
  launchPerPlatform: 600,
  ticketPerUser: 60,
  ticketPerPlatform: 2400,
  checkPerPlatform: 600,
};

/** The tool's limits: LTI launches, websocket tickets, check runs. */
export class RateLimits {
  readonly launch: UserAndPlatformLimit;
  readonly ticket: UserAndPlatformLimit;
  /** Check runs of a platform's students (each student's own limit is the check runner's). */
  readonly checkPerPlatform: RateLimit;

  constructor(s: Partial<RateLimitSettings> = {}, now?: () => number) {
    const c = { ...DEFAULT_RATE_LIMITS, ...s };
    this.launch = new UserAndPlatformLimit({ what: 'launches', perUser: c.launchPerUser, perPlatform: c.launchPerPlatform, ...(now ? { now } : {}) });
    this.ticket = new UserAndPlatformLimit({ what: 'connections', perUser: c.ticketPerUser, perPlatform: c.ticketPerPlatform, ...(now ? { now } : {}) });
    this.checkPerPlatform = new RateLimit(c.checkPerPlatform, 'checks from this platform', now);
  }

  prune(): void {
    this.launch.prune();
    this.ticket.prune();
    this.checkPerPlatform.prune();
  }
}
