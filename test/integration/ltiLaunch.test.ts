import assert from 'node:assert/strict';
import { Browser, launchAs, tamperIdToken } from '../support/ltiFlow.js';
import { LoginState, UsedNonce } from '../../src/store/LtiLogin.js';
import { startLtiTool, atToolPage, type LtiTestTool } from '../support/ltiTool.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { Activity } from '../../src/store/Activity.js';
import { User } from '../../src/store/User.js';

describe('LTI launch through the development platform', () => {
  let t: LtiTestTool;
  // the race test launches one user 50 times at once: above the per-user launch limit, which has its own tests
  before(async () => { t = await startLtiTool({ RATE_LAUNCH_PER_USER: '1000' }); });
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

  it('gives a learner switching between two activities each one\'s own instance (a read started at the login is used only for the records it names)', async () => {
    const [a, b] = [await t.activity('net-101'), await t.activity('net-101')];
    const to = async (activityId: string) => new URL((await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, { stopAt: atToolPage })).location!).pathname;
    // the same login hint every time: each login reads ahead the instance of the launch before it
    const seen = [await to(a._id), await to(a._id), await to(b._id), await to(a._id), await to(b._id), await to(b._id)];
    assert.deepEqual(seen, [seen[0], seen[0], seen[2], seen[0], seen[2], seen[2]]);
    assert.notEqual(seen[0], seen[2]);
    const insts = await LabInstance.find({ _id: { $in: [seen[0]!, seen[2]!].map((x) => x.split('/')[2]!) } }).lean();
    assert.deepEqual(new Set(insts.map((i) => i.userId)).size, 1);
    assert.deepEqual(new Set(insts.map((i) => i.activityId)).size, 2);
  });

  it('fetches the platform JWKS once for many launches: our check and ltijs\'s share one cache', async () => {
    const a = await t.activity('net-101');
    const jwksHits = () => t.tool.logs().filter((l) => l.msg === 'http.request' && /\/jwks$/.test(String(l.path))).length;
    await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
    const before = jwksHits();
    assert.ok(before >= 1, 'the platform JWKS requests are visible in the access log');
    for (let i = 0; i < 5; i++) {
      const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: i % 2 ? 'student' : 'teacher' }, { stopAt: atToolPage });
      assert.equal(r.status, 302, r.body);
    }
    assert.equal(jwksHits(), before, 'no JWKS request during the launches');
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

  const ROLES = 'https://purl.imsglobal.org/spec/lti/claim/roles';
  const launchWithRoles = async (roles: unknown) => {
    const a = await t.activity('net-101');
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student2' }, {
      stopAt: atToolPage, onForm: tamperIdToken(t.dp, (c) => ({ claims: { ...c, [ROLES]: roles } })),
    });
    assert.equal(r.status, 302, r.body);
    const loc = new URL(r.location!);
    return { path: loc.pathname, session: await t.tool.sessions.verify(loc.hash.replace('#session=', '')) };
  };

  it('maps empty and unknown roles to learner', async () => {
    for (const roles of [[], ['http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor', 'urn:made-up']]) {
      const { path, session } = await launchWithRoles(roles);
      assert.equal(session.role, 'learner', JSON.stringify(roles));
      assert.match(path, /^\/lab\//);
    }
  });

  it('maps a platform administrator to administrator (course page) and a teaching assistant to instructor', async () => {
    const admin = await launchWithRoles(['http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator', 'http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor']);
    assert.equal(admin.session.role, 'administrator');
    assert.match(admin.path, /^\/course\//);
    const ta = await launchWithRoles(['http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant']);
    assert.equal(ta.session.role, 'instructor');
  });

  it('accepts the login initiation as a GET too', async () => {
    const b = new Browser();
    const q = new URLSearchParams({ iss: t.dp.urls.issuer, login_hint: '101', target_link_uri: t.tool.lti.urls.launch, client_id: t.clientId, lti_deployment_id: t.deploymentId });
    const res = await b.request(`${t.tool.lti.urls.login}?${q}`);
    assert.equal(res.status, 302);
    const auth = new URL(res.headers.get('location')!);
    assert.equal(`${auth.origin}${auth.pathname}`, t.dp.urls.auth);
    assert.equal(auth.searchParams.get('redirect_uri'), t.tool.lti.urls.launch);
    assert.ok((auth.searchParams.get('nonce') ?? '').length >= 32, 'a strong nonce');
    assert.ok(await LoginState.exists({ _id: auth.searchParams.get('state') ?? '', nonce: auth.searchParams.get('nonce') ?? '' }), 'nonce bound to state');
  });

  it('leaves login states and used nonces to the ExpirySweeper (FerretDB has no TTL)', async () => {
    await LoginState.create({ _id: 'expired-state', nonce: 'n', issuer: 'i', targetLinkUri: 'u', expiresAt: new Date(Date.now() - 1000) });
    await UsedNonce.create({ _id: 'expired-nonce', expiresAt: new Date(Date.now() - 1000) });
    await t.tool.sweeper.sweep();
    assert.equal(await LoginState.exists({ _id: 'expired-state' }), null);
    assert.equal(await UsedNonce.exists({ _id: 'expired-nonce' }), null);
  });

  it('reads the course roster (NRPS) for a teacher view, members matched to our user ids', async () => {
    const a = await t.activity('net-101');
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'teacher' }, { stopAt: atToolPage });
    const contextKey = new URL(r.location!).pathname.split('/')[2]!;
    const roster = await t.tool.lti.roster(contextKey);
    assert.deepEqual(roster.members.map((m) => [m.userId, m.role]).sort(), [['101', 'learner'], ['102', 'learner'], ['201', 'instructor']]);
    const teacher = roster.members.find((m) => m.userId === '201')!;
    assert.equal(teacher.ourUserId, (await User.findOne({ sub: '201' }).lean())!._id);
  });
});
