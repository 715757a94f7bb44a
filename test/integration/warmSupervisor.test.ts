/**
 * The supervisor's clocks and prepared (warm) labs, on a clock the test moves: a prepared lab waits
 * for its student however long that takes (no expiry warning, never stopped or ended at its time
 * limit or for being idle), and the time limit and idle timeout count from the hand-out.
 */
import assert from 'node:assert/strict';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { StaticLabs } from '../support/staticLabs.js';
import { LabService } from '../../src/labs/LabService.js';
import { LabSupervisor, type PassReport } from '../../src/labs/LabSupervisor.js';
import { WarmPool } from '../../src/labs/WarmPool.js';
import type { LabEvent } from '../../src/labs/contracts.js';
import { LabInstance, type LabInstanceDoc } from '../../src/store/LabInstance.js';
import { WarmSession, createWarmSession } from '../../src/store/WarmSession.js';
import { createLogger } from '../../src/logger.js';

const log = createLogger({ level: 'fatal', format: 'json' });
const MIN = 60_000;

describe('supervisor clocks of prepared labs', () => {
  let tool: TestTool;
  let backend: MemoryBackend;
  let svc: LabService;
  let sup: LabSupervisor;
  let warm: WarmPool;
  let now: Date;
  const labs = new StaticLabs([
    // ends at its 10-minute limit, warned 2 minutes before; no idle timeout
    { id: 'limit', machines: [{ name: 'box' }], lifetime: { maxMinutes: 10, warnBeforeMinutes: 2, idleMinutes: 0, pausable: false } },
    // stopped (work kept) after 5 idle minutes
    { id: 'idle', machines: [{ name: 'box' }], lifetime: { maxMinutes: 600, idleMinutes: 5, pausable: true } },
  ]);

  // the tool's own duties pass once at start, before any record exists, and not again during the test
  before(async () => { tool = await startTestTool({ RECONCILE_INTERVAL_MS: '3600000' }); });
  after(async () => { await tool.shutdown(); });
  beforeEach(async () => {
    await Promise.all([LabInstance.deleteMany({}), WarmSession.deleteMany({})]);
    now = new Date();
    backend = new MemoryBackend();
    svc = new LabService({ backend, labs, log, now: () => now, activityWriteMs: 0 });
    sup = new LabSupervisor({ service: svc, backend, labs, log, now: () => now });
    warm = new WarmPool({ service: svc, backend, labs, log, leadMs: 0, now: () => now });
  });
  afterEach(async () => {
    await warm.stop();
    await sup.stop();
    await svc.close();
  });

  /** One prepared lab of `labId` for a new activity's session (10 hours long), running. */
  async function prepared(labId: string): Promise<{ pool: LabInstanceDoc; activityId: string }> {
    const activityId = `act-${labId}-${now.getTime()}`;
    const s = await createWarmSession({ contextId: 'ctx', activityId, labId, startsAt: now, endsAt: new Date(now.getTime() + 600 * MIN), expected: 1, createdBy: 'teacher' });
    assert.equal((await warm.pass()).started.length, 1);
    await waitFor(async () => (await LabInstance.findOne({ warmSession: s._id }).lean())?.state === 'running', 5000, 'prepared lab running');
    const pool = (await LabInstance.findOne({ warmSession: s._id }).lean()) as LabInstanceDoc;
    assert.ok(pool.expiresAt && pool.lastActivityAt, 'the record carries the clocks a cold lab would have');
    return { pool, activityId };
  }

  const quiet = (r: PassReport) => [r.expired, r.stoppedAtLimit, r.warned, r.idled, r.vanished].flat();

  it('never warns, ends or stops a prepared lab at its time limit; the limit counts from the hand-out', async () => {
    const { pool, activityId } = await prepared('limit');
    const events: LabEvent[] = [];
    const off = svc.subscribe(pool._id, (e) => events.push(e));
    for (const at of [9, 11, 180]) {
      now = new Date(pool.startedAt!.getTime() + at * MIN);
      assert.deepEqual(quiet(await sup.pass()), [], `nothing done to the prepared lab ${at} min after it started`);
    }
    off();
    assert.deepEqual(events.filter((e) => e.type === 'expiry-warning' || e.type === 'state'), [], 'no expiry warning, no state change');
    const still = (await svc.get(pool._id))!;
    assert.equal(still.state, 'running');
    assert.equal(still.warnedAt, null);
    assert.equal(backend.labs.get(pool.handle!.name)?.phase, 'running');

    // three hours after it was prepared, a student launches and takes it
    const handedAt = now;
    const student = await svc.ensureInstance({ activityId, userId: 'student-limit', contextId: 'ctx', labId: 'limit', labVersion: '1' });
    const mine = await svc.start(student._id);
    assert.equal(mine.handle?.name, pool.handle!.name, 'the prepared lab');
    assert.equal(mine.state, 'running');
    assert.equal(mine.startedAt?.getTime(), handedAt.getTime());
    assert.equal(mine.expiresAt?.getTime(), handedAt.getTime() + 10 * MIN, 'its own 10 minutes from the hand-out');
    const mineEvents: LabEvent[] = [];
    const offMine = svc.subscribe(mine._id, (e) => mineEvents.push(e));
    now = new Date(handedAt.getTime() + 7 * MIN);
    assert.deepEqual(quiet(await sup.pass()), []);
    now = new Date(handedAt.getTime() + 8 * MIN);
    assert.deepEqual((await sup.pass()).warned, [mine._id], 'warned 2 minutes before its limit');
    assert.ok(mineEvents.some((e) => e.type === 'expiry-warning' && e.expiresAt === mine.expiresAt!.toISOString()));
    now = new Date(handedAt.getTime() + 10 * MIN);
    assert.deepEqual((await sup.pass()).expired, [mine._id], 'ended at its limit');
    offMine();
    assert.equal((await svc.get(mine._id))!.state, 'expired');
    assert.equal(backend.labs.has(pool.handle!.name), false);
  });

  it('never stops a prepared lab for being idle; the idle timeout counts from the hand-out', async () => {
    const { pool, activityId } = await prepared('idle');
    for (const at of [6, 120, 599]) {
      now = new Date(pool.startedAt!.getTime() + at * MIN);
      assert.deepEqual(quiet(await sup.pass()), [], `nothing done to the prepared lab idle for ${at} min`);
    }
    assert.equal((await svc.get(pool._id))!.state, 'running');
    assert.equal(backend.labs.get(pool.handle!.name)?.phase, 'running');

    const handedAt = now;
    const student = await svc.ensureInstance({ activityId, userId: 'student-idle', contextId: 'ctx', labId: 'idle', labVersion: '1' });
    const mine = await svc.start(student._id);
    assert.equal(mine.handle?.name, pool.handle!.name, 'the prepared lab');
    assert.equal(mine.lastActivityAt?.getTime(), handedAt.getTime());
    now = new Date(handedAt.getTime() + 4 * MIN);
    assert.deepEqual(quiet(await sup.pass()), [], 'not idle 4 minutes after the hand-out');
    now = new Date(handedAt.getTime() + 5 * MIN);
    assert.deepEqual((await sup.pass()).idled, [mine._id], 'idle 5 minutes after the hand-out');
    assert.equal((await svc.get(mine._id))!.state, 'stopped', 'stopped, its work kept');
    assert.equal(backend.labs.get(pool.handle!.name)?.phase, 'stopped');
  });
});
