import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';

describe('expiry sweeper', () => {
  let tool: TestTool;
  before(async () => { tool = await startTestTool(); });
  after(async () => { await tool.shutdown(); });

  it('removes expired documents and keeps live ones', async () => {
    const now = Date.now();
    const col = tool.db.connection.collection('sweeptest');
    const aged = tool.db.connection.collection('sweepaged');
    await col.insertMany([
      { name: 'old', expiresAt: new Date(now - 1000) },
      { name: 'live', expiresAt: new Date(now + 60_000) },
    ]);
    await aged.insertMany([
      { name: 'stale', createdAt: new Date(now - 10_000) },
      { name: 'fresh', createdAt: new Date(now) },
    ]);
    tool.sweeper.add({ collection: 'sweeptest', field: 'expiresAt', kind: 'expiresAt' });
    tool.sweeper.add({ collection: 'sweepaged', field: 'createdAt', kind: 'maxAge', maxAgeMs: 5000 });
    const removed = await tool.sweeper.sweep(new Date(now));
    assert.ok(removed >= 2);
    assert.deepEqual((await col.find().toArray()).map((d) => d.name), ['live']);
    assert.deepEqual((await aged.find().toArray()).map((d) => d.name), ['fresh']);
  });
});
