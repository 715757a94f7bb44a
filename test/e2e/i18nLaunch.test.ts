/**
 * The student's language end to end: the development platform launches with launch_presentation.locale
 * de and fr, and the lab page, its instructions (the lab ships de/ and fr/ translations), the course
 * overview and the error page come in that language, in headless Chromium inside the platform's iframe.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { waitFor } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { serveRfb, type RfbSinkState } from '../support/rfbSink.js';
import { launchChromium, screenshot } from '../support/chromium.js';
import { duplexPair, launchInPlatform, startLabPageFlow, type LabPageFlow } from '../support/labPageFlow.js';
import type { ChannelKind, LabHandle } from '../../src/backends/types.js';

class StandInBackend extends MemoryBackend {
  readonly rfb: RfbSinkState = { keys: [], pointerEvents: 0 };
  override async openChannel(handle: LabHandle, machine: string, channel: ChannelKind): Promise<Duplex> {
    const echo = await super.openChannel(handle, machine, channel);
    if (channel === 'console') return echo;
    const [mine, theirs] = duplexPair();
    serveRfb(theirs, this.rfb);
    return mine;
  }
}

describe('the student\'s language through the development platform (de, fr)', function () {
  this.timeout(120_000);
  let flow: LabPageFlow;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    const backend = new StandInBackend();
    backend.phaseMs = 300;
    flow = await startLabPageFlow(backend);
    browser = await launchChromium();
    // the browser itself is English: the launch's locale must win
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    page = await ctx.newPage();
  });
  after(async () => {
    await ctx?.close();
    await browser?.close();
    await flow?.close();
  });

  it('a German launch: lab page, controls, states, times and the German instructions', async () => {
    const frame = await launchInPlatform(page, flow, 'student', 'de');
    await frame.locator('.workspace').waitFor({ timeout: 30_000 });
    await frame.locator('html[lang="de"]').waitFor();
    await frame.getByRole('heading', { name: 'Anleitung' }).waitFor();
    await frame.locator('.page-content h1', { hasText: 'Die Shell' }).waitFor();
    await frame.getByRole('checkbox', { name: 'Erledigt: Anmelden' }).waitFor();
    await frame.getByRole('button', { name: 'Pausieren' }).waitFor();
    await frame.getByRole('button', { name: 'Labor beenden' }).waitFor();
    await frame.locator('.state', { hasText: 'läuft' }).waitFor();
    await frame.locator('.time-left', { hasText: /^noch \d+ Min\.$/ }).waitFor();
    await frame.locator('.panel:not([hidden]) .link-connected', { hasText: 'Verbunden' }).waitFor({ timeout: 15_000 });
    assert.equal(await frame.locator('.page-content').getAttribute('lang'), 'de');
    await frame.getByRole('checkbox', { name: 'Erledigt: Anmelden' }).check();
    await frame.locator('.instructions .progress .text', { hasText: '1 von 3 Schritten · 25 %' }).waitFor();
    await frame.locator('#live', { hasText: '1 von 3 Schritten erledigt.' }).waitFor();
    await frame.getByRole('button', { name: 'Weiter ›' }).click();
    await frame.locator('.page-content h1', { hasText: 'Umschauen' }).waitFor();
    await screenshot(page, 'i18n-student-de');
  });

  it('a French launch: the teacher\'s course overview, and a French student sees the French instructions', async () => {
    const teacher = await launchInPlatform(page, flow, 'teacher', 'fr');
    await teacher.getByRole('heading', { name: 'Labos de ce cours' }).waitFor({ timeout: 15_000 });
    await teacher.locator('article.learner-card').first().waitFor();
    await teacher.getByRole('link', { name: 'Ouvrir (lecture seule)' }).first().waitFor();
    await teacher.locator('.muted', { hasText: /^Mis à jour à / }).waitFor();
    await screenshot(page, 'i18n-teacher-fr');
    const student = await launchInPlatform(page, flow, 'second student', 'fr');
    await student.locator('.workspace').waitFor({ timeout: 30_000 });
    await student.locator('.page-content h1', { hasText: 'Le shell' }).waitFor();
    await student.getByRole('heading', { name: 'Instructions' }).waitFor();
    await student.getByRole('button', { name: 'Mettre en pause' }).waitFor();
    await student.getByRole('tab', { name: /box/ }).locator('.phase', { hasText: 'en marche' }).waitFor();
  });

  it('an English launch keeps the English instructions; a browser in Spanish gets Spanish pages without a launch locale', async () => {
    const frame = await launchInPlatform(page, flow, 'student', 'en');
    await frame.locator('.page-content h1', { hasText: 'The shell' }).waitFor({ timeout: 30_000 });
    await frame.getByRole('button', { name: 'Pause' }).waitFor();
    const es = await browser.newContext({ locale: 'es-ES' });
    try {
      const p = await es.newPage();
      const res = await p.goto(`${flow.tool.url}/no-such-page`);
      assert.equal(res?.status(), 404);
      assert.equal(await p.locator('html').getAttribute('lang'), 'es');
      await p.getByRole('heading', { name: 'Algo salió mal (404)' }).waitFor();
      await p.getByText('No encontrado').waitFor();
      await p.goto(`${flow.tool.url}/lab/x`);
      await p.getByRole('heading', { name: 'No se puede abrir el laboratorio' }).waitFor();
    } finally {
      await es.close();
    }
    await waitFor(async () => true, 10, 'done');
  });
});
