/**
 * What must hold across tool replicas, through the one database: the per-user websocket seats,
 * the per-user check-run window, and lab events. Two "replicas" here are two independent takers
 * or relays (as two processes would be); both share only the database.
 */
import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { SEAT_TTL_MS, SocketSeat, releaseSocketSeat, renewSocketSeats, takeSocketSeat } from '../../src/store/SocketSeat.js';
import { SharedRateLimiter } from '../../src/labs/checks/RateLimiter.js';
import { TooManyRequests } from '../../src/errors.js';
import { LabEventRelay } from '../../src/labs/LabEventRelay.js';
import type { LabEvent } from '../../src/labs/contracts.js';
import { pino } from 'pino';

describe('limits shared by replicas (real FerretDB)', function () {
  this.timeout(60_000);
  let tool: TestTool;
  before(async () => { tool = await startTestTool(); });
  after(async () => { await tool?.shutdown(); });

  it('caps a user\'s sockets across replicas, frees a seat on close, and lets a dead replica\'s seats expire', async () => {
    const max = 3;
    assert.equal(await takeSocketSeat('r1-1', 'ann', max), true);
    assert.equal(await takeSocketSeat('r2-1', 'ann', max), true);
    assert.equal(await takeSocketSeat('r1-2', 'ann', max), true);
    assert.equal(await takeSocketSeat('r2-2', 'ann', max), false, 'the fourth socket, on the other replica, is refused');
    assert.equal(await SocketSeat.countDocuments({ user: 'ann' }), 3, 'a refused seat leaves no row');
    assert.equal(await takeSocketSeat('r2-3', 'bob', max), true, 'another user is not affected');
    await releaseSocketSeat('r1-1');
    assert.equal(await takeSocketSeat('r2-4', 'ann', max), true, 'a closed socket gives its seat back');
    // replica 2 dies: its seats are not renewed and stop counting once past their expiry
    const later = new Date(Date.now() + SEAT_TTL_MS + 1000);
    await renewSocketSeats(['r1-2'], later);
    assert.equal(await takeSocketSeat('r1-3', 'ann', max, new Date(later.getTime() - 500)), true);
    assert.equal(await takeSocketSeat('r1-4', 'ann', max, new Date(later.getTime() - 500)), true, 'only the living replica\'s seat and the new ones count');
    assert.equal(await takeSocketSeat('r1-5', 'ann', max, new Date(later.getTime() - 500)), false);
  });

  it('limits a user\'s check runs across replicas with one sliding window', async () => {
    const t0 = Date.now();
    let now = t0;
    const a = new SharedRateLimiter(4, 60_000, () => now);
    const b = new SharedRateLimiter(4, 60_000, () => now);
    await a.take('carl');
    await b.take('carl');
    await a.take('carl');
    await b.take('carl');
    await assert.rejects(() => a.take('carl'), (err: unknown) => err instanceof TooManyRequests && /at most 4 per 60 s/.test(err.publicMessage));
    await assert.rejects(() => b.take('carl'), TooManyRequests);
    await b.take('dora');
    now = t0 + 61_000;
    await a.take('carl'); // the window moved on
  });

  it('carries lab events between replicas once each, only to instances watched there, none older than the watch', async () => {
    const log = pino({ level: 'silent' });
    let watched: string[] = [];
    const gotB: LabEvent[] = [];
    const a = new LabEventRelay({ log, pollMs: 60_000, origin: 'ra', deliver: () => assert.fail('a has no subscribers'), subscribed: () => [] });
    const b = new LabEventRelay({ log, pollMs: 60_000, origin: 'rb', deliver: (e) => gotB.push(e), subscribed: () => watched });
    const ev = (instanceId: string, s: string): LabEvent => ({ type: 'steps', instanceId, steps: { s: s } });
    a.publish(ev('i-early', 'before the watch'));
    await a.close(); // waits for its writes
    await new Promise((r) => setTimeout(r, 5));
    watched = ['i-1', 'i-early'];
    b.watch('i-1');
    b.watch('i-early');
    const a2 = new LabEventRelay({ log, pollMs: 60_000, origin: 'ra', deliver: () => undefined, subscribed: () => [] });
    a2.publish(ev('i-1', 'one'));
    a2.publish(ev('i-2', 'not watched on b'));
    b.publish(ev('i-1', 'b\'s own'));
    a2.publish({ type: 'expiry-warning', instanceId: 'i-1', expiresAt: '2030-01-01T00:00:00.000Z' });
    await a2.close();
    await b.poll();
    await b.poll(); // the windows overlap: the same rows are read again and not delivered again
    assert.deepEqual(gotB, [ev('i-1', 'one'), { type: 'expiry-warning', instanceId: 'i-1', expiresAt: '2030-01-01T00:00:00.000Z' }]);
    await b.close();
  });
});
