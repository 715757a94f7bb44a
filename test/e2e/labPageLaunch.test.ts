/**
 * The whole path in headless Chromium with the real tool, the development platform, the LTI
 * launch, LabService and the lab catalog — only the machines are stand-ins (an in-memory backend
 * whose desktop is a tiny RFB server and whose console echoes). The same path with real QEMU
 * guests is test/e2e/labPage.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { waitFor } from '../support/tool.js';
import { MemoryBackend } from '../support/memoryBackend.js';
import { serveRfb, type RfbSinkState } from '../support/rfbSink.js';
import { launchChromium, screenshot } from '../support/chromium.js';
import { duplexPair, gradebookCell, launchInPlatform, startLabPageFlow, type LabPageFlow } from '../support/labPageFlow.js';
import type { ChannelKind, LabHandle } from '../../src/backends/types.js';
import { LabInstance } from '../../src/store/LabInstance.js';

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

describe('lab page through the development platform (stand-in machines)', function () {
  this.timeout(120_000);
  let flow: LabPageFlow;
  let backend: StandInBackend;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    backend = new StandInBackend();
    backend.phaseMs = 1500; // slow enough that a loaded machine still renders a phase before the lab runs
    flow = await startLabPageFlow(backend);
    browser = await launchChromium();
    ctx = await browser.newContext({ viewport: { width: 1366, height: 1000 } });
    page = await ctx.newPage();
  });
  after(async () => {
    await ctx?.close();
    await browser?.close();
    await flow?.close();
  });

  it('launches a student in the platform iframe: progress through the phases, then the running lab', async () => {
    const frame = await launchInPlatform(page, flow, 'student');
    const seen = new Set<string>();
    await waitFor(async () => {
      const t = await frame.locator('.provisioning .progress .text').textContent({ timeout: 200 }).catch(() => null);
      if (t) seen.add(t);
      return frame.locator('.workspace').isVisible();
    }, 30_000, 'the running lab');
    assert.ok(seen.size >= 2, `the progress bar moved (saw ${[...seen].join(', ')})`);
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    await frame.locator('h1', { hasText: 'Shell steps (e2e)' }).waitFor();
  });

  it('ticks every step to 100 % and the platform gradebook shows the full score', async () => {
    const frame = page.frameLocator('iframe[name="tool-frame"]');
    for (const id of ['log-in', 'say-hello']) {
      await frame.locator(`input[data-step="${id}"]`).check();
      await frame.locator(`input[data-step="${id}"]:not([disabled])`).waitFor();
    }
    await frame.getByRole('button', { name: 'Next ›' }).click();
    // a task-list step ("- [ ] … {#id}") shows one box: the step's, not markdown's disabled one too
    assert.equal(await frame.locator('li[data-step-id="look-around"] input[type="checkbox"]').count(), 1);
    await frame.locator('input[data-step="look-around"]').check();
    await frame.locator('.instructions .progress .text', { hasText: '3 of 3 steps · 100 %' }).waitFor();
    const inst = await LabInstance.findOne({ labId: 'shell-steps' }).lean();
    assert.deepEqual(Object.keys(inst?.steps ?? {}).sort(), ['log-in', 'look-around', 'say-hello']);
    // the full score on the lab's scale (the platform scales it to its column's maximum)
    const cell = await gradebookCell(page, flow, '101', /Completed, FullyGraded/);
    const m = /([\d.]+) \/ ([\d.]+)/.exec(cell);
    assert.ok(m && m[1] === m[2], `full score in the gradebook: ${cell}`);
  });

  it('lets the teacher open the overview from the platform, watch view-only and reset', async () => {
    const frame = await launchInPlatform(page, flow, 'teacher');
    const row = frame.locator('[data-instance]');
    await row.locator('.progress .text', { hasText: '3/3 · 100 %' }).waitFor();
    await row.getByText('Alice Student').waitFor();
    await row.getByRole('link', { name: 'Open (view only)' }).click();
    await frame.locator('.view-only', { hasText: 'Alice Student' }).waitFor();
    await frame.locator('.panel:not([hidden]) .link-connected', { hasText: 'view only' }).waitFor({ timeout: 15_000 });
    const keys = backend.rfb.keys.length;
    await frame.locator('.host-vnc canvas').first().click();
    await page.keyboard.type('rm -rf');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(backend.rfb.keys.length, keys, 'no key reached the desktop');
    await frame.getByRole('button', { name: 'Reset box' }).click();
    await frame.getByRole('dialog').getByRole('button', { name: 'Reset box' }).click();
    await waitFor(() => [...backend.labs.values()].some((l) => l.resets > 0), 5000, 'the machine reset');
    await screenshot(page, 'launch-teacher-view-in-platform');
    await frame.getByRole('link', { name: '← Course overview' }).click();
    await frame.locator('[data-instance]').waitFor();
  });
});
