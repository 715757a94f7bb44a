import assert from 'node:assert/strict';
import { httpStatusFor, TooManyRequests } from '../../src/errors.js';
import { RateLimit, RateLimits, UserAndPlatformLimit } from '../../src/rateLimits.js';

describe('rate limits (token buckets per key)', () => {
  it('passes a burst of perMinute, then refuses with the seconds until the next token', () => {
    let now = 0;
    const l = new RateLimit(6, 'launches', () => now);
    for (let i = 0; i < 6; i++) l.take('u');
    try {
      l.take('u');
      assert.fail('not limited');
    } catch (e) {
      assert.ok(e instanceof TooManyRequests);
      assert.equal(httpStatusFor(e), 429);
      assert.equal(e.retryAfterSeconds, 10);
      assert.equal(e.publicMessage, 'Too many launches: at most 6 a minute. Try again in 10 s.');
    }
    now += 10_000;
    l.take('u');
    assert.throws(() => l.take('u'), TooManyRequests);
    l.take('someone else');
  });

  it('forgets keys whose bucket has refilled', () => {
    let now = 0;
    const l = new RateLimit(60, 'tickets', () => now);
    l.take('a');
    l.take('b');
    now += 500;
    l.prune();
    assert.equal(l.size, 2);
    now += 1000;
    l.prune();
    assert.equal(l.size, 0);
  });

  it('checks the user first: one user hammering never uses up the platform budget', () => {
    const l = new UserAndPlatformLimit({ what: 'launches', perUser: 2, perPlatform: 5, now: () => 0 });
    l.take('mallory', 'p1');
    l.take('mallory', 'p1');
    for (let i = 0; i < 100; i++) assert.throws(() => l.take('mallory', 'p1'), /launches for/);
    for (const u of ['a', 'b', 'c']) l.take(u, 'p1');
    assert.throws(() => l.take('d', 'p1'), (e: TooManyRequests) => /from this platform/.test(e.publicMessage));
    l.take('d', 'p2');
    // the same user id on two platforms is two users
    l.take('mallory', 'p2');
  });

  it('defaults: a class of 40 at once (a launch and four tickets each) passes, with room for the rest of the school', () => {
    const limits = new RateLimits({}, () => 0);
    for (let i = 0; i < 40; i++) {
      limits.launch.take(`s${i}`, 'school');
      for (let k = 0; k < 4; k++) limits.ticket.take(`s${i}`, 'school');
    }
    for (let i = 0; i < 40 * 4; i++) limits.launch.take(`other${i}`, 'school');
  });
});
