/**
 * The real tool (its own LabService, supervisor and warm duty) over a given backend (or its own), with the
 * development platform registered on both sides, for warm-session tests: activities of the demo
 * course, teacher and student launches through real LTI, and the course's API.
 */
import path from 'node:path';
import { startTestTool, type TestTool } from './tool.js';
import { Browser, launchAs } from './ltiFlow.js';
import { atToolPage } from './ltiTool.js';
import type { LabBackend } from '../../src/backends/types.js';
import type { DevPlatformActivityDoc } from '../../src/devPlatform/models.js';
import type { LabService } from '../../src/labs/LabService.js';

const ADMIN = 'warm-admin-token-0123456789abcdef';
export const WARM_METRICS_TOKEN = 'warm-metrics-token-0123456789abcdef';

export interface WarmTool {
  tool: TestTool;
  svc: LabService;
  /** A new activity of the demo course launching `labId`. */
  activity(labId?: string): Promise<DevPlatformActivityDoc>;
  /** A real LTI launch; the tool page it leads to and its session token. */
  launch(a: DevPlatformActivityDoc, user: 'teacher' | 'student' | 'student2'): Promise<{ path: string; session: string }>;
  api(session: string, method: string, p: string, body?: unknown): Promise<Response>;
  /**
   * A fresh activity, its teacher's launch, and a warm session the teacher scheduled through the
   * course API (asserting 201): what every warm test starts from.
   */
  schedule(o: { expected: number; startsAt?: Date }): Promise<{ a: DevPlatformActivityDoc; teacher: { path: string; session: string }; contextId: string; id: string }>;
  /** A counter's value on /metrics. */
  metric(name: string): Promise<number>;
}

/** `backend` undefined: the one BACKEND (in env) names, built by the tool itself. */
export async function startWarmTool(backend: LabBackend | undefined, env: Record<string, string> = {}): Promise<WarmTool> {
  const tool = await startTestTool({
    ADMIN_TOKEN: ADMIN, METRICS_TOKEN: WARM_METRICS_TOKEN, TEMPLATES_DIR: path.resolve('test/fixtures/templates'), RECONCILE_INTERVAL_MS: '200', LOG_LEVEL: 'info', ...env,
  }, { backend });
  const dp = tool.devPlatform!;
  const u = tool.lti.urls;
  const reg = await dp.registerTool({ name: 'Lab Orchestrator', loginUrl: u.login, targetLinkUri: u.launch, jwksUrl: u.jwks, deepLinkUrl: u.deepLink });
  const res = await fetch(`${tool.url}/api/admin/platforms`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ issuer: dp.urls.issuer, clientId: reg._id, authUrl: dp.urls.auth, tokenUrl: dp.urls.token, jwksUrl: dp.urls.jwks, deploymentIds: [reg.deploymentId] }),
  });
  if (!res.ok) throw new Error(`registering the dev platform failed: ${res.status} ${await res.text()}`);
  let n = 0;
  const w: WarmTool = {
    tool, svc: tool.labService!,
    activity: (labId = 'shell-steps') => dp.createActivity({ clientId: reg._id, title: `Warm ${labId} ${++n}`, url: u.launch, custom: { lab_id: labId }, lineItem: null }),
    async launch(a, user) {
      const r = await launchAs(new Browser(), dp.urls.issuer, { activityId: a._id, user }, { stopAt: atToolPage });
      if (r.status !== 302 || !r.location) throw new Error(`launch as ${user} failed: ${r.status} ${r.body.slice(0, 300)}`);
      const [p, session] = r.location.split('#session=');
      return { path: p!, session: session! };
    },
    api: (session, method, p, body) => fetch(`${tool.url}${p}`, {
      method, headers: { authorization: `Bearer ${session}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
    async schedule({ expected, startsAt = new Date() }) {
      const a = await w.activity();
      const teacher = await w.launch(a, 'teacher');
      const contextId = courseKey(teacher.path);
      const res = await w.api(teacher.session, 'POST', `/api/courses/${encodeURIComponent(contextId)}/warm-sessions`, { startsAt: startsAt.toISOString(), expected });
      if (res.status !== 201) throw new Error(`scheduling a warm session: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      return { a, teacher, contextId, id };
    },
    async metric(name) {
      const text = await (await fetch(`${tool.url}/metrics`, { headers: { authorization: `Bearer ${WARM_METRICS_TOKEN}` } })).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line ? Number(line.split(' ')[1]) : NaN;
    },
  };
  return w;
}

/** The course key of a teacher's course page path (/course/<key>). */
export function courseKey(pagePath: string): string {
  return decodeURIComponent(pagePath.replace(/^.*\/course\//, ''));
}
