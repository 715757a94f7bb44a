/**
 * The launch benchmark's tool, in a process of its own and alone in it, as deployed: the real tool
 * (fake lab layer) on the platform process's FerretDB, in a database of its own. The benchmark
 * process plays the browser and launchPlatform.mts the platform, so the tool-side times below carry
 * no allocation or garbage collection but the tool's own.
 * On `start` says `ready` with its LTI URLs; on `platform` registers the platform through the admin
 * API; on `stats` answers what the launch histogram observed.
 */
import { startTestTool, type TestTool } from '../test/support/tool.js';
import { fakeLabs } from '../test/support/fakeLabs.js';
import { ADMIN_TOKEN, addPlatform } from '../test/support/ltiTool.js';
import type { PlatformRegistration, ToolUrls } from './launchPlatform.mjs';

export type FromLaunchTool =
  | { msg: 'ready'; urls: ToolUrls }
  | { msg: 'platformAdded' }
  | { msg: 'stats'; observed: number[]; sum: number; count: number }
  | { msg: 'error'; error: string };
export type ToLaunchTool = { msg: 'start'; mongoUri: string; limits: LaunchLimits } | { msg: 'platform'; platform: PlatformRegistration } | { msg: 'stats' } | { msg: 'stop' };

/**
 * `production`: the default launch limits, as deployed (every launch of a learner claims a slot of
 * the per-user limit in the database); `raised`: limits a burst of one user's launches never meets.
 */
export type LaunchLimits = 'production' | 'raised';

const say = (m: FromLaunchTool): void => void process.send?.(m);
let tool: TestTool | undefined;
// every tool-side duration the histogram observes, for its p95 (the histogram gives sum and count)
const observed: number[] = [];

async function start(mongoUri: string, limits: LaunchLimits): Promise<TestTool> {
  const fake = fakeLabs();
  // the platform's budget is the subject of other tests: a benchmark launches more than a school would
  const raised: Record<string, string> = limits === 'raised' ? { RATE_LAUNCH_PER_USER: '100000' } : {};
  const t = await startTestTool(
    { ADMIN_TOKEN, LOG_LEVEL: 'warn', DEV_PLATFORM: 'false', MONGODB_URI: mongoUri, RATE_LAUNCH_PER_PLATFORM: '1000000', ...raised },
    { embedded: true, labs: fake.labs, runtime: fake.runtime },
  );
  const hist = t.metrics.launchDuration;
  const observe = hist.observe.bind(hist);
  hist.observe = ((labels: { message_type: string }, seconds: number) => {
    if (labels.message_type === 'LtiResourceLinkRequest') observed.push(seconds * 1000);
    observe(labels, seconds);
  }) as typeof hist.observe;
  return t;
}

process.on('message', (m: ToLaunchTool) => {
  void (async () => {
    if (m.msg === 'start') {
      tool = await start(m.mongoUri, m.limits);
      const u = tool.lti.urls;
      say({ msg: 'ready', urls: { login: u.login, launch: u.launch, jwks: u.jwks, deepLink: u.deepLink } });
    } else if (m.msg === 'platform') {
      const p = m.platform;
      await addPlatform(tool!, { issuer: p.issuer, clientId: p.clientId, authUrl: p.authUrl, tokenUrl: p.tokenUrl, jwksUrl: p.jwksUrl, deploymentIds: [p.deploymentId] });
      say({ msg: 'platformAdded' });
    } else if (m.msg === 'stats') {
      // tool-side handling of the launch POST (id_token in → redirect out), from the same histogram /metrics serves
      const h = (await tool!.metrics.launchDuration.get()).values.filter((v) => v.labels.message_type === 'LtiResourceLinkRequest');
      const sum = h.find((v) => v.metricName?.endsWith('_sum'))?.value ?? NaN;
      const count = h.find((v) => v.metricName?.endsWith('_count'))?.value ?? NaN;
      say({ msg: 'stats', observed: [...observed], sum, count });
      observed.length = 0;
    } else {
      await tool?.shutdown();
      process.exit(0);
    }
  })().catch((err: unknown) => say({ msg: 'error', error: (err as Error).message }));
});
