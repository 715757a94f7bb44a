import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { LabInstance, ensureInstanceRecord, updateInstance } from '../../src/store/LabInstance.js';
import { idOnlyFilters, setIdOnlyFilters } from '../../src/store/idFilters.js';

describe('lab instance records', () => {
  let tool: TestTool;
  before(async () => { tool = await startTestTool(); });
  after(async () => { await tool.shutdown(); });

  it('50 concurrent ensures for one user and activity create exactly one record', async () => {
    const key = { activityId: 'act-1', userId: 'user-1', contextId: 'ctx', labId: 'lab', labVersion: '1' };
    const docs = await Promise.all(Array.from({ length: 50 }, () => ensureInstanceRecord(key)));
    assert.equal(new Set(docs.map((d) => d._id)).size, 1);
    assert.equal(await LabInstance.countDocuments({ activityId: 'act-1', userId: 'user-1' }), 1);
  });

  it('gives different users of one activity different records', async () => {
    const a = await ensureInstanceRecord({ activityId: 'act-2', userId: 'u-a', contextId: 'c', labId: 'l', labVersion: '1' });
    const b = await ensureInstanceRecord({ activityId: 'act-2', userId: 'u-b', contextId: 'c', labId: 'l', labVersion: '1' });
    assert.notEqual(a._id, b._id);
    assert.match(a._id, /^[a-z2-7]{16}$/);
  });

  it('a new record has the same fields and defaults, whichever way it was created (an insert on FerretDB, an upsert on MongoDB)', async () => {
    assert.equal(idOnlyFilters(), true, 'the tool found FerretDB at connect');
    const key = (userId: string) => ({ activityId: 'act-3', userId, contextId: 'c', labId: 'l', labVersion: '1', timeLimitMinutes: 30 });
    const inserted = await ensureInstanceRecord(key('u-insert'));
    setIdOnlyFilters(false);
    try {
      const upserted = await ensureInstanceRecord(key('u-upsert'));
      const shape = (d: typeof inserted) => {
        const { _id, userId, createdAt, updatedAt, ...rest } = d as typeof d & { createdAt: Date; updatedAt: Date };
        assert.ok(_id && userId && createdAt instanceof Date && updatedAt instanceof Date);
        // an insert writes the null defaults an upsert leaves out; every query here reads null and missing alike
        return Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== null));
      };
      assert.deepEqual(shape(inserted), shape(upserted));
      assert.equal(inserted.generation, 0);
      assert.equal(inserted.state, 'requested');
      assert.equal(inserted.timeLimitMinutes, 30);
    } finally {
      setIdOnlyFilters(true);
    }
    assert.equal((await ensureInstanceRecord(key('u-insert')))._id, inserted._id, 'an existing record is found after the insert is refused');
  });

  for (const mode of ['read by id, checked here (FerretDB)', 'guard in the filter (MongoDB)']) {
    it(`a guarded write applies only when the record passes its guard: ${mode}`, async () => {
      const r = await ensureInstanceRecord({ activityId: 'act-4', userId: `u-${mode.length}`, contextId: 'c', labId: 'l', labVersion: '1' });
      setIdOnlyFilters(mode.includes('FerretDB'));
      try {
        assert.equal(await updateInstance(r._id, { generation: 1 }, { $set: { state: 'failed' } }), null, 'another generation');
        assert.equal(await updateInstance(r._id, { state: { $in: ['running', 'provisioning'] } }, { $set: { state: 'failed' } }), null, 'another state');
        assert.equal(await updateInstance('nosuchinstance00', {}, { $set: { state: 'failed' } }), null, 'no such record');
        assert.equal((await LabInstance.findById(r._id).lean())!.state, 'requested', 'nothing written');
        const w = await updateInstance(r._id, { generation: 0, state: { $in: ['requested', 'failed'] }, handle: null, warnedAt: null }, { $set: { state: 'failed', failureReason: 'x' } });
        assert.equal(w?.state, 'failed', 'the written record is returned');
        assert.equal(w?.failureReason, 'x');
        assert.equal((await LabInstance.findById(r._id).lean())!.state, 'failed');
      } finally {
        setIdOnlyFilters(true);
      }
    });
  }
});
