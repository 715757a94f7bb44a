/**
 * The real tool with the development platform in front of it (registered on both sides) and a
 * LabService over a given backend, for browser tests of the whole path: launch in the platform's
 * iframe → lab page → grades in the platform's gradebook.
 */
import path from 'node:path';
import { PassThrough, Duplex } from 'node:stream';
import type { Frame, FrameLocator, Page } from 'playwright-core';
import { startTestTool, waitFor, type TestTool } from './tool.js';
import { LabService } from '../../src/labs/LabService.js';
import type { LabBackend } from '../../src/backends/types.js';
import type { LabDefinitions } from '../../src/labs/contracts.js';
import type { ScoreInput } from '../../src/labs/score.js';
import type { DevPlatformActivityDoc } from '../../src/devPlatform/models.js';
import { createLogger } from '../../src/logger.js';

export const E2E_ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';
export const E2E_TEMPLATES = path.resolve('test/fixtures/templates');

export interface LabPageFlow {
  tool: TestTool;
  runtime: LabService;
  activity: DevPlatformActivityDoc;
  close(): Promise<void>;
}

/** The lab the platform's activity launches: by default the shell-steps fixture (lab-tiny). */
export interface FlowLab {
  templatesDir: string;
  labId: string;
  title: string;
}

export async function startLabPageFlow(backend: LabBackend, env: Record<string, string> = {}, lab: FlowLab = { templatesDir: E2E_TEMPLATES, labId: 'shell-steps', title: 'Shell steps' }): Promise<LabPageFlow> {
  let tool: TestTool | undefined;
  // LabService needs the catalog, which the tool builds from TEMPLATES_DIR: hand it over lazily
  const labs: LabDefinitions = {
    list: () => tool!.labs.list(),
    latest: (id) => tool!.labs.latest(id),
    prepare: (...a) => tool!.labs.prepare(...a),
    instructions: (...a) => tool!.labs.instructions(...a),
  };
  // scores go to the tool's grade outbox, as the composition root wires it for its own LabService
  const grades = { publish: (id: string, score: ScoreInput) => tool!.grades.publish(id, score) };
  const runtime = new LabService({ backend, labs, grades, log: createLogger({ level: 'warn', format: 'json' }) });
  tool = await startTestTool({ ADMIN_TOKEN: E2E_ADMIN_TOKEN, TEMPLATES_DIR: lab.templatesDir, GRADE_RETRY_BASE_MS: '200', ...env }, { runtime });
  const dp = tool.devPlatform!;
  const u = tool.lti.urls;
  const reg = await dp.registerTool({ name: 'Lab Orchestrator', loginUrl: u.login, targetLinkUri: u.launch, jwksUrl: u.jwks, deepLinkUrl: u.deepLink });
  const res = await fetch(`${tool.url}/api/admin/platforms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${E2E_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ issuer: dp.urls.issuer, clientId: reg._id, authUrl: dp.urls.auth, tokenUrl: dp.urls.token, jwksUrl: dp.urls.jwks, deploymentIds: [reg.deploymentId] }),
  });
  if (!res.ok) throw new Error(`registering the dev platform failed: ${res.status} ${await res.text()}`);
  const activity = await dp.createActivity({
    clientId: reg._id, title: lab.title, url: u.launch, custom: { lab_id: lab.labId }, lineItem: { scoreMaximum: 20, label: 'Lab score' },
  });
  const t = tool;
  return {
    tool: t, runtime, activity,
    async close() {
      await t.shutdown();
      await runtime.close();
    },
  };
}

/** Open the platform page and press "Launch … as <who>"; the tool opens in the platform's iframe. */
export async function launchInPlatform(page: Page, flow: LabPageFlow, who: 'student' | 'second student' | 'teacher', locale?: string): Promise<FrameLocator> {
  await page.goto(flow.tool.devPlatform!.urls.page);
  if (locale) await page.getByLabel('Language of the launched user').selectOption(locale);
  await page.getByRole('button', { name: `Launch as ${who}: ${flow.activity.title}`, exact: true }).click();
  return page.frameLocator('iframe[name="tool-frame"]');
}

/** The Frame object behind the platform's iframe (for evaluate). */
export function toolFrame(page: Page): Frame {
  const f = page.frames().find((x) => x.name() === 'tool-frame');
  if (!f) throw new Error('no tool frame');
  return f;
}

/** The gradebook cell of a demo student ('101' = Alice) once it shows a score matching re. */
export async function gradebookCell(page: Page, flow: LabPageFlow, userId: string, re: RegExp, timeoutMs = 30_000): Promise<string> {
  let text = '';
  await waitFor(async () => {
    await page.goto(flow.tool.devPlatform!.urls.page);
    const cell = page.locator(`table[aria-label="Gradebook"] td[data-user="${userId}"]`).first();
    text = (await cell.count()) ? await cell.innerText() : 'no gradebook cell';
    return re.test(text);
  }, timeoutMs, `gradebook cell matching ${re} (last: ${JSON.stringify(text)})`);
  return text;
}

/** A connected pair of streams: what one side writes, the other reads. */
export function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  // destroying a side aborts the inner streams: that is how it ends, not an error
  for (const s of [ab, ba]) s.on('error', () => undefined);
  const pair: [Duplex, Duplex] = [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
  for (const s of pair) s.on('error', () => undefined);
  return pair;
}
