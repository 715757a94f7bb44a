/**
 * Warm before class: 40 students launching at once against an activity whose labs were prepared
 * (a warm session) vs one without, time from launch to a usable console (state running, a console
 * ticket, the websocket open and a keystroke echoed) p50/p95. Backend: the in-memory stand-in whose
 * provisioning takes 4 × WARM_BENCH_PHASE_MS (a cold "boot" of 1 s by default), not real guests —
 * the numbers show what the hand-out saves around a boot, not a boot's real length.
 */
import WebSocket from 'ws';
import { MemoryBackend } from '../test/support/memoryBackend.js';
import { courseKey, startWarmTool, type WarmTool } from '../test/support/warmTool.js';
import { LabInstance } from '../src/store/LabInstance.js';
import { Activity } from '../src/store/Activity.js';
import { pct, type BenchRow } from './lib.mjs';

const N = Number(process.env.WARM_BENCH_N ?? 40);
const PHASE_MS = Number(process.env.WARM_BENCH_PHASE_MS ?? 250);

async function untilRunning(w: WarmTool, id: string): Promise<void> {
  for (;;) {
    if ((await w.svc.get(id))?.state === 'running') return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function consoleEcho(w: WarmTool, session: string, id: string): Promise<void> {
  const r = await w.api(session, 'POST', `/api/instances/${id}/tickets`, { machine: 'box', channel: 'console' });
  if (!r.ok) throw new Error(`ticket ${r.status}`);
  const { ticket } = (await r.json()) as { ticket: string };
  const ws = new WebSocket(`${w.tool.url.replace(/^http/, 'ws')}/ws/console/${id}/box`, ['lab.v1', `ticket.${ticket}`], { headers: { origin: new URL(w.tool.publicUrl).origin } });
  await new Promise<void>((res, rej) => {
    ws.once('open', () => ws.send(Buffer.from('x')));
    ws.once('message', () => res());
    ws.once('error', rej);
  });
  ws.close();
}

async function classOf(w: WarmTool, label: string, warm: boolean): Promise<number[]> {
  const a = await w.activity();
  const teacher = await w.launch(a, 'teacher');
  const contextId = courseKey(teacher.path);
  const act = (await Activity.findOne({ contextKey: contextId, title: a.title }).lean())!;
  const version = (await w.tool.labs.latest('shell-steps'))!.version;
  if (warm) {
    const res = await w.api(teacher.session, 'POST', `/api/courses/${encodeURIComponent(contextId)}/warm-sessions`, { startsAt: new Date().toISOString(), expected: N });
    const { id } = (await res.json()) as { id: string };
    while ((await LabInstance.countDocuments({ warmSession: id, state: 'running' })) < N) await new Promise((r) => setTimeout(r, 100));
  }
  return Promise.all(Array.from({ length: N }, async (_, i) => {
    const userId = `${label}-student-${i}`;
    const t0 = performance.now();
    const inst = await w.svc.ensureInstance({ activityId: act._id, userId, contextId, labId: 'shell-steps', labVersion: version });
    await w.svc.start(inst._id, inst);
    await untilRunning(w, inst._id);
    const session = await w.tool.sessions.issue({ userId, role: 'learner', contextId, activityId: act._id, instanceId: inst._id });
    await consoleEcho(w, session, inst._id);
    return performance.now() - t0;
  }));
}

export async function run(): Promise<BenchRow[]> {
  const backend = new MemoryBackend();
  backend.phaseMs = PHASE_MS;
  // the supervisor and the warm duty at the tool's default interval (the tests' 200 ms would have
  // them walk every running lab five times a second while the warm class launches)
  const w = await startWarmTool(backend, { LOG_LEVEL: 'warn', RATE_TICKET_PER_PLATFORM: '100000', RATE_TICKET_PER_USER: '1000', RECONCILE_INTERVAL_MS: '15000' });
  try {
    const cold = await classOf(w, 'cold', false);
    // the warm class starts on an empty tool too
    await Promise.all((await LabInstance.find({ state: 'running' }, { _id: 1 }).lean()).map((l) => w.svc.destroy(String(l._id))));
    const warm = await classOf(w, 'warm', true);
    const row = (metric: string, value: number, floor: number): BenchRow => ({
      bench: 'warm', metric, value, floor, unit: 'ms', goal: '< cold', meets: value < floor, note: `memory backend, ${4 * PHASE_MS} ms cold provisioning, ${N} at once`,
    });
    return [row(`launch→console p50 (${N} at once), warmed vs cold`, pct(warm, 50), pct(cold, 50)), row(`launch→console p95 (${N} at once), warmed vs cold`, pct(warm, 95), pct(cold, 95))];
  } finally {
    await w.tool.shutdown();
  }
}
