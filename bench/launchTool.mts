/**
 * The launch benchmark's server side, in a process of its own: the real tool (with the development
 * platform mounted, as in development mode) and the test mini tool beside it, on one FerretDB. The
 * benchmark process plays the browser, as a student's browser is not the tool's process either, so
 * the tool-side times below carry no allocation or garbage collection of the client's.
 * Says `ready` with the URLs and activities; on `stats` answers what the launch histogram observed.
 */
import { startSharedFerret, stopSharedFerret } from '../test/support/ferret.js';
import { startLtiTool } from '../test/support/ltiTool.js';
import { createMiniTool, MINI_TOOL_PATH } from '../test/support/miniTool.js';

export type FromLaunchTool =
  | { msg: 'ready'; issuer: string; activityId: string; floorActivityId: string }
  | { msg: 'stats'; observed: number[]; sum: number; count: number }
  | { msg: 'error'; error: string };
export type ToLaunchTool = { msg: 'stats' } | { msg: 'stop' };

const say = (m: FromLaunchTool): void => void process.send?.(m);

try {
  await startSharedFerret();
  const mini = await createMiniTool();
  // the launch limits are the subject of other tests: a benchmark launches far more than a user would
  const t = await startLtiTool({ LOG_LEVEL: 'warn', RATE_LAUNCH_PER_USER: '100000', RATE_LAUNCH_PER_PLATFORM: '1000000' }, { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }] });
  const dp = t.dp;
  const reg = await dp.registerTool({ name: 'Mini', ...mini.urls(t.tool.url) });
  mini.clientId = reg._id;
  mini.issuer = dp.urls.issuer;
  const miniAct = await dp.createActivity({ clientId: reg._id, title: 'Floor' });
  const act = await t.activity('net-101');
  // every tool-side duration the histogram observes, for its p95 (the histogram gives sum and count)
  const observed: number[] = [];
  const hist = t.tool.metrics.launchDuration;
  const observe = hist.observe.bind(hist);
  hist.observe = ((labels: { message_type: string }, seconds: number) => {
    if (labels.message_type === 'LtiResourceLinkRequest') observed.push(seconds * 1000);
    observe(labels, seconds);
  }) as typeof hist.observe;
  process.on('message', (m: ToLaunchTool) => {
    void (async () => {
      if (m.msg === 'stats') {
        // tool-side handling of the launch POST (id_token in → redirect out), from the same histogram /metrics serves
        const h = (await hist.get()).values.filter((v) => v.labels.message_type === 'LtiResourceLinkRequest');
        const sum = h.find((v) => v.metricName?.endsWith('_sum'))?.value ?? NaN;
        const count = h.find((v) => v.metricName?.endsWith('_count'))?.value ?? NaN;
        say({ msg: 'stats', observed: [...observed], sum, count });
        hist.observe = observe;
      } else {
        await t.tool.shutdown();
        await stopSharedFerret();
        process.exit(0);
      }
    })();
  });
  say({ msg: 'ready', issuer: dp.urls.issuer, activityId: act._id, floorActivityId: miniAct._id });
} catch (err) {
  say({ msg: 'error', error: (err as Error).message });
  await stopSharedFerret();
  process.exit(1);
}
