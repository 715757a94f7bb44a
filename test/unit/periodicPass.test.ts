/** PeriodicPass: callers during a pass share it, the timer never overlaps passes, stop() ends the timer and waits for the pass in flight. */
import assert from 'node:assert/strict';
import { PeriodicPass } from '../../src/labs/PeriodicPass.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pass that waits for release() and counts how many ran and how many ran at once. */
function gatedPass() {
  const s = { started: 0, inFlight: 0, maxInFlight: 0, release: () => {} };
  const pass = async (): Promise<number> => {
    const n = ++s.started;
    s.inFlight++;
    s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
    await new Promise<void>((r) => { s.release = r; });
    s.inFlight--;
    return n;
  };
  return { s, pass };
}

describe('PeriodicPass', () => {
  it('gives callers during a pass that pass, and runs a new one after it ended', async () => {
    const { s, pass } = gatedPass();
    const p = new PeriodicPass(pass);
    const a = p.run();
    const b = p.run();
    assert.equal(a, b);
    assert.equal(s.started, 1);
    s.release();
    assert.deepEqual(await Promise.all([a, b]), [1, 1]);
    const c = p.run();
    assert.equal(s.started, 2, 'a new pass once the first ended');
    s.release();
    assert.equal(await c, 2);
  });

  it('runs again after a pass that failed', async () => {
    let n = 0;
    const p = new PeriodicPass(async () => {
      if (++n === 1) throw new Error('boom');
      return n;
    });
    await assert.rejects(p.run(), /boom/);
    assert.equal(await p.run(), 2);
  });

  it('passes at start and every interval, never two at once while one outlasts the interval', async () => {
    const { s, pass } = gatedPass();
    const p = new PeriodicPass(pass);
    p.start(10);
    assert.equal(s.started, 1, 'a pass at once');
    await sleep(60); // several intervals while the first pass is still running
    assert.equal(s.started, 1, 'the due passes joined the running one');
    s.release();
    await sleep(40);
    assert.ok(s.started >= 2, `passes go on once it ended (${s.started})`);
    const stopped = p.stop();
    s.release();
    await stopped;
    assert.equal(s.maxInFlight, 1);
  });

  it('stop asks the pass in flight to end, waits for it, and no pass follows; start clears the request', async () => {
    const seen: boolean[] = [];
    let release = () => {};
    let started = 0;
    const p: PeriodicPass<void> = new PeriodicPass(async () => {
      started++;
      seen.push(p.stopping);
      await new Promise<void>((r) => { release = r; });
      seen.push(p.stopping);
    });
    p.start(5);
    let done = false;
    const stopped = p.stop().then(() => { done = true; });
    await sleep(20);
    assert.equal(done, false, 'stop waits for the pass in flight');
    release();
    await stopped;
    assert.deepEqual(seen, [false, true], 'the pass saw the stop request');
    await sleep(30);
    assert.equal(started, 1, 'no pass after stop');
    p.start(1000);
    assert.equal(p.stopping, false);
    assert.equal(started, 2);
    const again = p.stop();
    release();
    await again;
  });

  it('stop without a pass in flight resolves at once', async () => {
    const p = new PeriodicPass(async () => 1);
    assert.equal(p.stopping, false);
    await p.stop();
    assert.equal(p.stopping, true);
  });
});
