/**
 * The limits that must hold across tool replicas, counted in the one database: the per-user
 * websocket seats and the per-user check-run window. Two "replicas" here are two independent
 * takers (as two processes would be); both share only the database.
 */
import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { SEAT_TTL_MS, SocketSeat, releaseSocketSeat, renewSocketSeats, takeSocketSeat } from '../../src/store/SocketSeat.js';
import { SharedRateLimiter } from '../../src/labs/checks/RateLimiter.js';
import { TooManyRequests } from '../../src/errors.js';

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
});
