import assert from 'node:assert/strict';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { startLtiTool, atToolPage, type LtiTestTool } from '../support/ltiTool.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { Activity } from '../../src/store/Activity.js';
import { User } from '../../src/store/User.js';

describe('LTI launch through the development platform', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool(); });
  after(async () => { await t.tool.shutdown(); });

  it('launches a learner: user and activity stored, one instance started, redirect to /lab/<id> with a session in the fragment', async () => {
    const a = await t.activity('net-101');
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
    assert.equal(r.status, 302, r.body);
    assert.deepEqual(r.steps.map((s) => `${s.method} ${new URL(s.url).pathname}`), ['POST /dev-platform/launch', 'POST /lti/login', 'GET /dev-platform/auth', 'POST /lti']);
    const m = /^\/lab\/([a-z2-7]{16})#session=([\w.-]+)$/.exec(new URL(r.location!).pathname + new URL(r.location!).hash);
    assert.ok(m, r.location);
    const session = await t.tool.sessions.verify(m[2]!);
    const inst = (await LabInstance.findById(m[1]).lean())!;
    const activity = (await Activity.findById(inst.activityId).lean())!;
    const user = (await User.findById(session.userId).lean())!;
    assert.equal(session.role, 'learner');
    assert.equal(session.instanceId, inst._id);
    assert.equal(session.activityId, activity._id);
    assert.equal(session.contextId, activity.contextKey);
    assert.equal(session.name, 'Alice Student');
    assert.notEqual(session.userId, '101', 'our user id, not the platform sub');
    assert.equal(user.sub, '101');
    assert.equal(user.email, 'alice@example.edu');
    assert.equal(user.role, 'learner');
    assert.equal(activity.labId, 'net-101');
    assert.equal(activity.resourceLinkId, a._id);
    assert.equal(activity.deploymentId, t.deploymentId);
    assert.match(activity.lineItemUrl ?? '', /\/lineitems\/[^/]+\/lineitem\?type_id=\d+$/);
    assert.equal(inst.labId, 'net-101');
    assert.equal(inst.labVersion, '3');
    assert.equal(inst.userId, user._id);
    assert.ok(t.fake.started.includes(inst._id));
  });

  it('launches an instructor to the course page with an instructor session and no instance', async () => {
    const a = await t.activity('net-101');
    const before = await LabInstance.countDocuments();
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'teacher' }, { stopAt: atToolPage });
    assert.equal(r.status, 302, r.body);
    const loc = new URL(r.location!);
    const activity = (await Activity.findOne({ resourceLinkId: a._id }).lean())!;
    assert.equal(loc.pathname, `/course/${activity.contextKey}`);
    const session = await t.tool.sessions.verify(loc.hash.replace('#session=', ''));
    assert.equal(session.role, 'instructor');
    assert.equal(session.contextId, activity.contextKey);
    assert.equal(await LabInstance.countDocuments(), before);
  });

  it('gives the same learner the same instance on a second launch', async () => {
    const a = await t.activity('net-101');
    const ids = [];
    for (let i = 0; i < 2; i++) {
      const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student2' }, { stopAt: atToolPage });
      ids.push(new URL(r.location!).pathname);
    }
    assert.equal(ids[0], ids[1]);
  });

  it('creates exactly one lab instance for 50 concurrent launches of the same user and activity', async function () {
    this.timeout(120_000);
    const a = await t.activity('net-101');
    const results = await Promise.all(Array.from({ length: 50 }, () =>
      launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage })));
    const statuses = results.map((r) => r.status);
    assert.deepEqual([...new Set(statuses)], [302], JSON.stringify(results.filter((r) => r.status !== 302).map((r) => r.body.slice(0, 200))));
    const paths = new Set(results.map((r) => new URL(r.location!).pathname));
    assert.equal(paths.size, 1);
    const activity = (await Activity.findOne({ resourceLinkId: a._id }).lean())!;
    assert.equal(await LabInstance.countDocuments({ activityId: activity._id }), 1);
    assert.equal(await Activity.countDocuments({ resourceLinkId: a._id }), 1);
    assert.equal(await User.countDocuments({ sub: '101' }), 1);
  });

  it('refuses a learner launch of an activity without a lab with a clear 409 page', async () => {
    const a = await t.activity(null);
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
    assert.equal(r.status, 409);
    assert.match(r.body, /no lab selected/);
  });
});
