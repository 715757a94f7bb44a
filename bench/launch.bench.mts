/**
 * LTI launch through the real tool (ltijs + our checks + user/activity/instance upserts + session)
 * vs its floor, the same four HTTP hops to the test mini tool (state cookie + jose verify, nothing
 * stored). Both through the development platform; the tool alone in a process (launchTool.mts), the
 * platform and the mini tool in another (launchPlatform.mts); this process is the browser:
 *   tool-side handling (the launch histogram) and sequential launch round trip p50/p95 of a class
 *   of learners launching in turn under the default launch limits (after each one's first launch),
 *   and 50 concurrent launches of one user and activity (on a tool whose limits let them all in).
 */
import { Browser, launchAs } from '../test/support/ltiFlow.js';
import { atToolPage } from '../test/support/ltiTool.js';
import { forkChild, pct, type BenchRow, type ChildLink } from './lib.mjs';
import type { FromLaunchTool, LaunchLimits, ToLaunchTool } from './launchTool.mjs';
import type { FromLaunchPlatform, ToLaunchPlatform } from './launchPlatform.mjs';

const N = Number(process.env.LAUNCH_BENCH_N ?? 60);
const C = Number(process.env.LAUNCH_BENCH_CONCURRENT ?? 50);

export async function run(): Promise<BenchRow[]> {
  const platform = forkChild<FromLaunchPlatform, ToLaunchPlatform>(new URL('./launchPlatform.mts', import.meta.url), "the platform's process");
  let tool: ChildLink<FromLaunchTool, ToLaunchTool> | undefined;
  try {
    const expect = async <T extends { msg: string }, K extends T['msg']>(link: ChildLink<T, unknown>, msg: K): Promise<Extract<T, { msg: K }>> => {
      const m = await link.next();
      if (m.msg !== msg) throw new Error(`expected ${msg}, got ${m.msg}`);
      return m as Extract<T, { msg: K }>;
    };
    const { mongoUri, issuer, classSize } = await expect(platform, 'ready');
    /** The tool in a process of its own, registered with the platform: its activity and the floor's. */
    const startTool = async (limits: LaunchLimits) => {
      const t = forkChild<FromLaunchTool, ToLaunchTool>(new URL('./launchTool.mts', import.meta.url), "the tool's process");
      tool = t;
      t.send({ msg: 'start', mongoUri, limits });
      const { urls } = await expect(t, 'ready');
      platform.send({ msg: 'register', tool: urls });
      const { platform: registration, activityId, floorActivityId } = await expect(platform, 'registered');
      t.send({ msg: 'platform', platform: registration });
      await expect(t, 'platformAdded');
      return { t, activityId, floorActivityId };
    };
    const time = async (f: () => Promise<{ status: number }>, expect: number) => {
      const t0 = performance.now();
      const r = await f();
      if (r.status !== expect) throw new Error(`launch answered ${r.status}`);
      return performance.now() - t0;
    };
    // a class, as deployed: the default launch limits, every learner's launch counted in the database
    const { t, activityId, floorActivityId } = await startTool('production');
    const learner = (i: number) => `learner${(i % classSize) + 1}`;
    const first: number[] = [];
    for (let i = 0; i < classSize; i++) first.push(await time(() => launchAs(new Browser(), issuer, { activityId, user: learner(i) }, { stopAt: atToolPage }), 302));
    t.send({ msg: 'stats' });
    const before = await expect(t, 'stats');
    const floor: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < N; i++) {
      const user = learner(i);
      floor.push(await time(() => launchAs(new Browser(), issuer, { activityId: floorActivityId, user }), 200));
      ours.push(await time(() => launchAs(new Browser(), issuer, { activityId, user }, { stopAt: atToolPage }), 302));
    }
    t.send({ msg: 'stats' });
    const stats = await expect(t, 'stats');
    const toolSideMeanMs = ((stats.sum - before.sum) / (stats.count - before.count)) * 1000;
    const toolSideP95Ms = pct(stats.observed, 95);
    const firstToolSide = before.observed;
    await t.stop({ msg: 'stop' });
    // one user's many clicks at once: limits that never refuse them (the production limit would refuse all but 10)
    const raised = await startTool('raised');
    const burst = async (id: string, stopAt?: typeof atToolPage) => {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: C }, () => launchAs(new Browser(), issuer, { activityId: id, user: 'student' }, stopAt ? { stopAt } : {})));
      return performance.now() - t0;
    };
    const burstFloor = await burst(raised.floorActivityId);
    const burstOurs = await burst(raised.activityId, atToolPage);
    const row = (metric: string, value: number, fl: number, goal: number): BenchRow => ({
      bench: 'launch', metric, value, floor: fl, unit: 'ms', goal: `≤ ${goal}× floor`, meets: value <= goal * fl,
    });
    return [
      { bench: 'launch', metric: `tool-side launch handling, mean of ${stats.count - before.count} (lab_lti_launch_duration_seconds; ${classSize} learners in turn, default limits)`, value: toolSideMeanMs, unit: 'ms', goal: '≤ 5 ms', meets: toolSideMeanMs <= 5 },
      { bench: 'launch', metric: `tool-side launch handling, p95 of ${stats.observed.length}`, value: toolSideP95Ms, unit: 'ms', goal: '≤ 5 ms', meets: toolSideP95Ms <= 5 },
      { bench: 'launch', metric: `tool-side handling of each learner's first launch (records written, lab created), p95 of ${firstToolSide.length}`, value: pct(firstToolSide, 95), unit: 'ms', goal: 'info', meets: undefined, note: `mean ${(firstToolSide.reduce((a, b) => a + b, 0) / firstToolSide.length).toFixed(2)} ms; round trip p50 ${pct(first, 50).toFixed(1)} ms` },
      row(`round trip p50 (${N} sequential, 4 HTTP hops)`, pct(ours, 50), pct(floor, 50), 2),
      row(`round trip p95 (${N} sequential, 4 HTTP hops)`, pct(ours, 95), pct(floor, 95), 2),
      row(`${C} concurrent launches, same user+activity (wall)`, burstOurs, burstFloor, 2),
    ];
  } finally {
    await tool?.stop({ msg: 'stop' });
    await platform.stop({ msg: 'stop' });
  }
}
