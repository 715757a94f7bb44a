/**
 * Warm before class on the real tool (its LabService, supervisor and warm duty) over the in-memory
 * backend: a teacher of the course schedules a session, the duty prepares the labs, launches take
 * them atomically, a claim cut short is finished or given back, unused labs go after the session.
 */
import assert from 'node:assert/strict';
import { waitFor } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { courseKey, startWarmTool, type WarmTool } from '../support/warmTool.js';
import { LabInstance, type LabInstanceDoc } from '../../src/store/LabInstance.js';
import { WarmSession } from '../../src/store/WarmSession.js';
import { claimPoolLab, WarmClaim } from '../../src/store/WarmLabs.js';
import { PoolLabList } from '../../src/labs/PoolLabList.js';
import { WarmPool } from '../../src/labs/WarmPool.js';
import { Activity } from '../../src/store/Activity.js';
import { createLogger } from '../../src/logger.js';
import { claimGeneration } from '../../src/store/LabGeneration.js';

type SessionView = { id: string; expected: number; requested?: number; ready: number; handedOut: number; wasted: number; state: string };

describe('warm sessions (in-memory backend)', function () {
  this.timeout(60_000);
  let w: WarmTool;
  let backend: MemoryBackend;

  before(async () => {
    backend = new MemoryBackend();
    backend.phaseMs = 20;
    w = await startWarmTool(backend);
  });
  after(async () => { await w?.tool.shutdown(); });

  /** A new activity, its teacher's session and course key, its tool-side activity id and the lab version. */
  async function course() {
    const a = await w.activity();
    const teacher = await w.launch(a, 'teacher');
    const contextId = courseKey(teacher.path);
    const act = (await Activity.findOne({ contextKey: contextId, resourceLinkId: { $exists: true }, title: a.title }).lean())!;
    const version = (await w.tool.labs.latest('shell-steps'))!.version;
    return { a, teacher, contextId, activityId: act._id, version };
  }

  async function schedule(session: string, contextId: string, body: Record<string, unknown>): Promise<SessionView> {
    const res = await w.api(session, 'POST', `/api/courses/${encodeURIComponent(contextId)}/warm-sessions`, body);
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as SessionView;
  }

  const pool = (sessionId: string) => LabInstance.find({ warmSession: sessionId }).lean() as Promise<LabInstanceDoc[]>;
  const readyCount = async (sessionId: string) => (await pool(sessionId)).filter((p) => p.state === 'running' && !p.claimedBy).length;

  it('lets only teachers of the course schedule, defaulting to the roster and capped by capacity', async () => {
    const c = await course();
    const student = await w.launch(c.a, 'student');
    const url = `/api/courses/${encodeURIComponent(c.contextId)}/warm-sessions`;
    const startsAt = new Date(Date.now() + 3600_000).toISOString();
    assert.equal((await w.api(student.session, 'POST', url, { startsAt })).status, 403, 'a learner is refused');
    assert.equal((await w.api(student.session, 'GET', url)).status, 403);
    const otherTeacher = await w.tool.sessions.issue({ userId: 'u-other', role: 'instructor', contextId: 'c-another-course' });
    assert.equal((await w.api(otherTeacher, 'POST', url, { startsAt })).status, 403, 'a teacher of another course is refused');
    assert.equal((await fetch(`${w.tool.url}${url}`, { method: 'POST' })).status, 401);
    assert.equal(await WarmSession.countDocuments({ contextId: c.contextId }), 0, 'nothing scheduled by them');

    const s = await schedule(c.teacher.session, c.contextId, { startsAt });
    assert.equal(s.expected, 2, 'the roster: two learners in the demo course');
    backend.maxLabs = 3;
    try {
      const capped = await schedule(c.teacher.session, c.contextId, { startsAt, expected: 40 });
      assert.equal(capped.requested, 40);
      assert.equal(capped.expected, 3, 'capped by what the backend can run');
    } finally {
      backend.maxLabs = undefined;
    }
    assert.equal((await w.api(c.teacher.session, 'POST', url, { startsAt: 'tomorrow-ish' })).status, 400);
    const list = (await (await w.api(c.teacher.session, 'GET', url)).json()) as { sessions: SessionView[] };
    assert.equal(list.sessions.length, 2);
    await WarmSession.updateMany({ contextId: c.contextId }, { $set: { state: 'ended' } });
  });

  it('hands 20 prepared labs to 20 students launching at once (each twice): distinct labs, none lost, no new boot', async () => {
    const c = await course();
    const handedBefore = await w.metric('lab_warm_handed_out_total');
    const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date().toISOString(), expected: 20 });
    await waitFor(async () => (await readyCount(s.id)) === 20, 20_000, '20 prepared labs running');
    const poolHandles = new Set((await pool(s.id)).map((p) => p.handle!.name));
    const provisioned = backend.provisionCalls;
    const labsBefore = backend.labs.size;

    const keys = Array.from({ length: 20 }, (_, i) => ({ activityId: c.activityId, userId: `warm-student-${i}`, contextId: c.contextId, labId: 'shell-steps', labVersion: c.version }));
    const insts = await Promise.all(keys.map((k) => w.svc.ensureInstance(k)));
    const started = await Promise.all(insts.flatMap((i) => [w.svc.start(i._id), w.svc.start(i._id)]));

    const docs = (await LabInstance.find({ _id: { $in: insts.map((i) => i._id) } }).lean()) as LabInstanceDoc[];
    assert.ok(docs.every((d) => d.state === 'running'), `every student's lab runs at once (${docs.map((d) => d.state).join(',')})`);
    const taken = docs.map((d) => d.handle!.name);
    assert.equal(new Set(taken).size, 20, 'twenty distinct labs');
    assert.ok(taken.every((h) => poolHandles.has(h)), 'each one a prepared lab');
    assert.ok(started.some((d) => d.state === 'running'));
    assert.equal(backend.provisionCalls, provisioned, 'no lab provisioned for the launches');
    assert.equal(backend.labs.size, labsBefore, 'no lab created or destroyed');
    // the pool records let go of their labs once the students have them
    await waitFor(async () => (await pool(s.id)).every((p) => p.state === 'destroyed'), 5_000, 'every pool record retired');
    const after = await pool(s.id);
    assert.ok(after.every((p) => p.state === 'destroyed' && p.handle === null && p.claimedBy), 'every pool record retired');
    assert.deepEqual(new Set(after.map((p) => p.claimedBy)), new Set(insts.map((i) => i._id)), 'each taken by one student');
    assert.ok(docs.every((d) => d.machines.box?.password), 'the lab\'s own credentials moved with it');
    assert.equal(await w.metric('lab_warm_handed_out_total'), handedBefore + 20);

    // the pool is empty: the next student starts cold
    const late = await w.svc.ensureInstance({ ...keys[0]!, userId: 'warm-student-late' });
    assert.equal((await w.svc.start(late._id)).state, 'provisioning');
    // its lab joins the backend when its provisioning ends: not during the next test, which counts the backend's labs
    await waitFor(async () => (await LabInstance.findById(late._id).lean())?.state === 'running', 10_000, 'the late student\'s cold lab running');
    await WarmSession.updateOne({ _id: s.id }, { $set: { state: 'ended' } });
  });

  it('hands 2 prepared labs still provisioning to 3 launches at once: two take them and see the rest of their progress, one starts cold', async () => {
    const c = await course();
    const handedBefore = await w.metric('lab_warm_handed_out_total');
    backend.phaseMs = 1500; // six seconds to provision
    try {
      const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date().toISOString(), expected: 2 });
      await waitFor(async () => {
        const p = await pool(s.id);
        return p.length === 2 && p.every((x) => x.state === 'provisioning' && (x.progress?.percent ?? 0) >= 10);
      }, 10_000, 'two prepared labs provisioning');
      const poolHandles = new Set((await pool(s.id)).map((p) => p.handle!.name));
      const labsBefore = backend.labs.size;
      const keys = Array.from({ length: 3 }, (_, i) => ({ activityId: c.activityId, userId: `early-student-${i}`, contextId: c.contextId, labId: 'shell-steps', labVersion: c.version }));
      const insts = await Promise.all(keys.map((k) => w.svc.ensureInstance(k)));
      const progress = new Map<string, number[]>(insts.map((i) => [i._id, []]));
      const offs = insts.map((i) => w.svc.subscribe(i._id, (e) => { if (e.type === 'progress') progress.get(i._id)!.push(e.progress.percent); }));
      const started = await Promise.all(insts.map((i) => w.svc.start(i._id)));
      assert.ok(started.every((d) => d.state === 'provisioning'), started.map((d) => d.state).join(','));
      const warm = started.filter((d) => poolHandles.has(d.handle!.name));
      assert.equal(warm.length, 2, 'two launches took the prepared labs');
      assert.equal(new Set(warm.map((d) => d.handle!.name)).size, 2, 'distinct labs');
      assert.ok(warm.every((d) => (d.progress?.percent ?? 0) >= 10), 'their progress so far, not from zero');
      await waitFor(async () => (await LabInstance.find({ _id: { $in: insts.map((i) => i._id) } }).lean()).every((d) => d.state === 'running'), 20_000, 'all three running');
      offs.forEach((off) => off());
      for (const d of warm) {
        const seen = progress.get(d._id)!;
        assert.ok(seen.length > 0 && seen.every((p, k) => p >= d.progress!.percent && (k === 0 || p >= seen[k - 1]!)), `progress only forward: ${seen.join(',')}`);
        assert.equal(seen.at(-1), 100);
      }
      const docs = (await LabInstance.find({ _id: { $in: insts.map((i) => i._id) } }).lean()) as LabInstanceDoc[];
      assert.equal(new Set(docs.map((d) => d.handle!.name)).size, 3, 'never two students on one lab');
      assert.equal(backend.labs.size, labsBefore + 3, 'two prepared labs and one cold one: nothing else created');
      assert.ok(docs.every((d) => backend.labs.has(d.handle!.name)));
      const after = await pool(s.id);
      assert.ok(after.every((p) => p.state === 'destroyed' && p.handle === null), 'both pool records retired');
      assert.deepEqual(new Set(after.map((p) => p.claimedBy)), new Set(warm.map((d) => d._id)), 'each taken by one student');
      assert.equal(await w.metric('lab_warm_handed_out_total'), handedBefore + 2);
      await WarmSession.updateOne({ _id: s.id }, { $set: { state: 'ended' } });
    } finally {
      backend.phaseMs = 20;
    }
  });

  it('finishes a hand-out a crash cut short, or gives the lab back once the student started without it', async () => {
    const c = await course();
    const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date().toISOString(), expected: 2 });
    await waitFor(async () => (await readyCount(s.id)) === 2, 20_000, 'two prepared labs');
    const key = (u: string) => ({ activityId: c.activityId, userId: u, contextId: c.contextId, labId: 'shell-steps', labVersion: c.version });
    const recovery = new WarmPool({ service: w.svc, backend, labs: w.tool.labs, log: createLogger({ level: 'fatal', format: 'json' }), leadMs: 0, stuckClaimMs: 0 });

    // claimed, then "crashed" before the student's record took it: the next pass completes it
    const a = await w.svc.ensureInstance(key('crash-a'));
    const claimedA = (await claimPoolLab(c.activityId, c.version, a._id, a.generation, new Date()))!;
    assert.equal((await w.svc.get(a._id))!.state, 'requested');
    await recovery.pass();
    const aDoc = (await w.svc.get(a._id))!;
    assert.equal(aDoc.state, 'running');
    assert.equal(aDoc.handle?.name, claimedA.handle!.name, 'the student holds the lab they claimed');
    assert.equal((await w.svc.get(claimedA._id))!.state, 'destroyed', 'the pool record let go of it');

    // claimed, but the student's record moved on (a cold start won): the lab goes back to the pool
    const b = await w.svc.ensureInstance(key('crash-b'));
    const claimedB = (await claimPoolLab(c.activityId, c.version, b._id, b.generation, new Date()))!;
    await LabInstance.updateOne({ _id: b._id }, { $set: { state: 'provisioning', generation: b.generation + 1 } });
    await recovery.pass();
    const back = (await w.svc.get(claimedB._id))!;
    assert.equal(back.state, 'running');
    assert.equal(back.claimedBy, null, 'free again');
    assert.ok(backend.labs.has(back.handle!.name), 'its machines kept');
    const other = await w.svc.ensureInstance(key('crash-c'));
    assert.equal((await w.svc.start(other._id)).handle?.name, back.handle!.name, 'and the next student takes it');
    await WarmSession.updateOne({ _id: s.id }, { $set: { state: 'ended' } });
  });

  it('two replicas, each reading the free labs once for its launches, hand 12 labs to 12 of 16 launches: distinct labs, none lost', async () => {
    const c = await course();
    const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date().toISOString(), expected: 12 });
    await waitFor(async () => (await readyCount(s.id)) === 12, 20_000, '12 prepared labs running');
    // each list stands for one replica's launches: both read the same 12 labs, in their own order
    const replicas = [new PoolLabList(), new PoolLabList()];
    const claims = await Promise.all(Array.from({ length: 16 }, (_, i) => claimPoolLab(c.activityId, c.version, `race-taker-${i}`, 0, new Date(), replicas[i % 2]!)));
    const won = claims.filter((x): x is LabInstanceDoc => x !== null);
    assert.equal(won.length, 12, 'every prepared lab claimed');
    assert.equal(new Set(won.map((x) => x._id)).size, 12, 'by one launch each');
    const records = await pool(s.id);
    assert.equal(new Set(records.map((p) => p.claimedBy)).size, 12, 'each record names its one taker');
    assert.equal(await WarmClaim.countDocuments({ pool: { $in: records.map((p) => p._id) } }), 12, 'one claim per lab');
    // a list may still offer a lab the other replica took: its claim is lost, then the list is read again, empty
    assert.equal(await claimPoolLab(c.activityId, c.version, 'race-taker-late', 0, new Date(), replicas[0]!), null, 'nothing left to claim');
    await WarmSession.updateOne({ _id: s.id }, { $set: { state: 'ended' } });
  });

  it('never hands a prepared lab to a record whose next generation a cold start on another replica claimed first', async () => {
    const c = await course();
    const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date().toISOString(), expected: 1 });
    await waitFor(async () => (await readyCount(s.id)) === 1, 20_000, 'one prepared lab');
    const inst = await w.svc.ensureInstance({ activityId: c.activityId, userId: 'race-a', contextId: c.contextId, labId: 'shell-steps', labVersion: c.version });
    // the other replica's start won the next generation and has not written the record yet
    assert.equal(await claimGeneration(inst._id, inst.generation + 1), true);
    assert.equal(await w.svc.warm.take(inst), undefined, 'the hand-out loses to that start');
    const doc = (await w.svc.get(inst._id))!;
    assert.equal(doc.generation, inst.generation, 'the record is left to the start that claimed the generation');
    assert.equal(doc.handle ?? null, null);
    assert.equal(await readyCount(s.id), 1, 'the prepared lab is free again');
    await WarmSession.updateOne({ _id: s.id }, { $set: { state: 'ended' } });
  });

  it('lets only teachers of the course cancel a session: its unused labs go at once, the handed-out one stays the student\'s', async () => {
    const c = await course();
    const waste0 = await w.metric('lab_warm_wasted_total');
    const url = `/api/courses/${encodeURIComponent(c.contextId)}/warm-sessions`;
    const student = await w.launch(c.a, 'student'); // before the session: a launch takes a prepared lab
    const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date().toISOString(), expected: 3 });
    const later = await schedule(c.teacher.session, c.contextId, { startsAt: new Date(Date.now() + 86_400_000).toISOString(), expected: 2 });
    await waitFor(async () => (await readyCount(s.id)) === 3, 20_000, 'three prepared labs');
    const key = (u: string) => ({ activityId: c.activityId, userId: u, contextId: c.contextId, labId: 'shell-steps', labVersion: c.version });
    const mine = await w.svc.start((await w.svc.ensureInstance(key('cancel-student')))._id);
    assert.equal(mine.state, 'running', 'a prepared lab handed out before the cancel');

    const otherTeacher = await w.tool.sessions.issue({ userId: 'u-other', role: 'instructor', contextId: 'c-another-course' });
    assert.equal((await w.api(student.session, 'DELETE', `${url}/${s.id}`)).status, 403, 'a learner is refused');
    assert.equal((await w.api(otherTeacher, 'DELETE', `${url}/${s.id}`)).status, 403, 'a teacher of another course is refused');
    assert.equal((await fetch(`${w.tool.url}${url}/${s.id}`, { method: 'DELETE' })).status, 401);
    assert.equal((await w.api(c.teacher.session, 'DELETE', `${url}/wnosuchsession`)).status, 404);
    assert.equal((await WarmSession.findById(s.id).lean())!.cancelledAt, null, 'not cancelled by them');
    assert.equal(await readyCount(s.id), 2, 'its labs untouched');
    const unused = (await pool(s.id)).filter((p) => !p.claimedBy).map((p) => p.handle!.name);

    const res = await w.api(c.teacher.session, 'DELETE', `${url}/${s.id}`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as SessionView).state, 'cancelled');
    assert.equal((await w.api(c.teacher.session, 'DELETE', `${url}/${s.id}`)).status, 200, 'cancelling again is harmless');
    assert.equal((await w.api(c.teacher.session, 'DELETE', `${url}/${later.id}`)).status, 200, 'a session that has not begun');
    const late = await w.svc.start((await w.svc.ensureInstance(key('cancel-late')))._id);
    assert.ok(!unused.includes(late.handle!.name), 'a launch after the cancel gets no prepared lab of the session');

    await waitFor(async () => unused.every((h) => !backend.labs.has(h)), 10_000, 'the unused labs destroyed');
    await waitFor(async () => (await WarmSession.findById(s.id).lean())?.state === 'ended', 10_000, 'the cancelled session cleaned up');
    assert.ok(backend.labs.has(mine.handle!.name), 'the handed-out lab keeps running');
    assert.equal((await w.svc.get(mine._id))!.state, 'running');
    assert.equal(await w.metric('lab_warm_wasted_total'), waste0 + 2);
    await waitFor(async () => (await WarmSession.findById(later.id).lean())?.state === 'ended', 10_000, 'the later session closed');
    assert.equal((await pool(later.id)).length, 0, 'nothing prepared for a cancelled session');
    const list = (await (await w.api(c.teacher.session, 'GET', url)).json()) as { sessions: SessionView[] };
    const v = list.sessions.find((x) => x.id === s.id)!;
    assert.deepEqual([v.state, v.handedOut, v.wasted, v.ready], ['cancelled', 1, 2, 0]);
    assert.equal(list.sessions.find((x) => x.id === later.id)!.state, 'cancelled');
    // an ended session cannot be cancelled
    const over = await schedule(c.teacher.session, c.contextId, { startsAt: new Date(Date.now() + 86_400_000).toISOString(), expected: 1 });
    await WarmSession.updateOne({ _id: over.id }, { $set: { state: 'ended' } });
    assert.equal((await w.api(c.teacher.session, 'DELETE', `${url}/${over.id}`)).status, 409);
  });

  it('destroys the unused prepared labs after the session ends and counts prepared, handed out and wasted', async () => {
    const c = await course();
    const prep0 = await w.metric('lab_warm_prepared_total');
    const hand0 = await w.metric('lab_warm_handed_out_total');
    const waste0 = await w.metric('lab_warm_wasted_total');
    // a 5-minute session that ends 4 s from now
    const s = await schedule(c.teacher.session, c.contextId, { startsAt: new Date(Date.now() - 5 * 60_000 + 4000).toISOString(), durationMinutes: 5, expected: 3 });
    await waitFor(async () => (await readyCount(s.id)) === 3, 20_000, 'three prepared labs');
    const student = await w.svc.ensureInstance({ activityId: c.activityId, userId: 'wasted-test-student', contextId: c.contextId, labId: 'shell-steps', labVersion: c.version });
    const mine = await w.svc.start(student._id);
    assert.equal(mine.state, 'running');
    const unused = (await pool(s.id)).filter((p) => !p.claimedBy).map((p) => p.handle!.name);
    assert.equal(unused.length, 2);
    await waitFor(async () => (await WarmSession.findById(s.id).lean())?.state === 'ended', 15_000, 'the session ended');
    assert.ok(unused.every((h) => !backend.labs.has(h)), 'the unused labs are destroyed');
    assert.ok(backend.labs.has(mine.handle!.name), 'the student\'s lab keeps running');
    assert.equal((await w.svc.get(student._id))!.state, 'running');
    const list = (await (await w.api(c.teacher.session, 'GET', `/api/courses/${encodeURIComponent(c.contextId)}/warm-sessions`)).json()) as { sessions: SessionView[] };
    const v = list.sessions.find((x) => x.id === s.id)!;
    assert.deepEqual([v.handedOut, v.wasted, v.ready, v.state], [1, 2, 0, 'ended']);
    assert.equal(await w.metric('lab_warm_prepared_total'), prep0 + 3);
    assert.equal(await w.metric('lab_warm_handed_out_total'), hand0 + 1);
    assert.equal(await w.metric('lab_warm_wasted_total'), waste0 + 2);
    // the course overview never lists prepared labs as students
    const ov = (await (await w.api(c.teacher.session, 'GET', `/api/courses/${encodeURIComponent(c.contextId)}/instances`)).json()) as { instances: Array<{ userId: string }> };
    assert.ok(ov.instances.every((i) => !i.userId.startsWith('warm:')));
  });
});
