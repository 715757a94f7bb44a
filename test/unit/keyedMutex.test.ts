/** KeyedMutex: one section per key at a time, in call order; keys independent; a failure frees the key. */
import assert from 'node:assert/strict';
import { KeyedMutex } from '../../src/KeyedMutex.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

describe('KeyedMutex', () => {
  it('runs sections of one key one after another, in call order', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const gate = deferred();
    const a = m.run('k', async () => { log.push('a start'); await gate.promise; log.push('a end'); return 'a'; });
    const b = m.run('k', async () => { log.push('b'); return 'b'; });
    const c = m.run('k', async () => { log.push('c'); return 'c'; });
    await Promise.resolve();
    assert.deepEqual(log, ['a start'], 'b waits for a');
    gate.resolve();
    assert.deepEqual(await Promise.all([a, b, c]), ['a', 'b', 'c']);
    assert.deepEqual(log, ['a start', 'a end', 'b', 'c']);
  });

  it('does not hold one key back for another', async () => {
    const m = new KeyedMutex();
    const gate = deferred();
    const slow = m.run('x', () => gate.promise.then(() => 'x'));
    assert.equal(await m.run('y', async () => 'y'), 'y', 'y ran while x was held');
    gate.resolve();
    assert.equal(await slow, 'x');
  });

  it('passes a failure to its caller only, and the next section of the key still runs', async () => {
    const m = new KeyedMutex();
    const failing = m.run('k', async () => { throw new Error('boom'); });
    const next = m.run('k', async () => 'after');
    await assert.rejects(failing, /boom/);
    assert.equal(await next, 'after');
  });

  it('is not re-entrant: a section that waits for its own key never finishes (callers must not nest)', async () => {
    const m = new KeyedMutex();
    let inner = false;
    const gate = deferred();
    void m.run('k', async () => {
      void m.run('k', async () => { inner = true; });
      await gate.promise;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(inner, false, 'the nested section waits for the outer one');
    gate.resolve();
    await m.run('k', async () => undefined);
    assert.equal(inner, true, 'and runs once the outer one ends');
  });
});
