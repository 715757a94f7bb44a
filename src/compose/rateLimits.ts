/** The rate limits (launches, tickets, check runs per user and per platform) from the configuration, counted in the database. */
import type { Config } from '../config.js';
import { RateLimits } from '../rateLimits.js';
import { DbSlots } from '../store/RateSlots.js';

export function buildRateLimits(config: Config): RateLimits {
  return new RateLimits({
    launchPerUser: config.RATE_LAUNCH_PER_USER, launchPerPlatform: config.RATE_LAUNCH_PER_PLATFORM,
    ticketPerUser: config.RATE_TICKET_PER_USER, ticketPerPlatform: config.RATE_TICKET_PER_PLATFORM,
    checkPerPlatform: config.RATE_CHECK_PER_PLATFORM,
  }, new DbSlots());
}
