/**
 * The real tool with the development platform, the tool registered on both sides by hand (the
 * platform's tool record and our platform record through the admin API), and the fake lab layer.
 */
import type { DevPlatform } from '../../src/devPlatform/createDevPlatform.js';
import type { DevPlatformActivityDoc } from '../../src/devPlatform/models.js';
import { startTestTool, type TestTool } from './tool.js';
import { fakeLabs, type FakeLabs } from './fakeLabs.js';
import { Platform } from '../../src/store/Platform.js';
import type { Mount } from '../../src/http/createApp.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface LtiTestTool {
  tool: TestTool;
  dp: DevPlatform;
  fake: FakeLabs;
  clientId: string;
  deploymentId: string;
  /** A resource link in the demo course, launching lab `labId` (custom lab_id), graded out of 20. */
  activity(labId?: string | null, o?: { lineItem?: boolean }): Promise<DevPlatformActivityDoc>;
  adminFetch(path: string, init?: RequestInit): Promise<Response>;
}

/** `register: false` reuses the registration already in the database (a restart on the same port, DATA_DIR and database). */
export async function startLtiTool(env: Record<string, string> = {}, o: { dbName?: string; fake?: FakeLabs; register?: boolean; extraMounts?: Mount[] } = {}): Promise<LtiTestTool> {
  const fake = o.fake ?? fakeLabs();
  const tool = await startTestTool({ ADMIN_TOKEN, ...env }, { labs: fake.labs, runtime: fake.runtime, ...(o.dbName ? { dbName: o.dbName } : {}), ...(o.extraMounts ? { extraMounts: o.extraMounts } : {}) });
  const dp = tool.devPlatform!;
  const u = tool.lti.urls;
  const adminFetch = (path: string, init: RequestInit = {}) =>
    fetch(`${tool.url}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  let reg: { _id: string; deploymentId: string };
  if (o.register === false) {
    const p = (await Platform.findOne({ issuer: dp.urls.issuer }).lean())!;
    reg = { _id: p.clientId, deploymentId: p.deploymentIds[0]! };
  } else {
    reg = await dp.registerTool({ name: 'Lab Orchestrator', loginUrl: u.login, targetLinkUri: u.launch, jwksUrl: u.jwks, deepLinkUrl: u.deepLink });
    await addPlatform(tool, { issuer: dp.urls.issuer, clientId: reg._id, authUrl: dp.urls.auth, tokenUrl: dp.urls.token, jwksUrl: dp.urls.jwks, deploymentIds: [reg.deploymentId] });
  }
  return {
    tool, dp, fake, clientId: reg._id, deploymentId: reg.deploymentId, adminFetch,
    activity: (labId = 'net-101', ao = {}) => dp.createActivity({
      clientId: reg._id, title: `Activity ${labId ?? 'without lab'}`, url: u.launch,
      custom: labId ? { lab_id: labId } : {}, lineItem: ao.lineItem === false ? null : { scoreMaximum: 20, label: 'Lab score' },
    }),
  };
}

/** Registers a platform with the tool through the admin API, as an administrator would. */
export async function addPlatform(tool: TestTool, p: { issuer: string; clientId: string; authUrl: string; tokenUrl: string; jwksUrl: string; deploymentIds: string[] }): Promise<void> {
  const res = await fetch(`${tool.url}/api/admin/platforms`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(p),
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`registering the platform ${p.issuer} failed: ${res.status} ${await res.text()}`);
}

/** stopAt for launchAs: stop before following the redirect to our own pages. */
export const atToolPage = (n: { url: string }) => /\/(lab|course)\//.test(new URL(n.url).pathname);
