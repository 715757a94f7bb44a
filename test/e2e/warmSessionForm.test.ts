/** The course overview's "warm before class" form in headless Chromium: a teacher schedules a session; the duty prepares its labs. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Browser } from 'playwright-core';
import { waitFor } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { launchChromium } from '../support/chromium.js';
import { courseKey, startWarmTool, type WarmTool } from '../support/warmTool.js';
import { WarmSession } from '../../src/store/WarmSession.js';
import { LabInstance } from '../../src/store/LabInstance.js';

describe('warm-session form on the course overview (Chromium)', function () {
  this.timeout(90_000);
  let w: WarmTool;
  let browser: Browser;

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    w = await startWarmTool(new MemoryBackend());
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await w?.tool.shutdown();
  });

  it('schedules a session for the roster, and shows its labs ready', async () => {
    const a = await w.activity();
    const teacher = await w.launch(a, 'teacher');
    const contextId = courseKey(teacher.path);
    const page = await browser.newPage();
    await page.goto(new URL(`${teacher.path}#session=${teacher.session}`, w.tool.url).toString());
    await page.getByText('Warm before class').click();
    const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.getByLabel('Start').fill(now);
    await page.getByRole('button', { name: 'Prepare labs' }).click();
    await waitFor(async () => (await WarmSession.countDocuments({ contextId })) === 1, 10_000, 'the session stored');
    const s = (await WarmSession.findOne({ contextId }).lean())!;
    assert.equal(s.expected, 2, 'the roster size when the field is left empty');
    await waitFor(async () => (await LabInstance.countDocuments({ warmSession: s._id, state: 'running' })) === 2, 20_000, 'two labs prepared');
    // the page drops the session from its address: open the course link again in a new page
    const again = await browser.newPage();
    await again.goto(new URL(`${teacher.path}#session=${teacher.session}`, w.tool.url).toString());
    await again.getByText('Warm before class').click();
    await again.locator(`li[data-warm="${s._id}"]`, { hasText: '2 ready' }).waitFor({ timeout: 10_000 });
    await WarmSession.updateOne({ _id: s._id }, { $set: { state: 'ended' } });
  });

  it('cancels a session after a confirmation saying what happens to its labs; its prepared labs go', async () => {
    const { teacher, id } = await w.schedule({ expected: 2 });
    await waitFor(async () => (await LabInstance.countDocuments({ warmSession: id, state: 'running' })) === 2, 20_000, 'two labs prepared');
    const page = await browser.newPage();
    await page.goto(new URL(`${teacher.path}#session=${teacher.session}`, w.tool.url).toString());
    await page.getByText('Warm before class').click();
    await page.getByText('labs already handed out stay with their students', { exact: false }).first().waitFor({ timeout: 10_000 });
    const row = page.locator(`li[data-warm="${id}"]`);
    await row.getByRole('button', { name: /^Cancel the session of / }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this class session?' });
    await dialog.getByText('Labs already handed out stay with their students').waitFor({ timeout: 5000 });
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    assert.equal((await WarmSession.findById(id).lean())!.cancelledAt, null, 'dismissing the dialog keeps the session');
    await row.getByRole('button', { name: /^Cancel the session of / }).click();
    await dialog.getByRole('button', { name: 'Yes, cancel the session' }).click();
    await row.getByText('cancelled').waitFor({ timeout: 10_000 });
    assert.equal(await row.getByRole('button', { name: /^Cancel the session of / }).count(), 0, 'no cancel button on a cancelled session');
    await waitFor(async () => (await LabInstance.countDocuments({ warmSession: id, state: 'destroyed' })) === 2, 10_000, 'its prepared labs destroyed');
  });
});
