import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { LabInstance, ensureInstanceRecord } from '../../src/store/LabInstance.js';

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
});
