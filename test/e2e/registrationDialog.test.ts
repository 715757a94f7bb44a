/**
 * Dynamic registration the way Moodle runs it: inside an iframe of a dialog on the platform's own
 * page, before the platform exists in the tool. The tool's registration pages must let that
 * platform frame them, and the completion page must close the dialog on the first try.
 */
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { launchChromium } from '../support/chromium.js';
import { fakeLabs } from '../support/fakeLabs.js';
import { Platform } from '../../src/store/Platform.js';

describe('dynamic registration inside the platform\'s dialog iframe (Chromium)', function () {
  this.timeout(120_000);
  let tool: TestTool;
  let browser: Browser;
  let page: Page;
  const fake = fakeLabs();
  const consoleErrors: string[] = [];

  before(async () => {
    tool = await startTestTool({}, { labs: fake.labs, runtime: fake.runtime });
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  });
  after(async () => {
    await browser?.close();
    await tool?.shutdown();
  });

  it('registers on the first try: the registration frame is allowed and the dialog closes itself', async () => {
    const dp = tool.devPlatform!;
    assert.equal(await Platform.countDocuments({ issuer: dp.urls.issuer }), 0, 'not registered before');
    await page.goto(dp.urls.page);
    await page.getByText('Register a tool (dynamic registration)').click();
    await page.getByLabel('Tool registration URL').fill(await tool.lti.registrationUrl());
    await page.getByRole('button', { name: 'Register', exact: true }).click();
    await page.locator('#registration-dialog[open]').waitFor({ timeout: 5000 });
    // the completion page posts org.imsglobal.lti.close; the platform page then closes the dialog and reloads
    await page.locator('td', { hasText: 'dynamic' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('#registration-dialog[open]').count(), 0, 'the dialog is closed');
    await waitFor(async () => (await Platform.countDocuments({ issuer: dp.urls.issuer })) === 1, 5000, 'the platform stored');
    assert.deepEqual(consoleErrors.filter((e) => /frame-ancestors|refused/i.test(e)), [], 'no framing refused');
  });
});
