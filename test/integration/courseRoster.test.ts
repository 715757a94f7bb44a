/** The teacher's overview lists every learner of the course from the platform's roster (NRPS). */
import assert from 'node:assert/strict';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { atToolPage, startLtiTool, type LtiTestTool } from '../support/ltiTool.js';
import { CourseRosterCache } from '../../src/lti/roster.js';
import { Activity } from '../../src/store/Activity.js';

type Overview = { instances: Array<{ userId: string; name: string | null }>; notStarted: Array<{ userId: string | null; name: string }> | null };

describe('course overview with the roster (NRPS)', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool(); });
  after(async () => { await t.tool.shutdown(); });

  async function launch(activityId: string, user: string): Promise<{ path: string; session: string }> {
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user }, { stopAt: atToolPage });
    assert.equal(r.status, 302, r.body);
    const [path, session] = r.location!.split('#session=');
    return { path: path!, session: session! };
  }

  it('lists learners without a lab as "not started", next to the labs started, refreshed by a teacher launch', async () => {
    const a = await t.activity('net-101');
    await launch(a._id, 'student');
    const teacher = await launch(a._id, 'teacher');
    const contextKey = decodeURIComponent(teacher.path.replace(/^.*\/course\//, ''));
    const res = await fetch(`${t.tool.url}/api/courses/${encodeURIComponent(contextKey)}/instances`, { headers: { authorization: `Bearer ${teacher.session}` } });
    assert.equal(res.status, 200);
    const ov = (await res.json()) as Overview;
    assert.deepEqual(ov.instances.map((i) => i.name), ['Alice Student']);
    assert.deepEqual(ov.notStarted, [{ userId: null, name: 'Bob Student' }], 'the other learner, never launched; no teacher');
  });

  it('caches the roster per course and answers null for a course without NRPS', async () => {
    const cache = new CourseRosterCache(t.tool.grades.tokens);
    const act = (await Activity.findOne({ membershipsUrl: { $ne: null } }).lean())!;
    const first = await cache.learners(act.contextKey);
    assert.equal(first?.length, 2);
    assert.equal(await cache.learners(act.contextKey), first, 'the cached answer, no new request');
    assert.notEqual(await cache.refresh(act.contextKey), first, 'a refresh reads it again');
    assert.equal(await cache.learners('no-such-course'), null, 'no NRPS: null, the overview lists only started labs');
  });
});
