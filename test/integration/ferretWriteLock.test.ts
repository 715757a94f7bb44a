/**
 * The embedded FerretDB under write contention. SQLite has one write lock per database file; a
 * FerretDB write waits for it up to the busy timeout our wrapper sets (tools/ferretdb), then fails
 * with "database is locked (SQLITE_BUSY)". FerretDB's own default is 10 s, which many concurrent
 * writers exceed on a loaded machine.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import mongoose from 'mongoose';
import { sharedFerretDataDir, sharedMongoUri, uniqueDbName } from '../support/ferret.js';

/** Takes the write lock of one SQLite file with the sqlite3 shell; resolves once it is held. */
async function holdWriteLock(file: string): Promise<{ release(): Promise<void> }> {
  const child: ChildProcess = spawn('sqlite3', [file], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    lines.on('line', (l) => { if (l === 'locked') resolve(); });
    child.stdin!.write('.timeout 5000\nBEGIN IMMEDIATE;\nSELECT \'locked\';\n');
  });
  return {
    async release() {
      child.stdin!.end('COMMIT;\n.quit\n');
      await exited;
    },
  };
}

describe('FerretDB write lock (SQLite busy timeout)', function () {
  this.timeout(60_000);
  let conn: mongoose.Connection;
  const dbName = uniqueDbName('writelock');

  before(async () => {
    conn = await mongoose.createConnection(sharedMongoUri(), { dbName }).asPromise();
    await conn.collection<{ _id: string; state: string }>('labs').insertOne({ _id: 'l1', state: 'running' });
  });
  after(async () => { await conn.close(); });

  it('a write waits out a write lock held for 12 s instead of failing with SQLITE_BUSY', async () => {
    const lock = await holdWriteLock(path.join(sharedFerretDataDir(), `${dbName}.sqlite`));
    const col = conn.collection<{ _id: string; state: string }>('labs');
    const t0 = Date.now();
    const write = col.findOneAndUpdate({ _id: 'l1', state: 'running' }, { $set: { state: 'destroyed' } }, { returnDocument: 'after' })
      .then((doc) => ({ doc, ms: Date.now() - t0 }), (err: unknown) => ({ err, ms: Date.now() - t0 }));
    await new Promise((r) => setTimeout(r, 12_000));
    await lock.release();
    const res = await write;
    assert.ok(!('err' in res), `the write failed after ${res.ms} ms: ${'err' in res ? String(res.err) : ''}`);
    assert.equal(res.doc.value?.state, 'destroyed');
    assert.ok(res.ms >= 12_000, `the write returned after ${res.ms} ms, before the lock was released`);
    assert.equal((await col.findOne({ _id: 'l1' }))?.state, 'destroyed');
  });

  it('findOneAndUpdate does not re-check its filter: two claims of {claimedBy: null} both win one document', async () => {
    type Slot = { _id: string; claimedBy: string | null };
    const col = conn.collection<Slot>('slots');
    await col.insertOne({ _id: 's1', claimedBy: null });
    // Two more connections, so the two claims reach FerretDB side by side.
    const others = await Promise.all([1, 2].map(() => mongoose.createConnection(sharedMongoUri(), { dbName }).asPromise()));
    try {
      const lock = await holdWriteLock(path.join(sharedFerretDataDir(), `${dbName}.sqlite`));
      // Both read s1 unclaimed (reads do not wait for the write lock), then both wait to write.
      const claims = others.map((c, i) => c.collection<Slot>('slots').findOneAndUpdate({ claimedBy: null }, { $set: { claimedBy: `c${i}` } }, { returnDocument: 'after' }));
      await new Promise((r) => setTimeout(r, 5_000));
      await lock.release();
      const won = (await Promise.all(claims)).map((r) => r.value);
      // MongoDB would give the second claim nothing (s1 no longer matches); FerretDB 1.x writes both.
      assert.deepEqual(won.map((d) => d?._id), ['s1', 's1']);
      assert.deepEqual(won.map((d) => d?.claimedBy), ['c0', 'c1']);
      assert.ok(['c0', 'c1'].includes((await col.findOne({ _id: 's1' }))?.claimedBy ?? ''));
    } finally {
      await Promise.all(others.map((c) => c.close()));
    }
  });
});
