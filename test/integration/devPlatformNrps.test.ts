import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { createMiniTool, MINI_TOOL_PATH, type MiniTool } from '../support/miniTool.js';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { keyProviderFrom } from '../../src/lti/grades/clientAssertion.js';
import { readRoster } from '../../src/lti/nrps.js';
import { DevPlatformGrant } from '../../src/devPlatform/models.js';

describe('NRPS client against the development platform', () => {
  let tool: TestTool;
  let mini: MiniTool;
  let membershipsUrl: string;
  const platform = () => ({ issuer: tool.devPlatform!.urls.issuer, clientId: mini.clientId });

  before(async () => {
    mini = await createMiniTool();
    tool = await startTestTool({}, { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }] });
    const dp = tool.devPlatform!;
    const reg = await dp.registerTool({ name: 'Mini tool', ...mini.urls(tool.url) });
    mini.clientId = reg._id;
    mini.issuer = dp.urls.issuer;
    tool.grades.use({
      keys: keyProviderFrom(async () => ({ privateKey: mini.privateKey, kid: mini.kid })),
      platforms: { tokenUrl: async (p) => (p.issuer === dp.urls.issuer ? dp.urls.token : undefined) },
    });
    const a = await dp.createActivity({ clientId: reg._id, title: 'Lab' });
    const claims = (JSON.parse((await launchAs(new Browser(), dp.urls.issuer, { activityId: a._id, user: 'teacher' })).body) as { claims: Record<string, unknown> }).claims;
    membershipsUrl = (claims['https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice'] as { context_memberships_url: string }).context_memberships_url;
  });
  after(async () => { await tool.shutdown(); });

  it('reads the roster from the launch\'s memberships URL and maps short role names to ours', async () => {
    const r = await readRoster({ platform: platform(), membershipsUrl, tokens: tool.grades.tokens });
    assert.equal(r.context?.id, '2');
    assert.deepEqual(r.members.map((m) => [m.userId, m.name, m.roles, m.role]), [
      ['101', 'Alice Student', ['Learner'], 'learner'], ['102', 'Bob Student', ['Learner'], 'learner'], ['201', 'Tess Teacher', ['Instructor'], 'instructor'],
    ]);
  });

  it('follows rel="next" pages and filters by role', async () => {
    const paged = await readRoster({ platform: platform(), membershipsUrl, tokens: tool.grades.tokens, pageSize: 1 });
    assert.deepEqual(paged.members.map((m) => m.userId), ['101', '102', '201']);
    const teachers = await readRoster({ platform: platform(), membershipsUrl, tokens: tool.grades.tokens, role: 'http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor' });
    assert.deepEqual(teachers.members.map((m) => m.userId), ['201']);
  });

  it('gets a new token once when the platform no longer accepts the cached one', async () => {
    await readRoster({ platform: platform(), membershipsUrl, tokens: tool.grades.tokens });
    await DevPlatformGrant.deleteMany({ kind: 'access' });
    const r = await readRoster({ platform: platform(), membershipsUrl, tokens: tool.grades.tokens });
    assert.equal(r.members.length, 3);
  });

  it('fails with a clear error when the platform refuses', async () => {
    await assert.rejects(readRoster({ platform: platform(), membershipsUrl: membershipsUrl.replace('type_id=', 'type_id=9'), tokens: tool.grades.tokens }), /NRPS memberships answered 403/);
  });
});
