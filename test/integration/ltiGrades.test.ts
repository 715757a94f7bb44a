import assert from 'node:assert/strict';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { atToolPage, startLtiTool, type LtiTestTool } from '../support/ltiTool.js';
import { waitFor } from '../support/tool.js';
import { uniqueDbName } from '../support/ferret.js';
import { GradeOutbox } from '../../src/store/GradeOutbox.js';

const FAST = { GRADE_RETRY_BASE_MS: '100', GRADE_RETRY_MAX_MS: '400' };
const done = { activityProgress: 'Completed', gradingProgress: 'FullyGraded' } as const;
const state = async (id: unknown) => (await GradeOutbox.findById(id).lean())!;

/** A graded activity and a student's instance, through a real launch. */
async function launchedInstance(t: LtiTestTool, user = 'student'): Promise<{ instanceId: string; lineItemId: string }> {
  const a = await t.activity('net-101');
  const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user }, { stopAt: atToolPage });
  assert.equal(r.status, 302, r.body);
  return { instanceId: /\/lab\/([a-z2-7]+)/.exec(r.location!)![1]!, lineItemId: a.lineItemId! };
}

describe('Grades through the tool side: instance → line item stored at launch, our key, the platform\'s token endpoint', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool(FAST); });
  after(async () => { await t.tool.shutdown(); });

  it('delivers a score published for a lab instance to the development platform\'s scores endpoint', async () => {
    const { instanceId, lineItemId } = await launchedInstance(t);
    const e = await t.tool.grades.publish(instanceId, { ...done, scoreGiven: 17, scoreMaximum: 20, comment: 'all checks passed' });
    assert.equal(e.userSub, '101');
    assert.match(e.lineItemUrl, /\?type_id=\d+$/);
    await waitFor(async () => (await state(e._id)).state === 'delivered', 10_000, 'delivery');
    const got = (await t.dp.receivedScores(lineItemId, '101')).at(-1)!;
    assert.equal(got.scoreGiven, 17);
    assert.equal(got.comment, 'all checks passed');
  });

  it('refuses to publish for an instance whose activity has no line item', async () => {
    const a = await t.activity('net-101', { lineItem: false });
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student2' }, { stopAt: atToolPage });
    const instanceId = /\/lab\/([a-z2-7]+)/.exec(r.location!)![1]!;
    await assert.rejects(t.tool.grades.publish(instanceId, { ...done, scoreGiven: 1, scoreMaximum: 20 }), /grade target/);
  });
});

describe('Grades through the tool side: across a tool restart', () => {
  it('delivers scores published while the platform was down after the tool restarts and the platform is back, in order', async () => {
    const dbName = uniqueDbName('lti-grades-restart');
    const t1 = await startLtiTool(FAST, { dbName });
    const port = new URL(t1.tool.url).port;
    let ids: unknown[] = [];
    let lineItemId = '';
    try {
      const l = await launchedInstance(t1);
      lineItemId = l.lineItemId;
      t1.dp.setScoresAvailable(false);
      const a = await t1.tool.grades.publish(l.instanceId, { activityProgress: 'InProgress', gradingProgress: 'FullyGraded', scoreGiven: 5, scoreMaximum: 20 });
      const b = await t1.tool.grades.publish(l.instanceId, { ...done, scoreGiven: 19, scoreMaximum: 20 });
      ids = [a._id, b._id];
      await waitFor(async () => (await state(a._id)).attempts >= 1, 10_000, 'a failed attempt');
    } finally {
      await t1.tool.shutdown();
    }
    // same port, DATA_DIR (secret key: our tool key is stored encrypted) and database
    const t2 = await startLtiTool({ ...FAST, PORT: port, DATA_DIR: t1.tool.dataDir }, { dbName, register: false });
    try {
      assert.equal((await state(ids[0])).state, 'pending');
      await waitFor(async () => (await state(ids[1])).state === 'delivered', 15_000, 'delivery after the restart');
      assert.deepEqual((await t2.dp.receivedScores(lineItemId, '101')).map((s) => s.scoreGiven), [5, 19]);
    } finally {
      await t2.tool.shutdown();
    }
  });
});
