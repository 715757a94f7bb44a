import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { DevPlatformActivity } from '../../src/devPlatform/models.js';
import { seedDemoCourse } from '../../src/devPlatform/demoSeed.js';

describe('demo start-up', function () {
  this.timeout(180_000); // start-up imports the example labs and registers with the dev platform
  let tool: TestTool;
  before(async function () { this.timeout(180_000); tool = await startTestTool({ LAB_MODE: 'demo', DEV_PLATFORM_REGISTER: 'true' }); });
  after(async () => { await tool?.shutdown(); });

  it('sends the bare origin to the demo course', async () => {
    const res = await fetch(`${tool.url}/`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), tool.devPlatform!.urls.page);
  });

  it('puts one graded activity per catalog lab in the demo course, once', async () => {
    const labs = await tool.labs.list();
    assert.ok(labs.length >= 3, 'the example labs are in the catalog');
    const acts = await DevPlatformActivity.find({}).lean();
    assert.deepEqual(acts.map((a) => a.custom?.lab_id).sort(), labs.map((l) => l.id).sort());
    assert.ok(acts.every((a) => a.lineItemId), 'each has a gradebook column');
    const clientId = acts[0]!.clientId;
    assert.deepEqual(await seedDemoCourse(tool.devPlatform!, clientId, labs), [], 'seeding again creates nothing');
    const page = await (await fetch(tool.devPlatform!.urls.page)).text();
    for (const l of labs) assert.ok(page.includes(l.title), `${l.title} listed on the course page`);
  });
});
