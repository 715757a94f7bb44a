/** The rate limits (launches, tickets, check runs per user and per platform) from the configuration, pruned every minute. */
import type { Config } from '../config.js';
import { RateLimits } from '../rateLimits.js';
import type { Closers } from './Closers.js';

export function buildRateLimits(config: Config, closers: Closers): RateLimits {
  const limits = new RateLimits({
    launchPerUser: config.RATE_LAUNCH_PER_USER, launchPerPlatform: config.RATE_LAUNCH_PER_PLATFORM,
    ticketPerUser: config.RATE_TICKET_PER_USER, ticketPerPlatform: config.RATE_TICKET_PER_PLATFORM,
    checkPerPlatform: config.RATE_CHECK_PER_PLATFORM,
  });
  const prune = setInterval(() => limits.prune(), 60_000);
  prune.unref();
  closers.add('rate-limits', () => clearInterval(prune));
  return limits;
}
