/**
 * The scale benchmark's tool, alone in a process of its own as deployed (scale.bench.mts starts the
 * API server and the stand-in): the runtime (LabService, LabSupervisor, KubeVirtBackend as the
 * tool's ServiceAccount, FerretDB) with paper guests (the VMIs run, nothing boots: paperGuests.ts),
 * so its RSS is the runtime's, not that of benchmarks that ran before. Labs start in waves under a
 * KUBEVIRT_MAX_VMS of exactly the lab count (one lab more queues). At steady state, with the
 * supervisor on its default 15 s interval: API requests per second (every request the client sends,
 * counted as it sends it), RSS, event-loop delay, one supervisor pass; then every lab destroyed at
 * once. Beside the requests: what polling each lab the way KubeSpawner polls a pod (a status read of
 * each lab's objects every JupyterHub poll_interval, 30 s) would send.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { silentLog, toolBackendAt } from '../test/support/kubevirtTool.js';
import { StaticLabs } from '../test/support/staticLabs.js';
import { uniqueDbName } from '../test/support/ferret.js';
import { connectDatabase, ensureIndexes } from '../src/store/database.js';
import { ALL_MODELS } from '../src/store/models.js';
import type { RequestRecord } from '../src/backends/kubevirt/client.js';
import { LabService } from '../src/labs/LabService.js';
import { LabSupervisor } from '../src/labs/LabSupervisor.js';
import { handleName } from '../src/labs/LabService.js';
import type { LabEvent } from '../src/labs/contracts.js';
import { gc, type BenchRow } from './lib.mjs';

const LABS = Number(process.env.SCALE_BENCH_LABS ?? 500);
const WAVE = Number(process.env.SCALE_BENCH_WAVE ?? 25);
const STEADY_MS = Number(process.env.SCALE_BENCH_STEADY_MS ?? 60_000);
const RECONCILE_MS = 15_000; // RECONCILE_INTERVAL_MS default
const POLL_S = 30; // JupyterHub Spawner.poll_interval default
const B = 'scale (k8s, 1 replica)';
const say = (s: string) => process.stderr.write(`    ${s}\n`);

export type ToScaleTool = { msg: 'start'; mongoUri: string; kubeconfigPath: string; subresourceUrl: string } | { msg: 'paperGuests' } | { msg: 'stop' };
export type FromScaleTool = { msg: 'paperGuests'; names: string[] } | { msg: 'rows'; rows: BenchRow[] } | { msg: 'error'; error: string };
const tell = (m: FromScaleTool): void => void process.send?.(m);
let paperGuestsMarked: () => void = () => undefined;

/** Resolves with the instance's first state among `states` (from the service's own events). */
function stateOf(svc: LabService, id: string, states: string[]): Promise<LabEvent> {
  return new Promise((resolve) => {
    const off = svc.subscribe(id, (e) => {
      if (e.type === 'state' && states.includes(e.state)) { off(); resolve(e); }
    });
  });
}

/** A start or destroy the database refused (FerretDB's SQLite answers SQLITE_BUSY under load) is repeated, and counted. */
async function retried(op: () => Promise<unknown>, refused: () => void): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await op();
      return;
    } catch (err) {
      if (i >= 5 || !/SQLITE_BUSY/.test(String(err))) throw err;
      refused();
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
}

async function run(m: Extract<ToScaleTool, { msg: 'start' }>): Promise<BenchRow[]> {
  const db = await connectDatabase(m.mongoUri, uniqueDbName('scale'), silentLog);
  await ensureIndexes(ALL_MODELS);
  const { backend, client } = toolBackendAt(m.kubeconfigPath, { subresourceUrl: m.subresourceUrl, bootTimeoutMs: 900_000, destroyTimeoutMs: 1_800_000, limits: { maxVms: LABS } });
  const labs = new StaticLabs([{ id: 'one-vm', machines: [{ name: 'box', channels: ['console'] }], lifetime: { maxMinutes: 240, idleMinutes: 0 } }]);
  const svc = new LabService({ backend, labs, log: silentLog });
  const sup = new LabSupervisor({ service: svc, backend, labs, log: silentLog });
  const key = (i: number) => ({ activityId: 'scale-act', userId: `scale-u${i}`, contextId: 'scale', labId: 'one-vm', labVersion: '1' });
  const ids: string[] = [];
  try {
    for (let i = 0; i <= LABS; i++) ids.push((await svc.ensureInstance(key(i)))._id);
    // the stand-in (in the benchmark's process) runs these labs' VMIs without guests
    const marked = new Promise<void>((r) => { paperGuestsMarked = r; });
    tell({ msg: 'paperGuests', names: ids.map((id) => handleName(id, 1)) });
    await marked;
    const [extra] = ids.splice(LABS, 1);

    gc();
    const baseRss = process.memoryUsage().rss;
    const t0 = performance.now();
    let failed = 0;
    let busy = 0;
    for (let w = 0; w < LABS; w += WAVE) {
      const wave = ids.slice(w, w + WAVE);
      const ends = wave.map((id) => stateOf(svc, id, ['running', 'failed']));
      const tw = performance.now();
      await Promise.all(wave.map((id) => retried(() => svc.start(id), () => busy++)));
      failed += (await Promise.all(ends)).filter((e) => e.type === 'state' && e.state === 'failed').length;
      say(`wave ${w / WAVE + 1}: ${wave.length} labs running in ${((performance.now() - tw) / 1000).toFixed(1)} s (rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB)`);
    }
    const provisionS = (performance.now() - t0) / 1000;
    // one lab more than KUBEVIRT_MAX_VMS: it waits in the capacity queue
    const queued = new Promise<number | undefined>((resolve) => {
      const off = svc.subscribe(extra!, (e) => { if (e.type === 'progress' && e.progress.phase === 'queued' && e.progress.queuePosition) { off(); resolve(e.progress.queuePosition); } });
    });
    await svc.start(extra!);
    const position = await Promise.race([queued, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000))]);
    await svc.destroy(extra!);

    gc();
    const tp = performance.now();
    const report = await sup.pass();
    const passMs = performance.now() - tp;
    const touched = Object.values(report).reduce((n, l: string[]) => n + l.length, 0);
    say(`one supervisor pass: ${passMs.toFixed(0)} ms, ${touched} labs acted on`);

    const records: RequestRecord[] = [];
    const off = client.onRequest((r) => records.push(r));
    const loop = monitorEventLoopDelay({ resolution: 10 });
    let rss = 0;
    const sample = setInterval(() => { rss = Math.max(rss, process.memoryUsage().rss); }, 1000);
    loop.enable();
    sup.start(RECONCILE_MS);
    await new Promise((r) => setTimeout(r, STEADY_MS));
    await sup.stop();
    loop.disable();
    clearInterval(sample);
    off();
    const perS = records.length / (STEADY_MS / 1000);
    // the histogram holds whole timer intervals: the delay is what exceeds the 10 ms resolution
    const p99 = loop.percentile(99) / 1e6 - 10;
    const kinds = [...new Set(records.map((r) => `${r.verb} ${r.path}`))].slice(0, 5).join('; ');
    say(`steady ${STEADY_MS / 1000} s: ${records.length} requests (${kinds || 'none'}), rss max ${(rss / 2 ** 20).toFixed(0)} MiB, loop p99 ${p99.toFixed(1)} ms`);

    const td = performance.now();
    let busyDestroy = 0;
    await Promise.all(ids.map((id) => retried(() => svc.destroy(id), () => busyDestroy++)));
    const destroyS = (performance.now() - td) / 1000;
    const left = (await backend.list()).length;
    say(`destroyed ${LABS} in ${destroyS.toFixed(1)} s, ${left} lab namespaces left, ${busyDestroy} refused by the database and repeated`);

    const polled = (LABS * (1 + 1)) / POLL_S; // per lab: its namespace + its one VMI
    return [
      { bench: B, metric: `${LABS} one-VM labs started in waves of ${WAVE}, all running (paper guests)`, value: provisionS, unit: 's', goal: 'measured', meets: undefined, note: `${failed} failed, ${busy} starts refused by the database and repeated; lab ${LABS + 1} queued at position ${position ?? 'none'}` },
      { bench: B, metric: `API requests/s at steady state (${STEADY_MS / 1000} s, supervisor every ${RECONCILE_MS / 1000} s)`, value: perS, unit: 'req/s', goal: '≈ 0 (watches, no polling)', meets: perS < 0.1, note: kinds },
      { bench: B, metric: `same ${LABS} labs polled KubeSpawner-style (namespace + VMI per lab every ${POLL_S} s)`, value: polled, unit: 'req/s', goal: 'for comparison', meets: undefined },
      { bench: B, metric: 'tool RSS at steady state (max of 1 s samples; the runtime alone in a process, under tsx)', value: rss / 2 ** 20, unit: 'MiB', goal: '≤ 300 MB', meets: rss <= 300e6, note: `${(baseRss / 2 ** 20).toFixed(0)} MiB before the first lab (node, tsx, the API and database clients)` },
      { bench: B, metric: 'event-loop delay p99 at steady state (beyond the 10 ms sampling interval)', value: p99, unit: 'ms', goal: '≤ 20 ms', meets: p99 <= 20 },
      { bench: B, metric: `one supervisor pass (lifetime + reconcile of ${LABS} labs)`, value: passMs / 1000, unit: 's', goal: '≤ 2 s', meets: passMs <= 2000, note: `${touched} labs acted on` },
      { bench: B, metric: `destroy all ${LABS} at once (namespaces confirmed gone)`, value: destroyS, unit: 's', goal: 'measured', meets: left === 0 ? undefined : false, note: `${left} left; ${busyDestroy} destroys refused by the database and repeated` },
    ];
  } finally {
    await sup.stop();
    await svc.close();
    await Promise.allSettled(ids.map((id) => svc.destroy(id)));
    await backend.close();
    await db.close();
  }
}

process.on('message', (m: ToScaleTool) => {
  if (m.msg === 'start') {
    run(m).then((rows) => tell({ msg: 'rows', rows }), (err: unknown) => tell({ msg: 'error', error: (err as Error).stack ?? String(err) }));
  } else if (m.msg === 'paperGuests') {
    paperGuestsMarked();
  } else {
    process.exit(0);
  }
});
