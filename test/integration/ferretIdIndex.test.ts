/**
 * The embedded FerretDB is built with its `_id` expression written as the `_id` index is created
 * (tools/ferretdb/overlay), so SQLite answers `{_id}` filters from that index. Any other filter
 * still scans the collection: what updateInstance (src/store/LabInstance.ts) works around.
 * FerretDB's explain returns SQLite's own query plan.
 */
import assert from 'node:assert/strict';
import mongoose from 'mongoose';
import { sharedMongoUri, uniqueDbName } from '../support/ferret.js';

describe('FerretDB `_id` lookups (the embedded build)', () => {
  let conn: mongoose.Connection;

  before(async () => {
    conn = await mongoose.createConnection(sharedMongoUri(), { dbName: uniqueDbName('idindex') }).asPromise();
    await conn.collection<{ _id: string; state: string }>('labs').insertMany([{ _id: 'l1', state: 'running' }, { _id: 'l2', state: 'stopped' }]);
  });
  after(async () => { await conn.close(); });

  const plan = async (filter: Record<string, unknown>) => {
    const r = await conn.db!.command({ explain: { find: 'labs', filter }, verbosity: 'queryPlanner' });
    return ((r.queryPlanner as { Plan: string[] }).Plan ?? []).join('\n');
  };

  it('answers a filter of `_id` alone from the `_id` index', async () => {
    assert.match(await plan({ _id: 'l1' }), /SEARCH \S+ USING INDEX \S+__id_ /);
    assert.deepEqual(await conn.collection('labs').findOne({ _id: 'l2' as never }), { _id: 'l2', state: 'stopped' }, 'and finds the same document');
    const r = await conn.collection('labs').updateOne({ _id: 'l1' as never }, { $set: { state: 'paused' } });
    assert.equal(r.modifiedCount, 1);
    assert.equal((await conn.collection('labs').findOne({ _id: 'l1' as never }))?.state, 'paused', 'an update by id writes its document');
  });

  it('scans for any other filter, a guard beside the id included', async () => {
    assert.match(await plan({ _id: 'l1', state: 'paused' }), /SCAN /);
    assert.doesNotMatch(await plan({ _id: 'l1', state: 'paused' }), /USING INDEX/);
  });
});
