import assert from 'node:assert/strict';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { uniqueDbName } from '../support/ferret.js';
import { createMiniTool, MINI_TOOL_PATH, type MiniTool } from '../support/miniTool.js';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { GradeOutbox } from '../../src/store/GradeOutbox.js';
import { DevPlatformGrant } from '../../src/devPlatform/models.js';
import { keyProviderFrom } from '../../src/lti/grades/clientAssertion.js';
import type { GradePorts } from '../../src/lti/grades/GradeService.js';
import type { GradeTarget } from '../../src/lti/grades/types.js';

const FAST = { GRADE_RETRY_BASE_MS: '100', GRADE_RETRY_MAX_MS: '400' };
const done = { activityProgress: 'Completed', gradingProgress: 'FullyGraded' } as const;

/** The mini tool's key and the dev platform's token endpoint, as the LTI module will plug them in. */
function ports(mini: MiniTool, tool: TestTool): GradePorts {
  const dp = tool.devPlatform!;
  return {
    keys: keyProviderFrom(async () => ({ privateKey: mini.privateKey, kid: mini.kid })),
    platforms: { tokenUrl: async (p) => (p.issuer === dp.urls.issuer && p.clientId === mini.clientId ? dp.urls.token : undefined) },
  };
}

/** Register the mini tool, add a graded activity, launch a student and read the line item URL from the id_token. */
async function gradedActivity(mini: MiniTool, tool: TestTool): Promise<{ lineItemId: string; target: (sub: string) => GradeTarget }> {
  const dp = tool.devPlatform!;
  const reg = await dp.registerTool({ name: 'Mini tool', ...mini.urls(tool.url) });
  mini.clientId = reg._id;
  mini.issuer = dp.urls.issuer;
  const a = await dp.createActivity({ clientId: reg._id, title: 'Graded', lineItem: { scoreMaximum: 10 } });
  const r = await launchAs(new Browser(), dp.urls.issuer, { activityId: a._id, user: 'student' });
  const claims = (JSON.parse(r.body) as { claims: Record<string, unknown> }).claims;
  const lineItemUrl = (claims['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] as { lineitem: string }).lineitem;
  return { lineItemId: a.lineItemId!, target: (userSub) => ({ issuer: dp.urls.issuer, clientId: reg._id, lineItemUrl, userSub }) };
}

const state = async (id: unknown) => (await GradeOutbox.findById(id).lean())!;

describe('GradeService: durable outbox to the development platform', () => {
  let tool: TestTool;
  let mini: MiniTool;
  let g: Awaited<ReturnType<typeof gradedActivity>>;

  before(async () => {
    mini = await createMiniTool();
    tool = await startTestTool(FAST, { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }] });
    g = await gradedActivity(mini, tool);
    tool.grades.use(ports(mini, tool));
  });
  after(async () => { await tool.shutdown(); });

  it('delivers a published score to the line item\'s scores endpoint with the timestamp assigned at write', async () => {
    const e = await tool.grades.publish(g.target('101'), { ...done, scoreGiven: 6, scoreMaximum: 10, comment: 'checks 3/5' });
    await waitFor(async () => (await state(e._id)).state === 'delivered', 10_000, 'delivery');
    const got = await tool.devPlatform!.receivedScores(g.lineItemId, '101');
    const last = got.at(-1)!;
    assert.equal(last.scoreGiven, 6);
    assert.equal(last.comment, 'checks 3/5');
    assert.equal(last.timestamp.getTime(), e.timestamp.getTime());
  });

  it('delivers a score published while the platform is down once it comes back', async () => {
    const before = (await tool.devPlatform!.receivedScores(g.lineItemId, '102')).length;
    tool.devPlatform!.setScoresAvailable(false);
    const e = await tool.grades.publish(g.target('102'), { ...done, scoreGiven: 4, scoreMaximum: 10 });
    try {
      await waitFor(async () => (await state(e._id)).attempts >= 2, 10_000, 'two failed attempts');
      assert.equal((await state(e._id)).state, 'pending');
      assert.match((await state(e._id)).lastError ?? '', /503/);
      assert.equal((await tool.devPlatform!.receivedScores(g.lineItemId, '102')).length, before);
    } finally {
      tool.devPlatform!.setScoresAvailable(true);
    }
    await waitFor(async () => (await state(e._id)).state === 'delivered', 10_000, 'delivery after the outage');
    assert.equal((await tool.devPlatform!.receivedScores(g.lineItemId, '102')).at(-1)!.scoreGiven, 4);
  });

  it('delivers two scores for one user in order, with increasing timestamps, also after an outage', async () => {
    tool.devPlatform!.setScoresAvailable(false);
    const a = await tool.grades.publish(g.target('101'), { activityProgress: 'InProgress', gradingProgress: 'FullyGraded', scoreGiven: 3, scoreMaximum: 10 });
    const b = await tool.grades.publish(g.target('101'), { ...done, scoreGiven: 9, scoreMaximum: 10 });
    assert.ok(b.timestamp.getTime() > a.timestamp.getTime());
    await waitFor(async () => (await state(a._id)).attempts >= 1, 10_000, 'a failed attempt');
    tool.devPlatform!.setScoresAvailable(true);
    await waitFor(async () => (await state(b._id)).state === 'delivered', 10_000, 'delivery');
    assert.equal((await state(a._id)).state, 'delivered');
    const got = (await tool.devPlatform!.receivedScores(g.lineItemId, '101')).slice(-2);
    assert.deepEqual(got.map((s) => s.scoreGiven), [3, 9]);
    assert.ok(got[0]!.receivedAt.getTime() <= got[1]!.receivedAt.getTime() && got[0]!.seq < got[1]!.seq);
  });

  it('stores a grade only for FullyGraded, like Moodle: a Pending score reaches the gradebook as no grade', async () => {
    const p = await tool.grades.publish(g.target('102'), { activityProgress: 'InProgress', gradingProgress: 'Pending', scoreGiven: 4, scoreMaximum: 10 });
    await waitFor(async () => (await state(p._id)).state === 'delivered', 10_000, 'delivery');
    assert.equal((await tool.devPlatform!.receivedScores(g.lineItemId, '102')).at(-1)!.scoreGiven, null);
    const f = await tool.grades.publish(g.target('102'), { activityProgress: 'InProgress', gradingProgress: 'FullyGraded', scoreGiven: 4, scoreMaximum: 10 });
    await waitFor(async () => (await state(f._id)).state === 'delivered', 10_000, 'delivery');
    assert.equal((await tool.devPlatform!.receivedScores(g.lineItemId, '102')).at(-1)!.scoreGiven, 4);
  });

  it('gives 20 concurrent publishes for one user distinct timestamps and delivers all of them in timestamp order', async () => {
    const entries = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      tool.grades.publish(g.target('102'), { activityProgress: 'InProgress', gradingProgress: 'Pending', scoreGiven: i % 10, scoreMaximum: 10 })));
    assert.equal(new Set(entries.map((e) => e.timestamp.getTime())).size, 20);
    await waitFor(async () => (await GradeOutbox.countDocuments({ _id: { $in: entries.map((e) => e._id) }, state: 'delivered' })) === 20, 20_000, 'all delivered');
    const got = (await tool.devPlatform!.receivedScores(g.lineItemId, '102')).slice(-20);
    const sent = [...entries].sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime());
    assert.deepEqual(got.map((s) => s.timestamp.getTime()), sent.map((e) => e.timestamp.getTime()));
  });

  it('refreshes the access token once when the platform answers 401', async () => {
    const obtained = () => tool.logs().filter((l) => l.msg === 'lti.access_token_obtained').length;
    const n = obtained();
    await DevPlatformGrant.deleteMany({ kind: 'access' }); // the platform forgets every token it issued
    const e = await tool.grades.publish(g.target('101'), { ...done, scoreGiven: 10, scoreMaximum: 10 });
    await waitFor(async () => (await state(e._id)).state === 'delivered', 10_000, 'delivery');
    assert.equal((await state(e._id)).attempts, 1, 'delivered on the first attempt, after one refresh');
    assert.equal(obtained(), n + 1);
  });

  it('rejects a score the platform refuses for good (a teacher: 400) and moves on to the next one of that stream', async () => {
    const bad = await tool.grades.publish(g.target('201'), { ...done, scoreGiven: 1, scoreMaximum: 10 });
    const next = await tool.grades.publish(g.target('201'), { ...done, scoreGiven: 2, scoreMaximum: 10 });
    await waitFor(async () => (await state(next._id)).state !== 'pending', 10_000, 'an outcome for the second score');
    for (const e of [bad, next]) {
      const s = await state(e._id);
      assert.equal(s.state, 'rejected');
      assert.equal(s.attempts, 1, 'a permanent refusal is not retried');
      assert.match(s.lastError ?? '', /^400/);
    }
  });

  it('counts a 409 on a retry as delivered, and a 409 on a first try as rejected', async () => {
    // the platform gets a later score for user 102 from elsewhere (e.g. a teacher override)
    const tokenRes = await fetch(tool.devPlatform!.urls.token, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: tool.devPlatform!.urls.token }),
        scope: 'https://purl.imsglobal.org/spec/lti-ags/scope/score',
      }),
    });
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    const u = new URL(g.target('102').lineItemUrl);
    const direct = await fetch(`${u.origin}${u.pathname}/scores${u.search}`, {
      method: 'POST', headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/vnd.ims.lis.v1.score+json' },
      body: JSON.stringify({ userId: '102', ...done, scoreGiven: 10, scoreMaximum: 10, timestamp: new Date(Date.now() + 3600_000).toISOString() }),
    });
    assert.equal(direct.status, 204);
    const first = await tool.grades.publish(g.target('102'), { ...done, scoreGiven: 2, scoreMaximum: 10 });
    await waitFor(async () => (await state(first._id)).state !== 'pending', 10_000, 'an outcome');
    assert.equal((await state(first._id)).state, 'rejected');
    tool.devPlatform!.setScoresAvailable(false);
    const retried = await tool.grades.publish(g.target('102'), { ...done, scoreGiven: 3, scoreMaximum: 10 });
    await waitFor(async () => (await state(retried._id)).attempts >= 1, 10_000, 'a failed attempt');
    tool.devPlatform!.setScoresAvailable(true);
    await waitFor(async () => (await state(retried._id)).state !== 'pending', 10_000, 'an outcome');
    assert.equal((await state(retried._id)).state, 'delivered');
  });

  it('refuses an invalid score before writing anything', async () => {
    const n = await GradeOutbox.countDocuments();
    await assert.rejects(tool.grades.publish(g.target('101'), { activityProgress: 'Completed', gradingProgress: 'FullyGraded', scoreGiven: 5 }), /scoreMaximum/);
    await assert.rejects(tool.grades.publish('unknown-instance', { ...done }), /grade target/);
    assert.equal(await GradeOutbox.countDocuments(), n);
  });

  it('reports the backlog in the metrics', async () => {
    tool.devPlatform!.setScoresAvailable(false);
    try {
      await tool.grades.publish(g.target('101'), { ...done, scoreGiven: 5, scoreMaximum: 10 });
      const text = await tool.metrics.render();
      assert.match(text, /^lab_grade_outbox_pending [1-9]/m);
    } finally {
      tool.devPlatform!.setScoresAvailable(true);
    }
    await waitFor(async () => (await GradeOutbox.countDocuments({ state: 'pending' })) === 0, 10_000, 'empty backlog');
  });
});

describe('GradeService: across a tool restart', () => {
  it('delivers a score that was pending when the tool stopped after the tool starts again', async () => {
    const dbName = uniqueDbName('grades-restart');
    const mini = await createMiniTool();
    const mounts = { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }], dbName };
    const t1 = await startTestTool(FAST, mounts);
    const port = new URL(t1.url).port;
    let entryId: unknown;
    let lineItemId = '';
    try {
      const g = await gradedActivity(mini, t1);
      lineItemId = g.lineItemId;
      t1.grades.use(ports(mini, t1));
      t1.devPlatform!.setScoresAvailable(false);
      const e = await t1.grades.publish(g.target('101'), { ...done, scoreGiven: 7, scoreMaximum: 10 });
      entryId = e._id;
      await waitFor(async () => (await state(e._id)).attempts >= 1, 10_000, 'a failed attempt');
    } finally {
      await t1.shutdown();
    }
    // same port (the line item URL and issuer include it) and same database
    const t2 = await startTestTool({ ...FAST, PORT: port }, mounts);
    try {
      assert.equal(t2.url, t1.url);
      assert.equal((await state(entryId)).state, 'pending');
      t2.grades.use(ports(mini, t2));
      await waitFor(async () => (await state(entryId)).state === 'delivered', 15_000, 'delivery after restart');
      assert.deepEqual((await t2.devPlatform!.receivedScores(lineItemId, '101')).map((s) => s.scoreGiven), [7]);
    } finally {
      await t2.shutdown();
    }
  });
});
