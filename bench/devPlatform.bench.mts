/**
 * Benchmarks for the development platform and the grade outbox (timing lives here, not in tests).
 *   npx tsx bench/devPlatform.bench.mts
 * Prints: full launch round trip through real HTTP (platform /launch → tool login → /auth → tool),
 * p50/p95 over N launches; and grade outbox delivery: S scores for U users published at once, time
 * until all are delivered, and publish (outbox write) latency.
 */
import { startSharedFerret, stopSharedFerret } from '../test/support/ferret.js';
import { startTestTool, waitFor } from '../test/support/tool.js';
import { createMiniTool, MINI_TOOL_PATH } from '../test/support/miniTool.js';
import { Browser, launchAs } from '../test/support/ltiFlow.js';
import { keyProviderFrom } from '../src/lti/grades/clientAssertion.js';
import { GradeOutbox } from '../src/store/GradeOutbox.js';

const N = Number(process.env.LAUNCHES ?? 100);
const S = Number(process.env.SCORES ?? 200);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

await startSharedFerret();
const mini = await createMiniTool();
const tool = await startTestTool({ LOG_LEVEL: 'warn', GRADE_RETRY_BASE_MS: '100', GRADE_RETRY_MAX_MS: '1000' }, { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }] });
try {
  const dp = tool.devPlatform!;
  const reg = await dp.registerTool({ name: 'Mini', ...mini.urls(tool.url) });
  mini.clientId = reg._id;
  mini.issuer = dp.urls.issuer;
  const act = await dp.createActivity({ clientId: reg._id, title: 'Bench', lineItem: { scoreMaximum: 10 } });
  const times: number[] = [];
  let lineItemUrl = '';
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const r = await launchAs(new Browser(), dp.urls.issuer, { activityId: act._id, user: i % 2 ? 'student' : 'student2' });
    times.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`launch failed: ${r.status}`);
    lineItemUrl ||= (JSON.parse(r.body).claims['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] as { lineitem: string }).lineitem;
  }
  console.log(`launch round trip (4 HTTP hops, RS256 sign + verify), ${N} sequential: p50 ${pct(times, 50).toFixed(1)} ms, p95 ${pct(times, 95).toFixed(1)} ms`);

  tool.grades.use({
    keys: keyProviderFrom(async () => ({ privateKey: mini.privateKey, kid: mini.kid })),
    platforms: { tokenUrl: async () => dp.urls.token },
  });
  const users = ['101', '102'];
  const pub: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: S }, async (_, i) => {
    const p0 = performance.now();
    await tool.grades.publish({ issuer: dp.urls.issuer, clientId: reg._id, lineItemUrl, userSub: users[i % users.length]! },
      { activityProgress: 'Completed', gradingProgress: 'FullyGraded', scoreGiven: i % 11, scoreMaximum: 10 });
    pub.push(performance.now() - p0);
  }));
  await waitFor(async () => (await GradeOutbox.countDocuments({ state: 'pending' })) === 0, 120_000, 'all delivered');
  const total = performance.now() - t0;
  const rejected = await GradeOutbox.countDocuments({ state: 'rejected' });
  console.log(`grade outbox: ${S} scores for ${users.length} users published concurrently: publish p50 ${pct(pub, 50).toFixed(1)} ms, p95 ${pct(pub, 95).toFixed(1)} ms; all delivered in ${(total / 1000).toFixed(2)} s (${(S / (total / 1000)).toFixed(0)}/s), rejected ${rejected}`);
} finally {
  await tool.shutdown();
  await stopSharedFerret();
}
