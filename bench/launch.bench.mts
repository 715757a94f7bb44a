/**
 * LTI launch through the real tool (ltijs + our checks + user/activity/instance upserts + session)
 * vs its floor, the same four HTTP hops to the test mini tool (state cookie + jose verify, nothing
 * stored). Both through the development platform; the tool alone in a process (launchTool.mts), the
 * platform and the mini tool in another (launchPlatform.mts); this process is the browser:
 *   tool-side handling (the launch histogram), sequential launch round trip p50/p95, and 50
 *   concurrent launches of one user and activity.
 */
import { Browser, launchAs } from '../test/support/ltiFlow.js';
import { atToolPage } from '../test/support/ltiTool.js';
import { forkChild, pct, type BenchRow, type ChildLink } from './lib.mjs';
import type { FromLaunchTool, ToLaunchTool } from './launchTool.mjs';
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
    const { mongoUri, issuer } = await expect(platform, 'ready');
    tool = forkChild<FromLaunchTool, ToLaunchTool>(new URL('./launchTool.mts', import.meta.url), "the tool's process");
    tool.send({ msg: 'start', mongoUri });
    const { urls } = await expect(tool, 'ready');
    platform.send({ msg: 'register', tool: urls });
    const { platform: registration, activityId, floorActivityId } = await expect(platform, 'registered');
    tool.send({ msg: 'platform', platform: registration });
    await expect(tool, 'platformAdded');
    const time = async (f: () => Promise<{ status: number }>, expect: number) => {
      const t0 = performance.now();
      const r = await f();
      if (r.status !== expect) throw new Error(`launch answered ${r.status}`);
      return performance.now() - t0;
    };
    const floor: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < N; i++) {
      const user = i % 2 ? 'student' : 'student2';
      floor.push(await time(() => launchAs(new Browser(), issuer, { activityId: floorActivityId, user }), 200));
      ours.push(await time(() => launchAs(new Browser(), issuer, { activityId, user }, { stopAt: atToolPage }), 302));
    }
    tool.send({ msg: 'stats' });
    const stats = await expect(tool, 'stats');
    const toolSideMeanMs = (stats.sum / stats.count) * 1000;
    const toolSideP95Ms = pct(stats.observed, 95);
    const burst = async (id: string, stopAt?: typeof atToolPage) => {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: C }, () => launchAs(new Browser(), issuer, { activityId: id, user: 'student' }, stopAt ? { stopAt } : {})));
      return performance.now() - t0;
    };
    const burstFloor = await burst(floorActivityId);
    const burstOurs = await burst(activityId, atToolPage);
    const row = (metric: string, value: number, fl: number, goal: number): BenchRow => ({
      bench: 'launch', metric, value, floor: fl, unit: 'ms', goal: `≤ ${goal}× floor`, meets: value <= goal * fl,
    });
    return [
      { bench: 'launch', metric: `tool-side launch handling, mean of ${stats.count} (lab_lti_launch_duration_seconds)`, value: toolSideMeanMs, unit: 'ms', goal: '≤ 5 ms', meets: toolSideMeanMs <= 5 },
      { bench: 'launch', metric: `tool-side launch handling, p95 of ${stats.observed.length}`, value: toolSideP95Ms, unit: 'ms', goal: '≤ 5 ms', meets: toolSideP95Ms <= 5 },
      row(`round trip p50 (${N} sequential, 4 HTTP hops)`, pct(ours, 50), pct(floor, 50), 2),
      row(`round trip p95 (${N} sequential, 4 HTTP hops)`, pct(ours, 95), pct(floor, 95), 2),
      row(`${C} concurrent launches, same user+activity (wall)`, burstOurs, burstFloor, 2),
    ];
  } finally {
    await tool?.stop({ msg: 'stop' });
    await platform.stop({ msg: 'stop' });
  }
}
