import assert from 'node:assert/strict';
import { httpStatusFor, TooManyRequests } from '../../src/errors.js';
import { MemorySlots, RateLimit, RateLimits, UserAndPlatformLimit, type SlotStore } from '../../src/rateLimits.js';

describe('rate limits (slots per window, a sliding minute)', () => {
  it('passes a burst of perMinute, then refuses with the seconds until one passes; the previous minute still counts', async () => {
    let now = 10_000;
    const l = new RateLimit(6, 'launches', new MemorySlots(), 'launch', () => now);
    for (let i = 0; i < 6; i++) await l.take('u');
    try {
      await l.take('u');
      assert.fail('not limited');
    } catch (e) {
      assert.ok(e instanceof TooManyRequests);
      assert.equal(httpStatusFor(e), 429);
      assert.equal(e.retryAfterSeconds, 50);
      assert.equal(e.publicMessage, 'Too many launches: at most 6 a minute. Try again in 50 s.');
    }
    await l.take('someone else');
    // half way through the next window, half of the previous six still count: three more pass
    now = 90_000;
    for (let i = 0; i < 3; i++) await l.take('u');
    await assert.rejects(() => l.take('u'), (e: TooManyRequests) => e.retryAfterSeconds === 10);
  });

  it('has no double burst at a window edge, and a refused use claims nothing', async () => {
    let now = 59_000;
    const l = new RateLimit(10, 'launches', new MemorySlots(), 'launch', () => now);
    for (let i = 0; i < 10; i++) await l.take('u');
    now = 61_000;
    for (let i = 0; i < 50; i++) await assert.rejects(() => l.take('u'), TooManyRequests);
    now = 120_001; // the window of the refusals holds nothing
    for (let i = 0; i < 10; i++) await l.take('u');
  });

  it('two replicas sharing the slots never pass more than the limit together, and spend few claims on it', async () => {
    let claims = 0;
    const shared = new MemorySlots();
    const counting = { highest: shared.highest.bind(shared), noteHighest: shared.noteHighest.bind(shared), release: shared.release.bind(shared), claim: (...a: Parameters<MemorySlots['claim']>) => { claims++; return shared.claim(...a); } };
    const [x, y] = [new RateLimit(600, 'launches', counting, 'launch', () => 0), new RateLimit(600, 'launches', counting, 'launch', () => 0)];
    assert.equal(x.perSlot, 30);
    let passed = 0;
    const all = await Promise.allSettled(Array.from({ length: 1000 }, (_, i) => (i % 2 ? x : y).take('school')));
    for (const r of all) if (r.status === 'fulfilled') passed++;
    assert.ok(passed <= 600 && passed >= 600 - 2 * 29, `${passed} passed`);
    assert.ok(claims <= 40, `${claims} slot claims`);
  });

  it('checks the user first: one user hammering never uses up the platform budget', async () => {
    const l = new UserAndPlatformLimit({ what: 'launches', scope: 'launch', perUser: 2, perPlatform: 5, slots: new MemorySlots(), now: () => 0 });
    await l.take('mallory', 'p1');
    await l.take('mallory', 'p1');
    for (let i = 0; i < 100; i++) await assert.rejects(() => l.take('mallory', 'p1'), /launches for/);
    for (const u of ['a', 'b', 'c']) await l.take(u, 'p1');
    await assert.rejects(() => l.take('d', 'p1'), (e: TooManyRequests) => /from this platform/.test(e.publicMessage));
    await l.take('d', 'p2');
    // the same user id on two platforms is two users
    await l.take('mallory', 'p2');
  });

  it('launches, tickets and checks count apart in one store', async () => {
    const limits = new RateLimits({ launchPerUser: 1, ticketPerUser: 1, checkPerPlatform: 1 }, new MemorySlots(), () => 0);
    await limits.launch.take('u', 'p');
    await limits.ticket.take('u', 'p');
    await limits.checkPerPlatform.take('p');
    await assert.rejects(() => limits.launch.take('u', 'p'), TooManyRequests);
  });

  it('defaults: a class of 40 at once (a launch and four tickets each) passes, with room for the rest of the school', async () => {
    const limits = new RateLimits({}, new MemorySlots(), () => 0);
    for (let i = 0; i < 40; i++) {
      await limits.launch.take(`s${i}`, 'school');
      for (let k = 0; k < 4; k++) await limits.ticket.take(`s${i}`, 'school');
    }
    for (let i = 0; i < 40 * 4; i++) await limits.launch.take(`other${i}`, 'school');
  });
});

/** MemorySlots that log each call, and whether it was a write. */
function loggedSlots() {
  const s = new MemorySlots();
  const calls: string[] = [];
  const store: SlotStore = {
    highest: (k, w) => { calls.push('highest'); return s.highest(k, w); },
    claim: (k, w, n, e) => { calls.push(`claim ${n}`); return s.claim(k, w, n, e); },
    noteHighest: (k, w, n) => { calls.push(`note ${n}`); return s.noteHighest(k, w, n); },
    release: (k, w, n) => { calls.push(`release ${n}`); return s.release(k, w, n); },
  };
  // the hint is raised once the take's caller has gone on (setImmediate)
  return { store, calls, take: async () => { await new Promise((r) => setImmediate(r)); return calls.splice(0); } };
}

describe('rate limits: round trips per use', () => {
  it('early in a window a first use claims beside one read of the previous window; later uses claim alone', async () => {
    const log = loggedSlots();
    const l = new RateLimit(10, 'launches', log.store, 'launch', () => 1_000);
    await l.take('u');
    assert.deepEqual((await log.take()).sort(), ['claim 1', 'highest', 'note 1']);
    await l.take('u');
    assert.deepEqual(await log.take(), ['claim 2', 'note 2']);
  });

  it('late in a window, slots a full previous window could not refuse are claimed without any read', async () => {
    const log = loggedSlots();
    // 40 s in: a previous window of 10 weighs a third, so slots 1..6 pass whatever it held
    const l = new RateLimit(10, 'launches', log.store, 'launch', () => 40_000);
    for (let i = 0; i < 6; i++) await l.take('u');
    const calls = await log.take();
    assert.deepEqual(calls.filter((c) => !c.startsWith('note')), ['claim 1', 'claim 2', 'claim 3', 'claim 4', 'claim 5', 'claim 6']);
    assert.equal(calls.length, 12, 'and a hint raise each');
    await l.take('u');
    assert.deepEqual((await log.take()).sort(), ['claim 7', 'highest', 'note 7']);
  });

  it('a spent budget refuses without a write, and a first use refused by the previous minute gives its slot back', async () => {
    let now = 59_000;
    const log = loggedSlots();
    const l = new RateLimit(3, 'launches', log.store, 'launch', () => now);
    for (let i = 0; i < 3; i++) await l.take('u');
    await log.take();
    await assert.rejects(() => l.take('u'), TooManyRequests);
    assert.deepEqual(await log.take(), []);
    // another replica (nothing known) at the start of the next window: the previous three still count
    const other = new RateLimit(3, 'launches', log.store, 'launch', () => now);
    now = 60_500;
    await assert.rejects(() => other.take('u'), (e: TooManyRequests) => e.retryAfterSeconds === 20);
    assert.deepEqual((await log.take()).sort(), ['claim 1', 'highest', 'release 1']);
    assert.equal(await log.store.claim('launch\nu', 60_000, 1, new Date(200_000)), true, 'slot 1 was given back');
  });

  it('a claim lost to another replica reads the hint again and takes the next free slot', async () => {
    const log = loggedSlots();
    const [x, y] = [new RateLimit(10, 'launches', log.store, 'launch', () => 1_000), new RateLimit(10, 'launches', log.store, 'launch', () => 1_000)];
    await x.take('u');
    await y.take('u');
    await y.take('u');
    await log.take();
    await x.take('u');
    assert.deepEqual(await log.take(), ['claim 2', 'highest', 'claim 4', 'note 4']);
  });
});

describe('rate limits: slots of several uses', () => {
  it('a user gets the whole budget across a window edge: the rest of a slot carries over', async () => {
    let now = 59_990;
    const l = new RateLimit(60, 'connections', new MemorySlots(), 'ticket', () => now);
    assert.equal(l.perSlot, 3);
    for (let i = 0; i < 29; i++) await l.take('u'); // ten slots, one use left in the last
    now = 60_010;
    for (let i = 0; i < 31; i++) await l.take('u');
    await assert.rejects(() => l.take('u'), TooManyRequests);
  });
});
