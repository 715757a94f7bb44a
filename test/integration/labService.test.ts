import assert from 'node:assert/strict';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { StaticLabs } from '../support/staticLabs.js';
import { LabService } from '../../src/labs/LabService.js';
import { LabSupervisor } from '../../src/labs/LabSupervisor.js';
import type { LabEvent } from '../../src/labs/contracts.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { BackendFailure } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { DAY_MS } from '../../src/labs/retention.js';

const log = createLogger({ level: 'fatal', format: 'json' });
let n = 0;
const key = (labId = 'one') => ({ activityId: `act-${++n}`, userId: `user-${n}`, contextId: 'ctx', labId, labVersion: '1' });

describe('LabService life cycle', () => {
  let tool: TestTool;
  let backend: MemoryBackend;
  let svc: LabService;
  const labs = new StaticLabs([
    { id: 'one', machines: [{ name: 'box' }] },
    { id: 'two', machines: [{ name: 'alpha' }, { name: 'beta' }] },
    { id: 'short', machines: [{ name: 'box' }], lifetime: { maxMinutes: 10, warnBeforeMinutes: 2, idleMinutes: 0, pausable: false } },
    { id: 'short-keep', machines: [{ name: 'box', diskGiB: 4 }, { name: 'side', kind: 'container' }], lifetime: { maxMinutes: 10, warnBeforeMinutes: 2, idleMinutes: 0, keepDays: 3 } },
    { id: 'idle', machines: [{ name: 'box' }], lifetime: { idleMinutes: 5, pausable: true } },
    { id: 'idle-nopause', machines: [{ name: 'box' }], lifetime: { idleMinutes: 5, pausable: false } },
  ]);

  before(async () => { tool = await startTestTool(); });
  after(async () => { await tool.shutdown(); });
  beforeEach(async () => {
    await LabInstance.deleteMany({});
    backend = new MemoryBackend();
    svc = new LabService({ backend, labs, log, capacityRetryMs: 60_000, activityWriteMs: 0 });
  });
  afterEach(async () => { await svc.close(); });

  function near(d: Date | null | undefined, ms: number, what: string): void {
    assert.ok(d && Math.abs(d.getTime() - ms) < 10_000, `${what}: ${d?.toISOString()} vs ${new Date(ms).toISOString()}`);
  }

  async function running(id: string) {
    await waitFor(async () => (await svc.get(id))?.state === 'running', 5000, `instance ${id} running`);
    return (await svc.get(id))!;
  }

  it('provisions once under 20 concurrent starts and reports every phase in order', async () => {
    const inst = await svc.ensureInstance(key('two'));
    const events: LabEvent[] = [];
    svc.subscribe(inst._id, (e) => events.push(e));
    await Promise.all(Array.from({ length: 20 }, () => svc.start(inst._id)));
    const doc = await running(inst._id);
    assert.equal(backend.provisionCalls, 1);
    assert.equal(backend.labs.size, 1);
    assert.equal(doc.generation, 1);
    assert.equal(doc.handle?.name, `lab-${inst._id}-g1`);
    assert.ok(doc.expiresAt && doc.startedAt, 'expiry and start time set');
    assert.deepEqual(Object.keys(doc.machines).sort(), ['alpha', 'beta']);
    const phases = events.filter((e) => e.type === 'progress').map((e) => (e.type === 'progress' ? e.progress.phase : ''));
    assert.deepEqual(phases, ['network', 'disks', 'machines-starting', 'machines-booted']);
    const states = events.filter((e) => e.type === 'state').map((e) => (e.type === 'state' ? e.state : ''));
    assert.deepEqual(states, ['provisioning', 'running']);
  });

  it('fills each machine\'s address and host name from what the backend reports once the lab runs', async () => {
    const inst = await svc.ensureInstance(key('two'));
    await svc.start(inst._id);
    const doc = await running(inst._id);
    assert.deepEqual([doc.machines.alpha?.ip, doc.machines.alpha?.host, doc.machines.beta?.ip, doc.machines.beta?.host], ['10.244.7.20', 'alpha.lab.svc', '10.244.7.21', 'beta.lab.svc']);
    assert.ok(doc.machines.alpha?.password, 'credentials kept');
  });

  it('persists the handle before provisioning and keeps credentials across restarts', async () => {
    backend.phaseMs = 50;
    const inst = await svc.ensureInstance(key());
    await svc.start(inst._id);
    const during = await LabInstance.findById(inst._id).lean();
    assert.equal(during?.state, 'provisioning');
    assert.equal(during?.handle?.name, `lab-${inst._id}-g1`);
    const first = await running(inst._id);
    await svc.destroy(inst._id);
    await svc.start(inst._id);
    const second = await running(inst._id);
    assert.equal(second.generation, 2);
    assert.equal(second.handle?.name, `lab-${inst._id}-g2`);
    assert.deepEqual(second.machines, first.machines, 'credentials of the instance survive a relaunch');
  });

  it('caps the lab\'s maximum duration with the teacher\'s activity time limit, never extends it', async () => {
    const short = await svc.ensureInstance({ ...key(), timeLimitMinutes: 5 });
    const long = await svc.ensureInstance({ ...key(), timeLimitMinutes: 600 });
    await Promise.all([svc.start(short._id), svc.start(long._id)]);
    const [a, b] = [await running(short._id), await running(long._id)];
    assert.equal(a.lifetime?.maxMinutes, 5);
    assert.ok(Math.abs(a.expiresAt!.getTime() - a.startedAt!.getTime() - 5 * 60_000) < 5000, 'expires 5 min after start');
    assert.equal(b.lifetime?.maxMinutes, 60, 'the lab\'s own maximum (60) stays when the activity allows more');
  });

  it('fails with the backend reason and cleans up, and starts again with the next generation', async () => {
    backend.failNext = new BackendFailure('boom', { publicMessage: 'The disk image is missing.' });
    const inst = await svc.ensureInstance(key());
    await svc.start(inst._id);
    await waitFor(async () => (await svc.get(inst._id))?.state === 'failed', 5000, 'failed');
    const failed = (await svc.get(inst._id))!;
    assert.equal(failed.failureReason, 'The disk image is missing.');
    assert.equal(backend.labs.size, 0);
    await svc.start(inst._id);
    const ok = await running(inst._id);
    assert.equal(ok.generation, 2);
    assert.equal(ok.failureReason, null);
  });

  it('pauses, resumes, stops and starts again keeping the same generation; a stop keeps the work for the keep days, continuing starts a new sitting', async () => {
    const inst = await svc.ensureInstance(key());
    await svc.start(inst._id);
    const r = await running(inst._id);
    await svc.pause(inst._id);
    assert.equal((await svc.get(inst._id))?.state, 'paused');
    assert.equal(backend.labs.get(r.handle!.name)?.phase, 'paused');
    await svc.pause(inst._id); // idempotent
    await svc.resume(inst._id);
    assert.equal((await svc.get(inst._id))?.state, 'running');
    await svc.stop(inst._id);
    const stopped = (await svc.get(inst._id))!;
    assert.equal(stopped.state, 'stopped');
    near(stopped.expiresAt, Date.now() + 7 * DAY_MS, 'kept the lab\'s default 7 days from the stop');
    assert.equal(stopped.storageGiB, 10, 'one VM, the default disk size');
    await svc.start(inst._id);
    const again = await running(inst._id);
    assert.equal(again.generation, 1);
    assert.deepEqual(again.startedAt, r.startedAt, 'the lab\'s first start stays');
    near(again.expiresAt, Date.now() + 60 * 60_000, 'the continued sitting has the whole time limit again');
    await assert.rejects(svc.resume(inst._id).then(() => svc.stop(inst._id)).then(() => svc.pause(inst._id)), /cannot pause/);
  });

  it('refuses channels to a lab that is not running, with a message for the page', async () => {
    const inst = await svc.ensureInstance(key());
    await assert.rejects(svc.openChannel(inst._id, 'box', 'console'), (e: Error & { publicMessage?: string }) => /not running/.test(e.publicMessage ?? ''));
    await svc.start(inst._id);
    await running(inst._id);
    const ch = await svc.openChannel(inst._id, 'box', 'console');
    ch.destroy();
  });

  it('queues a lab over capacity with its position and starts it when another lab is destroyed', async () => {
    backend.maxLabs = 1;
    const a = await svc.ensureInstance(key());
    const b = await svc.ensureInstance(key());
    await svc.start(a._id);
    await running(a._id);
    const events: LabEvent[] = [];
    svc.subscribe(b._id, (e) => events.push(e));
    await svc.start(b._id);
    await waitFor(() => svc.queue.position(b._id) === 1, 5000, 'queued');
    const queued = events.find((e) => e.type === 'progress' && e.progress.phase === 'queued');
    assert.ok(queued && queued.type === 'progress' && /number 1 in the queue/.test(queued.progress.message));
    assert.equal((await svc.get(b._id))?.state, 'provisioning');
    assert.equal(backend.labs.size, 1, 'nothing half-started');
    await svc.destroy(a._id);
    await running(b._id);
    assert.equal(svc.queue.length, 0);
  });

  it('expires a lab at its time limit, warning before', async () => {
    let now = new Date();
    svc = new LabService({ backend, labs, log, now: () => now });
    const sup = new LabSupervisor({ service: svc, backend, labs, log, now: () => now });
    const inst = await svc.ensureInstance(key('short'));
    await svc.start(inst._id);
    await running(inst._id);
    const events: LabEvent[] = [];
    svc.subscribe(inst._id, (e) => events.push(e));
    now = new Date(now.getTime() + 9 * 60_000);
    const r1 = await sup.pass();
    assert.deepEqual(r1.warned, [inst._id]);
    assert.deepEqual((await sup.pass()).warned, [], 'warned once');
    assert.ok(events.some((e) => e.type === 'expiry-warning'));
    now = new Date(now.getTime() + 2 * 60_000);
    const r2 = await sup.pass();
    assert.deepEqual(r2.expired, [inst._id]);
    const doc = await svc.get(inst._id);
    assert.equal(doc?.state, 'expired');
    assert.equal(backend.labs.size, 0);
  });

  it('stops a lab that may pause at its time limit, keeping its work; deletes it after its keep days, warning before', async () => {
    let now = new Date();
    svc = new LabService({ backend, labs, log, now: () => now, retention: { maxKeepDays: 30, warnDays: 1 } });
    const sup = new LabSupervisor({ service: svc, backend, labs, log, now: () => now });
    const inst = await svc.ensureInstance(key('short-keep'));
    await svc.start(inst._id);
    const r = await running(inst._id);
    assert.equal(r.storageGiB, 4, 'the VM\'s own disk size; the container keeps none');
    const events: LabEvent[] = [];
    svc.subscribe(inst._id, (e) => events.push(e));
    now = new Date(now.getTime() + 10 * 60_000);
    const limit = await sup.pass();
    assert.deepEqual([limit.stoppedAtLimit, limit.expired], [[inst._id], []]);
    const stopped = (await svc.get(inst._id))!;
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.expiresAt?.getTime(), now.getTime() + 3 * DAY_MS, 'kept the lab\'s 3 days');
    assert.equal(backend.labs.get(r.handle!.name)?.phase, 'stopped', 'machines off, disks kept');
    // one day before deletion the student is told, once
    now = new Date(now.getTime() + 2 * DAY_MS - 60_000);
    assert.deepEqual((await sup.pass()).warned, []);
    now = new Date(now.getTime() + 60_000);
    assert.deepEqual((await sup.pass()).warned, [inst._id]);
    assert.deepEqual((await sup.pass()).warned, [], 'warned once');
    assert.ok(events.some((e) => e.type === 'expiry-warning' && e.expiresAt === stopped.expiresAt!.toISOString()));
    now = new Date(now.getTime() + DAY_MS);
    const gone = await sup.pass();
    assert.deepEqual(gone.expired, [inst._id]);
    const doc = (await svc.get(inst._id))!;
    assert.equal(doc.state, 'expired');
    assert.equal(doc.failureReason, 'The lab was kept stopped for 3 days; its disks were deleted.');
    assert.equal(backend.labs.size, 0, 'its disks are deleted, nothing else');
  });

  it('keeps a stopped lab for the teacher\'s days, at most the operator\'s, and refuses a stop past the total for stopped labs', async () => {
    svc = new LabService({ backend, labs, log, retention: { maxKeepDays: 10, warnDays: 2, maxStoppedStorageGiB: 25 } });
    const a = await svc.ensureInstance({ ...key(), keepDays: 2 });
    const b = await svc.ensureInstance({ ...key(), keepDays: 60 });
    const c = await svc.ensureInstance(key());
    await Promise.all([a, b, c].map((i) => svc.start(i._id)));
    await Promise.all([a, b, c].map((i) => running(i._id)));
    await svc.stop(a._id);
    near((await svc.get(a._id))!.expiresAt, Date.now() + 2 * DAY_MS, 'the teacher\'s 2 days');
    await svc.stop(b._id);
    near((await svc.get(b._id))!.expiresAt, Date.now() + 10 * DAY_MS, 'the operator\'s 10, not the teacher\'s 60');
    // 20 GiB kept; 10 more would pass the 25 allowed
    await assert.rejects(svc.stop(c._id), (e: Error & { publicMessage?: string }) => e.publicMessage === 'Stopped labs on this server already keep 20 GiB of the 25 GiB allowed, and this lab needs 10 GiB. Keep it running and finish it, or ask your teacher.');
    assert.equal((await svc.get(c._id))?.state, 'running', 'the refused lab keeps running');
    await svc.start(a._id);
    await running(a._id);
    await svc.stop(c._id);
    assert.equal((await svc.get(c._id))?.state, 'stopped', 'fits once another continued');
  });

  it('stops an idle pausable lab and expires an idle lab that may not pause; input keeps it alive', async () => {
    let now = new Date();
    svc = new LabService({ backend, labs, log, now: () => now, activityWriteMs: 0 });
    const sup = new LabSupervisor({ service: svc, backend, labs, log, now: () => now });
    const a = await svc.ensureInstance(key('idle'));
    const b = await svc.ensureInstance(key('idle-nopause'));
    await Promise.all([svc.start(a._id), svc.start(b._id)]);
    await running(a._id);
    await running(b._id);
    now = new Date(now.getTime() + 4 * 60_000);
    svc.noteActivity(a._id);
    await waitFor(async () => (await svc.get(a._id))?.lastActivityAt?.getTime() === now.getTime(), 3000, 'activity written');
    now = new Date(now.getTime() + 2 * 60_000);
    const r = await sup.pass();
    assert.deepEqual(r.idled, [b._id]);
    assert.equal((await svc.get(b._id))?.state, 'expired');
    assert.equal((await svc.get(a._id))?.state, 'running');
    now = new Date(now.getTime() + 5 * 60_000);
    await sup.pass();
    assert.equal((await svc.get(a._id))?.state, 'stopped');
  });

  it('forgets an instance\'s activity when it leaves running, and activity older than the write interval', async () => {
    let now = new Date();
    svc = new LabService({ backend, labs, log, now: () => now, activityWriteMs: 1000 });
    const a = await svc.ensureInstance(key('one'));
    const b = await svc.ensureInstance(key('idle'));
    await Promise.all([svc.start(a._id), svc.start(b._id)]);
    await running(a._id);
    await running(b._id);
    svc.noteActivity(a._id);
    svc.noteActivity(b._id);
    assert.equal(svc.activityTracked, 2);
    await svc.stop(b._id);
    assert.equal(svc.activityTracked, 1, 'a stopped lab is forgotten');
    await svc.destroy(a._id);
    assert.equal(svc.activityTracked, 0, 'a destroyed lab is forgotten');
    // labs that end elsewhere (another replica) age out as other activity comes in
    for (let i = 0; i < 50; i++) svc.noteActivity(`elsewhere-${i}`);
    now = new Date(now.getTime() + 1000);
    svc.noteActivity('still-here');
    assert.equal(svc.activityTracked, 1);
  });

  it('reconciles: destroys what no instance owns, fails what vanished, finishes an abandoned provisioning', async () => {
    const sup = new LabSupervisor({ service: svc, backend, labs, log });
    const a = await svc.ensureInstance(key());
    const b = await svc.ensureInstance(key());
    await Promise.all([svc.start(a._id), svc.start(b._id)]);
    const ra = await running(a._id);
    await running(b._id);
    // an orphan: resources of an instance the database does not know
    backend.labs.set('lab-zzzzzzzzzzzzzzzz-g1', { handle: { instanceId: 'zzzzzzzzzzzzzzzz', backend: 'qemu', name: 'lab-zzzzzzzzzzzzzzzz-g1', generation: 1 }, spec: { labId: 'one', labVersion: '1', machines: [], network: { internetEgress: false } }, phase: 'running', resets: 0 });
    // a lab whose machines vanished behind the tool's back
    backend.labs.delete(ra.handle!.name);
    // a provisioning abandoned by a crashed process (record says provisioning, nothing in flight here)
    const c = await svc.ensureInstance(key());
    await LabInstance.updateOne({ _id: c._id }, { $set: { state: 'provisioning', generation: 1, handle: { instanceId: c._id, backend: 'qemu', name: `lab-${c._id}-g1`, generation: 1 } } });
    const r = await sup.pass();
    assert.deepEqual(r.orphansDestroyed, ['lab-zzzzzzzzzzzzzzzz-g1']);
    assert.deepEqual(r.vanished, [a._id]);
    assert.match((await svc.get(a._id))?.failureReason ?? '', /gone/);
    assert.deepEqual(r.resumedProvisioning, [c._id]);
    await running(c._id);
    assert.equal((await svc.get(b._id))?.state, 'running', 'a healthy lab is left alone');
    const again = await sup.pass();
    assert.deepEqual([again.orphansDestroyed, again.vanished, again.resumedProvisioning], [[], [], []], 'converged');
  });

  it('stop() ends a pass after the orphan it is destroying, not after all of them', async () => {
    const sup = new LabSupervisor({ service: svc, backend, labs, log });
    const orphan = (i: number) => {
      const id = `orphan${String(i).padStart(10, '0')}`;
      return { handle: { instanceId: id, backend: 'qemu' as const, name: `lab-${id}-g1`, generation: 1 }, spec: { labId: 'one', labVersion: '1', machines: [], network: { internetEgress: false } }, phase: 'running' as const, resets: 0 };
    };
    for (let i = 0; i < 5; i++) { const o = orphan(i); backend.labs.set(o.handle.name, o); }
    // each destroy takes a while, as a namespace going away does
    const destroy = backend.destroy.bind(backend);
    let stopping: Promise<void> | undefined;
    backend.destroy = async (h) => {
      stopping ??= sup.stop(); // asked to stop while destroying the first orphan
      await new Promise((r) => setTimeout(r, 50));
      await destroy(h);
    };
    const r = await sup.pass();
    await stopping;
    assert.equal(r.orphansDestroyed.length, 1, 'the orphan in hand is finished, the others wait for the next leader');
    assert.equal(backend.labs.size, 4);
  });

  it('destroy during provisioning aborts it and leaves nothing behind', async () => {
    backend.phaseMs = 100;
    const inst = await svc.ensureInstance(key());
    await svc.start(inst._id);
    await waitFor(() => backend.provisionCalls === 1, 2000, 'provision started');
    await svc.destroy(inst._id);
    await new Promise((r) => setTimeout(r, 500));
    const doc = await svc.get(inst._id);
    assert.equal(doc?.state, 'destroyed');
    assert.equal(backend.labs.size, 0);
  });
});
