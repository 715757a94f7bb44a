import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { ensureInstanceRecord } from '../../src/store/LabInstance.js';

describe('/metrics', () => {
  let tool: TestTool | undefined;
  afterEach(async () => { await tool?.shutdown(); tool = undefined; });

  it('is not reachable on the public port unless configured', async () => {
    tool = await startTestTool();
    assert.equal((await fetch(`${tool.url}/metrics`)).status, 404);
    assert.equal(tool.metricsUrl, undefined);
  });

  it('is served on its own port when METRICS_PORT is set, with labs by state from the database', async () => {
    tool = await startTestTool({ METRICS_PORT: '0' });
    await ensureInstanceRecord({ activityId: 'a', userId: 'u', contextId: 'c', labId: 'l', labVersion: '1' });
    const res = await fetch(tool.metricsUrl!);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^lab_instances\{state="requested"\} 1$/m);
    assert.match(text, /^# TYPE lab_ws_bytes_total counter$/m);
  });

  it('on the public port requires the metrics token', async () => {
    tool = await startTestTool({ METRICS_TOKEN: 'm'.repeat(20) });
    assert.equal((await fetch(`${tool.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${tool.url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    const ok = await fetch(`${tool.url}/metrics`, { headers: { authorization: `Bearer ${'m'.repeat(20)}` } });
    assert.equal(ok.status, 200);
  });
});
