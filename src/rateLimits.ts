/**
 * Rate limits per user and per platform over a sliding minute, counted in a UseLog. The tool
 * counts in the database (store/RateUse.ts: one row per use, inserted and then counted, so
 * concurrent uses on any replica can never pass together beyond the limit; FerretDB 1.x has no
 * atomic `$inc` under concurrency and no transactions), so a limit holds for the whole tool
 * however many replicas serve it; tests of the arithmetic count in memory. A burst of `perMinute`
 * at once passes; past it: TooManyRequests (429) with Retry-After = the seconds until the oldest
 * use in the minute leaves it. A refused use does not count.
 *
 * Sizing (defaults, per minute): launches 10 per user, 600 per platform; websocket tickets 60 per
 * user, 2400 per platform; check runs 600 per platform (per user: CHECK_RATE_PER_MINUTE, counted
 * by the check runner's own sliding window). A class of 40 at once costs 40 launches and ~4
 * tickets each (two machines, desktop and console): a fifteenth of the platform's launch budget
 * and a fifteenth of its ticket budget. Several classes of one school starting in the same
 * minute still pass; one user or one platform hammering the tool does not.
 */
import { TooManyRequests } from './errors.js';

export const RATE_WINDOW_MS = 60_000;

/** Where uses are counted, shared by every replica. */
export interface UseLog {
  /**
   * Record one use of `key` at `now` unless `max` uses are already in the window ending at `now`;
   * resolves to 0 when recorded, else to the milliseconds until the oldest use leaves the window.
   * Two uses racing for the last place may both be refused, never both recorded.
   */
  take(key: string, now: number, windowMs: number, max: number): Promise<number>;
}

/** Uses in this process only (unit tests, or a tool without a database). */
export class MemoryUseLog implements UseLog {
  private readonly uses = new Map<string, number[]>();
  take(key: string, now: number, windowMs: number, max: number): Promise<number> {
    const inWindow = (this.uses.get(key) ?? []).filter((t) => t > now - windowMs);
    if (inWindow.length >= max) {
      this.uses.set(key, inWindow);
      return Promise.resolve(Math.max(1, inWindow[0]! + windowMs - now));
    }
    inWindow.push(now);
    this.uses.set(key, inWindow);
    return Promise.resolve(0);
  }
}

/** One limit: at most `perMinute` uses per key in any minute. */
export class RateLimit {
  constructor(
    readonly perMinute: number,
    private readonly what: string,
    private readonly log: UseLog,
    private readonly scope: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count one use for key, or throw TooManyRequests with the seconds until one would pass. */
  async take(key: string): Promise<void> {
    const waitMs = await this.log.take(`${this.scope}\n${key}`, this.now(), RATE_WINDOW_MS, this.perMinute);
    if (waitMs <= 0) return;
    const wait = Math.max(1, Math.ceil(waitMs / 1000));
    throw new TooManyRequests(`rate limit: ${this.what} for ${key}`, wait, {
      publicMessage: `Too many ${this.what}: at most ${this.perMinute} a minute. Try again in ${wait} s.`,
    });
  }
}

/** A per-user and a per-platform limit on one kind of request. */
export class UserAndPlatformLimit {
  readonly user: RateLimit;
  readonly platform: RateLimit;

  constructor(o: { what: string; scope: string; perUser: number; perPlatform: number; log: UseLog; now?: () => number }) {
    this.user = new RateLimit(o.perUser, o.what, o.log, `${o.scope}:user`, o.now);
    this.platform = new RateLimit(o.perPlatform, `${o.what} from this platform`, o.log, `${o.scope}:platform`, o.now);
  }

  /**
   * Count one request by `user` of `platform` (a platform id; unknown for sessions issued before
   * sessions named their platform). The user's limit is checked first, so one user hammering
   * never uses up the platform's budget.
   */
  async take(user: string, platform: string | undefined): Promise<void> {
    await this.user.take(platform ? `${platform}\n${user}` : user);
    if (platform) await this.platform.take(platform);
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

  constructor(s: Partial<RateLimitSettings> = {}, log: UseLog = new MemoryUseLog(), now?: () => number) {
    const c = { ...DEFAULT_RATE_LIMITS, ...s };
    const n = now ? { now } : {};
    this.launch = new UserAndPlatformLimit({ what: 'launches', scope: 'launch', perUser: c.launchPerUser, perPlatform: c.launchPerPlatform, log, ...n });
    this.ticket = new UserAndPlatformLimit({ what: 'connections', scope: 'ticket', perUser: c.ticketPerUser, perPlatform: c.ticketPerPlatform, log, ...n });
    this.checkPerPlatform = new RateLimit(c.checkPerPlatform, 'checks from this platform', log, 'check:platform', now);
  }
}
