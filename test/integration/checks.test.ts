import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { StaticLabs } from '../support/staticLabs.js';
import { LabService } from '../../src/labs/LabService.js';
import type { LabEvent, ResolvedCheck } from '../../src/labs/contracts.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { CheckResult } from '../../src/store/CheckResult.js';
import { CheckRunLock } from '../../src/store/CheckRunLock.js';
import { CheckRunner } from '../../src/labs/checks/CheckRunner.js';
import { Conflict } from '../../src/errors.js';
import { GradeOutbox } from '../../src/store/GradeOutbox.js';
import { SessionTokens, type SessionClaims } from '../../src/auth/session.js';
import { createLogger } from '../../src/logger.js';

const SECRET_KEY = 'checks-test-secret-key-0123456789abcdef0123';
const log = createLogger({ level: 'fatal', format: 'json' });
const check = (index: number, command: string, o: Partial<ResolvedCheck> = {}): ResolvedCheck => ({ index, machine: 'box', command, timeoutSeconds: 5, weight: 1, ...o });

describe('automatic checks: runner and API (real FerretDB, real HTTP, a local-shell stand-in backend)', () => {
  let tool: TestTool;
  let backend: MemoryBackend;
  let svc: LabService;
  const sessions = new SessionTokens(SECRET_KEY);
  let n = 0;
  const labs = new StaticLabs([
    {
      id: 'files',
      machines: [{ name: 'box' }],
      checks: {
        mode: 'checks', maxScore: 10,
        steps: [
          { stepId: 'make-file', checks: [check(0, 'test -f notes.txt', { hint: 'Create notes.txt as {{machines.box.username}} in {{lab.title}}.' })] },
          { stepId: 'write-hello', checks: [check(0, 'grep -q hello notes.txt', { hint: 'Write hello into notes.txt.', weight: 1.5 }), check(1, 'test -s notes.txt', { weight: 1.5 })] },
          { stepId: 'hang', checks: [check(0, 'sleep 30', { timeoutSeconds: 1, hint: 'This one hangs.' })] },
          { stepId: 'flood', checks: [check(0, 'head -c 5000000 /dev/zero | tr "\\0" y; exit 1', { hint: 'Too much.' })] },
        ],
      },
    },
    {
      id: 'named',
      machines: [{ name: 'box' }],
      checks: {
        mode: 'checks', maxScore: 1,
        steps: [{ stepId: 'sign', checks: [check(0, 'grep -qx "{{user.name}}" owner.txt', { hint: 'Write {{user.name}} into owner.txt.' }), check(1, "test \"$(cat owner.txt)\" = '{{user.name}}'")] }],
      },
    },
    {
      id: 'watched',
      machines: [{ name: 'box' }],
      checks: { mode: 'checks', maxScore: 1, checkEverySeconds: 1, steps: [{ stepId: 'flag', checks: [check(0, 'test -f flag')] }] },
    },
  ]);

  before(async () => {
    backend = new MemoryBackend();
    svc = new LabService({ backend, labs, log, activityWriteMs: 0 });
    tool = await startTestTool({ SECRET_KEY, CHECK_RATE_PER_MINUTE: '6', RATE_CHECK_PER_PLATFORM: '4', CHECK_BACKGROUND_TICK_MS: '200' }, { runtime: svc, labs });
    tool.grades.use({ targets: { targetFor: async (id) => ({ issuer: 'https://lms.example', clientId: 'c1', lineItemUrl: `https://lms.example/li/${id}`, userSub: `sub-${id}` }) } });
  });
  after(async () => {
    await tool.shutdown();
    await svc.close();
  });

  async function lab(labId = 'files', who: Partial<SessionClaims> = {}) {
    const userId = who.userId ?? `student-${++n}`;
    const inst = await svc.ensureInstance({ activityId: `act-${n}-${labId}`, userId, contextId: 'course-1', labId, labVersion: '1' });
    await svc.start(inst._id);
    await waitFor(async () => (await svc.get(inst._id))?.state === 'running', 5000, 'lab running');
    const doc = (await svc.get(inst._id))!;
    const token = await sessions.issue({ userId, role: 'learner', contextId: 'course-1', name: 'Ada', ...who });
    const dir = backend.machineDir(doc.handle!, 'box');
    return { inst: doc, token, dir };
  }

  async function api(method: string, p: string, token: string): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const res = await fetch(`${tool.url}${p}`, { method, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
  }
  const press = (id: string, step: string, token: string) => api('POST', `/api/instances/${id}/steps/${step}/check`, token);

  it('fails with the templated hint, passes after the student acts, pushes both live and grades on the server', async () => {
    const { inst, token, dir } = await lab();
    const events: LabEvent[] = [];
    svc.subscribe(inst._id, (e) => { if (e.type === 'check') events.push(e); });

    const r1 = await press(inst._id, 'make-file', token);
    assert.equal(r1.status, 200);
    assert.equal(r1.body.passed, false);
    const c1 = (r1.body.checks as Array<Record<string, unknown>>)[0]!;
    assert.equal(c1.hint, `Create notes.txt as ${inst.machines.box?.username} in files.`);
    assert.equal(c1.output, undefined, 'the student never sees the output');
    assert.equal(events.length, 1);
    assert.equal(events[0]?.type === 'check' && events[0].hint, c1.hint);
    assert.equal(await GradeOutbox.countDocuments({ instanceId: inst._id }), 0, 'nothing passed: no score sent');

    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hi\n');
    const r2 = await press(inst._id, 'make-file', token);
    assert.equal(r2.body.passed, true);
    assert.deepEqual(r2.body.score, { given: 1.667, max: 10, complete: false });
    const e2 = events[1];
    assert.ok(e2?.type === 'check' && e2.passed && e2.hint === undefined);
    assert.ok((await svc.get(inst._id))?.steps?.['make-file'], 'a passed step is ticked by the server');
    assert.equal((await svc.get(inst._id))?.steps?.['write-hello'], undefined);
    let out = await GradeOutbox.find({ instanceId: inst._id }).sort({ timestamp: 1 }).lean();
    assert.deepEqual(out.map((o) => o.score), [{ scoreGiven: 1.667, scoreMaximum: 10, activityProgress: 'InProgress', gradingProgress: 'FullyGraded' }]);

    // one of two checks of a step: the step is not passed, the passed check counts its share
    const r3 = await press(inst._id, 'write-hello', token);
    assert.equal(r3.body.passed, false);
    assert.deepEqual((r3.body.checks as Array<{ passed: boolean; hint?: string }>).map((c) => [c.passed, c.hint]), [[false, 'Write hello into notes.txt.'], [true, undefined]]);
    assert.deepEqual(r3.body.score, { given: 4.167, max: 10, complete: false });

    // a passed check keeps counting when its condition is undone later
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello\n');
    await press(inst._id, 'write-hello', token);
    fs.rmSync(path.join(dir, 'notes.txt'));
    const r5 = await press(inst._id, 'make-file', token);
    assert.equal(r5.body.passed, false);
    assert.deepEqual(r5.body.score, { given: 6.667, max: 10, complete: false });
    out = await GradeOutbox.find({ instanceId: inst._id }).sort({ timestamp: 1 }).lean();
    assert.deepEqual(out.map((o) => o.score.scoreGiven), [1.667, 4.167, 6.667], 'a score is queued only when it changes');

    const view = await api('GET', `/api/instances/${inst._id}/checks`, token);
    assert.equal(view.status, 200);
    const steps = view.body.steps as Record<string, { passed: boolean; checks: Array<Record<string, unknown>> }>;
    assert.equal(steps['make-file']?.passed, false);
    assert.ok(steps['make-file']?.checks[0]?.passedAt, 'first pass kept');
    assert.equal(steps['make-file']?.checks[0]?.output, undefined);
    assert.deepEqual(view.body.score, { given: 6.667, max: 10, complete: false, passed: 3, total: 5 });
    const metrics = await tool.metrics.registry.getSingleMetricAsString('lab_check_runs_total');
    assert.match(metrics, /result="passed"/);
    assert.match(metrics, /result="failed"/);
  });

  it('publishes Completed/FullyGraded when every check has passed', async () => {
    const { inst, token, dir } = await lab();
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello\n');
    await press(inst._id, 'make-file', token);
    await press(inst._id, 'write-hello', token);
    for (const f of ['hang', 'flood']) assert.equal((await press(inst._id, f, token)).body.passed, false);
    // the two failing steps are fixtures of the other tests; mark them passed in the store, then let a real pass complete the lab
    await CheckResult.updateMany({ instanceId: inst._id, stepId: { $in: ['hang', 'flood'] } }, { $set: { passedAt: new Date() } });
    await CheckResult.updateMany({ instanceId: inst._id, stepId: 'make-file' }, { $set: { passedAt: null } });
    const r = await press(inst._id, 'make-file', token);
    assert.deepEqual(r.body.score, { given: 10, max: 10, complete: true });
    const last = await GradeOutbox.findOne({ instanceId: inst._id }).sort({ timestamp: -1 }).lean();
    assert.deepEqual(last?.score, { scoreGiven: 10, scoreMaximum: 10, activityProgress: 'Completed', gradingProgress: 'FullyGraded' });
  });

  it('stops a hung check at its timeout and reports it as failed with "timed out"', async () => {
    const { inst, token } = await lab();
    const t0 = Date.now();
    const r = await press(inst._id, 'hang', token);
    const ms = Date.now() - t0;
    assert.ok(ms >= 900 && ms < 4000, `took ${ms} ms`);
    const c = (r.body.checks as Array<Record<string, unknown>>)[0]!;
    assert.equal(c.passed, false);
    assert.equal(c.timedOut, true);
    assert.equal(c.hint, 'This one hangs.');
    const row = await CheckResult.findOne({ instanceId: inst._id, stepId: 'hang' }).lean();
    assert.match(row?.output ?? '', /^timed out after 1 s/);
    assert.match(await tool.metrics.registry.getSingleMetricAsString('lab_check_runs_total'), /result="timed_out"} [1-9]/);
  });

  it('cuts megabytes of output: the backend is asked for 64 KiB, the teacher gets a 4 KiB excerpt', async () => {
    const { inst, token } = await lab();
    const r = await press(inst._id, 'flood', token);
    assert.equal(r.body.passed, false);
    assert.equal(backend.execCalls.at(-1)?.opts.maxOutputBytes, 65536);
    const row = await CheckResult.findOne({ instanceId: inst._id, stepId: 'flood' }).lean();
    assert.ok(row);
    assert.ok(Buffer.byteLength(row.output) <= 4096 + 20, `excerpt is ${Buffer.byteLength(row.output)} bytes`);
    assert.match(row.output, /\[output cut\]$/);
    assert.equal(row.exitCode, 1);
  });

  it('refuses another student, lets the teacher of the course read results with output but not run checks', async () => {
    const { inst, token } = await lab();
    await press(inst._id, 'make-file', token);
    const other = await sessions.issue({ userId: 'mallory', role: 'learner', contextId: 'course-1' });
    const before = backend.execCalls.length;
    const r = await press(inst._id, 'make-file', other);
    assert.equal(r.status, 403);
    assert.equal(r.body.error, 'This is not your lab.');
    assert.equal((await api('GET', `/api/instances/${inst._id}/checks`, other)).status, 403);
    const teacher = await sessions.issue({ userId: 'prof', role: 'instructor', contextId: 'course-1' });
    const t = await press(inst._id, 'make-file', teacher);
    assert.equal(t.status, 403);
    assert.equal(backend.execCalls.length, before, 'nothing ran for a refused request');
    const view = await api('GET', `/api/instances/${inst._id}/checks`, teacher);
    assert.equal(view.status, 200);
    const c = (view.body.steps as Record<string, { checks: Array<Record<string, unknown>> }>)['make-file']?.checks[0];
    assert.equal(c?.exitCode, 1);
    assert.equal(typeof c?.output, 'string');
    const otherCourse = await sessions.issue({ userId: 'prof2', role: 'instructor', contextId: 'course-2' });
    assert.equal((await api('GET', `/api/instances/${inst._id}/checks`, otherCourse)).status, 403);
    assert.equal((await press(inst._id, 'no-such-step', token)).status, 404);
  });

  it('joins concurrent presses of one step, never overlaps runs of one instance, and rate-limits the user with 429', async () => {
    const { inst, token } = await lab();
    const before = backend.execCalls.length;
    backend.maxConcurrentExec = 0;
    const same = await Promise.all(Array.from({ length: 5 }, () => press(inst._id, 'hang', token)));
    assert.deepEqual(same.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(new Set(same.map((r) => r.body.at)).size, 1, 'one run, five answers');
    assert.equal(backend.execCalls.length - before, 1);
    const [a, b] = await Promise.all([press(inst._id, 'make-file', token), press(inst._id, 'write-hello', token)]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(backend.maxConcurrentExec, 1, 'runs of one instance are serialized');
    // 3 counted so far (the joined presses were free); the limit is 6 per minute
    for (let i = 0; i < 3; i++) assert.equal((await press(inst._id, 'make-file', token)).status, 200);
    const limited = await press(inst._id, 'make-file', token);
    assert.equal(limited.status, 429);
    assert.match(String(limited.body.error), /^Too many checks: at most 6 per 60 s\. Try again in \d+ s\.$/);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  });

  it('rate-limits the check presses of one platform\'s students together (429 + Retry-After); another platform is not affected', async () => {
    const labsA = await Promise.all([1, 2, 3, 4, 5].map(() => lab('files', { platformId: 'platform-a' })));
    for (const l of labsA.slice(0, 4)) assert.equal((await press(l.inst._id, 'make-file', l.token)).status, 200);
    const limited = await press(labsA[4]!.inst._id, 'make-file', labsA[4]!.token);
    assert.equal(limited.status, 429);
    assert.match(String(limited.body.error), /^Too many checks from this platform: at most 4 a minute\. Try again in \d+ s\.$/);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    const other = await lab('files', { platformId: 'platform-b' });
    assert.equal((await press(other.inst._id, 'make-file', other.token)).status, 200);
  });

  it('compares a hostile LMS name as data: it runs nothing and cannot fake the check', async () => {
    const name = 'x" owner.txt ; touch INJ ; echo "';
    const { inst, token, dir } = await lab('named', { name });
    const r1 = await press(inst._id, 'sign', token);
    assert.equal(r1.status, 200);
    assert.equal(r1.body.passed, false, 'the name does not make the check pass');
    assert.equal((r1.body.checks as Array<{ hint?: string }>)[0]?.hint, `Write ${name} into owner.txt.`);
    assert.equal(fs.existsSync(path.join(dir, 'INJ')), false, 'the name ran as code');
    const call = backend.execCalls.at(-1)!;
    assert.ok(!call.command.includes(name) && !call.command.includes('touch'), `the command carries the name: ${call.command}`);
    assert.equal(call.opts.env?.LAB_USER_NAME, name);
    fs.writeFileSync(path.join(dir, 'owner.txt'), `${name}\n`);
    const r2 = await press(inst._id, 'sign', token);
    assert.equal(r2.body.passed, true, JSON.stringify(r2.body));
    assert.equal(fs.existsSync(path.join(dir, 'INJ')), false);
  });

  it('runs one check at a time per lab across replicas (a lock row), and takes over a lock left by a crashed process', async () => {
    const { inst, token } = await lab();
    const replica = new CheckRunner({ runtime: svc, labs, log });
    const slow = press(inst._id, 'hang', token);
    await waitFor(async () => (await CheckRunLock.countDocuments({ _id: inst._id })) === 1, 2000, 'the lock taken');
    await assert.rejects(replica.run(inst._id, 'make-file', { userId: 'replica-user' }), (e: unknown) => e instanceof Conflict && /already running/.test(e.publicMessage));
    assert.equal((await slow).status, 200);
    assert.equal(await CheckRunLock.countDocuments({ _id: inst._id }), 0, 'released');
    await CheckRunLock.create({ _id: inst._id, owner: 'crashed', expiresAt: new Date(Date.now() - 1000) });
    assert.equal((await replica.run(inst._id, 'make-file', { userId: 'replica-user' })).passed, false);
    await replica.close();
  });

  it('refuses to check a lab that is not running', async () => {
    const { inst, token } = await lab();
    await svc.stop(inst._id);
    const r = await press(inst._id, 'make-file', token);
    assert.equal(r.status, 409);
    assert.match(String(r.body.error), /not running/);
  });

  it('runs the checks in the background when the lab asks for it and pushes the result', async function () {
    this.timeout(20_000);
    const { inst, dir } = await lab('watched');
    const events: LabEvent[] = [];
    const ticks: LabEvent[] = [];
    svc.subscribe(inst._id, (e) => { if (e.type === 'check') events.push(e); else if (e.type === 'steps') ticks.push(e); });
    await waitFor(() => events.length >= 1, 8000, 'a background check');
    assert.equal(events[0]?.type === 'check' && events[0].passed, false);
    fs.writeFileSync(path.join(dir, 'flag'), '');
    await waitFor(() => events.some((e) => e.type === 'check' && e.passed), 8000, 'a passing background check');
    const last = await GradeOutbox.findOne({ instanceId: inst._id }).sort({ timestamp: -1 }).lean();
    assert.equal(last?.score.activityProgress, 'Completed');
    // no page was open: the server ticked the passed step and pushed the ticks
    assert.ok((await svc.get(inst._id))?.steps?.flag, 'the passed step is ticked');
    assert.deepEqual(ticks.map((e) => e.type === 'steps' && Object.keys(e.steps)), [['flag']]);
    // passed: nothing more runs for it
    const runs = backend.execCalls.filter((c) => c.lab === inst.handle?.name).length;
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(backend.execCalls.filter((c) => c.lab === inst.handle?.name).length, runs);
    await LabInstance.updateOne({ _id: inst._id }, { $set: { state: 'stopped' } });
  });

  it('runs no background checks on a prepared (warm) lab before it is handed out; they start, and its clocks, at the hand-out', async function () {
    this.timeout(20_000);
    const activityId = `act-warm-${++n}`;
    const pool = await svc.ensureInstance({ activityId, userId: 'warm:wchecks:0', contextId: 'course-1', labId: 'watched', labVersion: '1' });
    await LabInstance.updateOne({ _id: pool._id }, { $set: { warmSession: 'wchecks', claimedBy: null } });
    await svc.start(pool._id);
    await waitFor(async () => (await svc.get(pool._id))?.state === 'running', 5000, 'the prepared lab running');
    const handle = (await svc.get(pool._id))!.handle!.name;
    await new Promise((r) => setTimeout(r, 2500)); // more than two background periods of this lab
    assert.equal(backend.execCalls.filter((c) => c.lab === handle).length, 0, 'no check ran on the prepared lab');
    assert.equal(await CheckResult.countDocuments({ instanceId: pool._id }), 0);

    const student = await svc.ensureInstance({ activityId, userId: `student-${++n}`, contextId: 'course-1', labId: 'watched', labVersion: '1' });
    const handedAt = Date.now();
    const mine = await svc.start(student._id);
    assert.equal(mine.handle?.name, handle, 'the student took the prepared lab');
    assert.ok(mine.startedAt!.getTime() >= handedAt && mine.lastActivityAt!.getTime() >= handedAt, 'its clocks start at the hand-out');
    assert.ok(mine.expiresAt!.getTime() >= handedAt + mine.lifetime!.maxMinutes * 60_000, 'the whole time limit from the hand-out');
    await waitFor(() => backend.execCalls.some((c) => c.lab === handle), 8000, 'background checks once handed out');
    await LabInstance.updateOne({ _id: student._id }, { $set: { state: 'stopped' } });
  });
});
