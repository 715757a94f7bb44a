import assert from 'node:assert/strict';
import { httpStatusFor, TooManyRequests } from '../../src/errors.js';
import { MemoryUseLog, RateLimit, RateLimits, UserAndPlatformLimit } from '../../src/rateLimits.js';

describe('rate limits (a sliding minute per key)', () => {
  it('passes a burst of perMinute, then refuses with the seconds until the oldest use leaves the minute', async () => {
    let now = 1_000_000;
    const l = new RateLimit(6, 'launches', new MemoryUseLog(), 'launch', () => now);
    for (let i = 0; i < 6; i++) {
      await l.take('u');
      now += 10_000;
    }
    // now = start + 60 s: the first use just left the minute, the second leaves in 10 s
    await l.take('u');
    try {
      await l.take('u');
      assert.fail('not limited');
    } catch (e) {
      assert.ok(e instanceof TooManyRequests);
      assert.equal(httpStatusFor(e), 429);
      assert.equal(e.retryAfterSeconds, 10);
      assert.equal(e.publicMessage, 'Too many launches: at most 6 a minute. Try again in 10 s.');
    }
    await l.take('someone else');
    now += 10_000;
    await l.take('u');
    await assert.rejects(() => l.take('u'), TooManyRequests);
  });

  it('a refused use does not count', async () => {
    let now = 0;
    const l = new RateLimit(10, 'launches', new MemoryUseLog(), 'launch', () => now);
    for (let i = 0; i < 10; i++) await l.take('u');
    for (let i = 0; i < 50; i++) await assert.rejects(() => l.take('u'), TooManyRequests);
    now = 60_000;
    for (let i = 0; i < 10; i++) await l.take('u');
  });

  it('checks the user first: one user hammering never uses up the platform budget', async () => {
    const l = new UserAndPlatformLimit({ what: 'launches', scope: 'launch', perUser: 2, perPlatform: 5, log: new MemoryUseLog(), now: () => 0 });
    await l.take('mallory', 'p1');
    await l.take('mallory', 'p1');
    for (let i = 0; i < 100; i++) await assert.rejects(() => l.take('mallory', 'p1'), /launches for/);
    for (const u of ['a', 'b', 'c']) await l.take(u, 'p1');
    await assert.rejects(() => l.take('d', 'p1'), (e: TooManyRequests) => /from this platform/.test(e.publicMessage));
    await l.take('d', 'p2');
    // the same user id on two platforms is two users
    await l.take('mallory', 'p2');
  });

  it('launches, tickets and checks count apart in one log', async () => {
    const limits = new RateLimits({ launchPerUser: 1, ticketPerUser: 1, checkPerPlatform: 1 }, new MemoryUseLog(), () => 0);
    await limits.launch.take('u', 'p');
    await limits.ticket.take('u', 'p');
    await limits.checkPerPlatform.take('p');
    await assert.rejects(() => limits.launch.take('u', 'p'), TooManyRequests);
  });

  it('defaults: a class of 40 at once (a launch and four tickets each) passes, with room for the rest of the school', async () => {
    const limits = new RateLimits({}, new MemoryUseLog(), () => 0);
    for (let i = 0; i < 40; i++) {
      await limits.launch.take(`s${i}`, 'school');
      for (let k = 0; k < 4; k++) await limits.ticket.take(`s${i}`, 'school');
    }
    for (let i = 0; i < 40 * 4; i++) await limits.launch.take(`other${i}`, 'school');
  });
});
