/**
 * The teacher's card grid in headless Chromium at 1366×768, against the real tool with a loopback
 * runtime (its screenshots are real PNGs of a drawn 1024×768 screen): one card per lab with its
 * screen thumbnail, fetched only for the cards on screen and only while the tab is visible;
 * nothing is taken once the page is gone; axe finds nothing on the grid.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { launchChromium, screenshot } from '../support/chromium.js';
import { expectAccessible } from '../support/axe.js';
import { SessionTokens } from '../../src/auth/session.js';

const SECRET_KEY = 'course-grid-e2e-secret-key-0123456789abcdef';
const LABS = 24;
/** Browser code: the tab reports this visibility (as when the teacher switches tabs) and says it changed. */
const setVisibility = (v: 'hidden' | 'visible') =>
  `Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => '${v}' }); document.dispatchEvent(new Event('visibilitychange'));`;
type Img = { naturalWidth: number; getBoundingClientRect(): { top: number; bottom: number } };

describe('course overview card grid in the browser (loopback machines)', function () {
  this.timeout(120_000);
  let tool: TestTool;
  let rt: LoopbackRuntime;
  let browser: Browser;
  let page: Page;
  let token: string;

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    rt = await new LoopbackRuntime().listen();
    tool = await startTestTool({ SECRET_KEY }, { runtime: rt, labs: new PageLabs() });
    const sessions = new SessionTokens(SECRET_KEY);
    token = await sessions.issue({ userId: 'teacher', role: 'instructor', contextId: 'room-9', name: 'Teacher' });
    for (let i = 0; i < LABS; i++) await rt.add({ id: `lab${String(i).padStart(2, '0')}`, userId: `student${i}`, contextId: 'room-9' });
    await rt.add({ id: 'stoppedlab', userId: 'late', contextId: 'room-9', state: 'stopped' });
    rt.consoleLogs.set('stoppedlab/web', Buffer.from('never read\r\n'));
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
  });
  after(async () => {
    await browser?.close();
    await tool?.shutdown();
    await rt?.close();
  });

  const taken = () => new Set(rt.screenshots.map((s) => s.id));

  it('shows one card per lab; thumbnails only for the cards on screen, again every few seconds', async () => {
    await page.goto(`${tool.url}/course/room-9#session=${token}`);
    await page.locator('article.learner-card[data-instance]').nth(LABS).waitFor();
    assert.equal(await page.locator('article.learner-card[data-instance]').count(), LABS + 1);
    await page.locator('.glance.has-screen img').first().waitFor({ timeout: 10_000 });
    const first = page.locator('[data-instance="lab00"]');
    assert.equal(await first.getByRole('heading', { level: 2 }).textContent(), 'student0');
    await first.getByRole('img', { name: 'Screen of web (student0)' }).waitFor();
    assert.equal(await first.locator('img').evaluate((el) => (el as unknown as Img).naturalWidth), 320);
    await first.locator('[data-state="running"]').waitFor();
    // the stopped lab: no screen, no console read
    assert.equal(await page.locator('[data-instance="stoppedlab"] img').count(), 0);
    await screenshot(page, 'course-grid');

    // only cards in the viewport were asked for
    await new Promise((r) => setTimeout(r, 1500));
    const onScreen = await page.locator('img[data-screen]').evaluateAll((els) => els.filter((e) => {
      const r = (e as unknown as Img).getBoundingClientRect();
      return r.bottom > 0 && r.top < 768;
    }).map((e) => (e as unknown as { dataset: { screen: string } }).dataset.screen));
    assert.ok(onScreen.length > 0 && onScreen.length < LABS, `${onScreen.length} cards on screen`);
    assert.deepEqual([...taken()].sort(), [...onScreen].sort(), 'screenshots of exactly the cards on screen');

    // a few seconds later the visible ones are taken again; scrolled down, the last cards come
    const n = rt.screenshots.length;
    await waitFor(() => rt.screenshots.length >= n + onScreen.length, 12_000, 'the refresh of the visible thumbnails');
    await page.locator(`[data-instance="lab${LABS - 1}"]`).scrollIntoViewIfNeeded();
    await waitFor(() => taken().has(`lab${LABS - 1}`), 8000, 'the thumbnail of the last card once scrolled to');
    assert.ok(!rt.historyReads.some((h) => h.id === 'stoppedlab'));
  });

  it('has no accessibility violations on the card grid', async () => {
    await expectAccessible(page, 'course card grid');
  });

  it('takes nothing while the tab is hidden or the page is gone', async () => {
    await page.evaluate(setVisibility('hidden'));
    await new Promise((r) => setTimeout(r, 1000)); // a fetch under way finishes
    const hidden = rt.screenshots.length;
    await new Promise((r) => setTimeout(r, 7000));
    assert.equal(rt.screenshots.length, hidden, 'no screenshot while the tab is hidden');
    await page.evaluate(setVisibility('visible'));
    await waitFor(() => rt.screenshots.length > hidden, 5000, 'thumbnails again once visible');
    await page.close();
    await new Promise((r) => setTimeout(r, 1000));
    const closed = rt.screenshots.length;
    await new Promise((r) => setTimeout(r, 6000));
    assert.equal(rt.screenshots.length, closed, 'no screenshot once no teacher looks');
  });
});
