/** CapacityQueue: first come first served positions; release wakes only the head; abort, close and the retry timer wake a waiter. */
import assert from 'node:assert/strict';
import { CapacityQueue } from '../../src/labs/CapacityQueue.js';

const HOUR = 3_600_000;

describe('CapacityQueue', () => {
  it('gives 1-based positions in arrival order, once per instance, and moves everyone up on remove', () => {
    const q = new CapacityQueue(HOUR);
    assert.deepEqual([q.enqueue('a'), q.enqueue('b'), q.enqueue('c'), q.enqueue('a')], [1, 2, 3, 1]);
    assert.equal(q.length, 3);
    q.remove('a');
    assert.deepEqual([q.position('a'), q.position('b'), q.position('c'), q.length], [undefined, 1, 2, 2]);
  });

  it('release wakes the head only', async () => {
    const q = new CapacityQueue(HOUR);
    const ac = new AbortController();
    q.enqueue('a');
    q.enqueue('b');
    const woke: string[] = [];
    const wa = q.wait('a', ac.signal).then(() => woke.push('a'));
    void q.wait('b', ac.signal).then(() => woke.push('b'));
    q.release();
    await wa;
    assert.deepEqual(woke, ['a']);
    q.remove('a'); // the head started; b is the head now
    const wb = q.wait('b', ac.signal).then(() => woke.push('b again'));
    q.release();
    await wb;
    assert.ok(woke.includes('b again'));
    ac.abort();
  });

  it('remove wakes the removed waiter (its lab was stopped or destroyed meanwhile)', async () => {
    const q = new CapacityQueue(HOUR);
    q.enqueue('a');
    const w = q.wait('a', new AbortController().signal);
    q.remove('a');
    await w;
    assert.equal(q.position('a'), undefined);
  });

  it('abort and close wake waiters; a wait after close returns at once', async () => {
    const q = new CapacityQueue(HOUR);
    const ac = new AbortController();
    q.enqueue('a');
    q.enqueue('b');
    const wa = q.wait('a', ac.signal);
    ac.abort();
    await wa;
    const wb = q.wait('b', new AbortController().signal);
    q.close();
    await wb;
    await q.wait('c', new AbortController().signal);
  });

  it('the retry timer wakes a waiter whose capacity came back another way', async () => {
    const q = new CapacityQueue(20);
    q.enqueue('a');
    await q.wait('a', new AbortController().signal);
    assert.equal(q.position('a'), 1, 'waking does not dequeue: the caller tries again and removes itself');
  });
});
