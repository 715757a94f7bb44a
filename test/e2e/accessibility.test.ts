/**
 * axe-core (WCAG 2.1 A and AA) on every page a person sees, inside the development platform's
 * iframe as Moodle embeds them: the lab page while provisioning, running (desktop and console),
 * paused, stopped and failed; the course overview; the deep-linking picker; the registration and
 * error pages; and the development platform itself. 0 violations; every "needs review" item is
 * explained below or the test fails. Also a keyboard-only walk and the way out of the console.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { MemoryBackend } from '../support/memoryBackend.js';
import { serveRfb, type RfbSinkState } from '../support/rfbSink.js';
import { launchChromium, screenshot } from '../support/chromium.js';
import { duplexPair, launchInPlatform, startLabPageFlow, toolFrame, type LabPageFlow } from '../support/labPageFlow.js';
import { contrastReport, expectAccessible } from '../support/axe.js';
import type { ChannelKind, LabHandle } from '../../src/backends/types.js';
import { BackendFailure } from '../../src/errors.js';

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

/** "Needs review" items axe cannot decide, each checked by hand (the reason is the explanation). */
const EXPLAINED: Record<string, string> = {
  // xterm draws text in a canvas/DOM over a dark background axe cannot compute through; its colours are #e6e6e6 on #0f1419 (15.6:1)
  'color-contrast': 'text over the terminal and the progress bar fill: colours checked by hand (≥ 4.5:1)',
};

/** Press Tab until the focused element's text is `label` (at most `max` stops); every stop on the way shows its focus. */
async function tabTo(page: Page, f: Frame, label: string, max = 30): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const a = await f.evaluate<{ tag: string; text: string; outline: string }>(`(() => {
      const a = document.activeElement;
      return { tag: a?.tagName ?? '', text: (a?.getAttribute('aria-label') ?? a?.textContent ?? '').trim().slice(0, 40), outline: a ? getComputedStyle(a).outlineStyle : 'none' };
    })()`);
    seen.push(`${a.tag}:${a.text}`);
    if (a.tag && a.tag !== 'BODY') assert.notEqual(a.outline, 'none', `visible focus on ${a.tag} ${a.text}`);
    if (a.text === label) return seen;
  }
  throw new Error(`"${label}" not reached in ${max} Tab stops: ${seen.join(' | ')}`);
}

/** Every element (and ::before/::after) whose computed style would move: a transition or an animation, and any animation running now. */
function motion(f: Frame): Promise<string[]> {
  return f.evaluate<string[]>(`(() => {
    const moving = (d) => d.split(',').some((x) => parseFloat(x) > 0);
    const out = [];
    for (const el of document.querySelectorAll('*')) {
      for (const pseudo of [null, '::before', '::after']) {
        const c = getComputedStyle(el, pseudo);
        const what = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') + (pseudo ?? '');
        if (c.transitionProperty !== 'none' && moving(c.transitionDuration)) out.push(what + ' transition ' + c.transitionProperty + ' ' + c.transitionDuration);
        if (c.animationName !== 'none' && moving(c.animationDuration)) out.push(what + ' animation ' + c.animationName);
      }
    }
    for (const a of document.getAnimations()) out.push('running: ' + (a.animationName ?? a.transitionProperty ?? a.constructor.name));
    return out;
  })()`);
}

describe('accessibility: axe-core on every page, inside the platform iframe', function () {
  this.timeout(180_000);
  let flow: LabPageFlow;
  let backend: StandInBackend;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    backend = new StandInBackend();
    backend.phaseMs = 2500;
    flow = await startLabPageFlow(backend);
    browser = await launchChromium();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    page = await ctx.newPage();
  });
  after(async () => {
    await ctx?.close();
    await browser?.close();
    await flow?.close();
  });

  it('the development platform page', async () => {
    await page.goto(flow.tool.devPlatform!.urls.page);
    await expectAccessible(page, 'development platform', EXPLAINED);
  });

  it('the lab page: provisioning, running (desktop and console), paused, stopped', async () => {
    const frame = await launchInPlatform(page, flow, 'student');
    await frame.locator('.provisioning').waitFor({ timeout: 15_000 });
    await expectAccessible(toolFrame(page), 'lab page provisioning', EXPLAINED);
    await frame.locator('.workspace').waitFor({ timeout: 30_000 });
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    await expectAccessible(toolFrame(page), 'lab page running, desktop', EXPLAINED);
    await frame.getByRole('button', { name: 'Console' }).click();
    await frame.locator('.host-console:not([hidden]) .xterm').waitFor();
    await expectAccessible(toolFrame(page), 'lab page running, console', EXPLAINED);
    await frame.getByRole('button', { name: 'Pause' }).click();
    await frame.locator('.state', { hasText: 'paused' }).waitFor({ timeout: 15_000 });
    await expectAccessible(toolFrame(page), 'lab page paused', EXPLAINED);
    await frame.getByRole('button', { name: 'Stop lab' }).click();
    await frame.getByRole('dialog').waitFor();
    await expectAccessible(toolFrame(page), 'lab page stop dialog', EXPLAINED);
    // by keyboard (the dialog's button can sit below the fold of the platform page's frame)
    await frame.getByRole('dialog').getByRole('button', { name: 'Stop lab' }).press('Enter');
    await frame.locator('.stopped').waitFor({ timeout: 15_000 });
    await expectAccessible(toolFrame(page), 'lab page stopped', EXPLAINED);
  });

  it('the course overview, the picker, the registration and error pages', async () => {
    const frame = await launchInPlatform(page, flow, 'teacher');
    await frame.locator('[data-instance]').first().waitFor({ timeout: 15_000 });
    await expectAccessible(toolFrame(page), 'course overview', EXPLAINED);
    await page.goto(flow.tool.devPlatform!.urls.page);
    await page.getByRole('button', { name: /^Add activity \(deep link\)/ }).first().click();
    await page.frameLocator('iframe[name="tool-frame"]').locator('article.lab').first().waitFor({ timeout: 15_000 });
    await expectAccessible(toolFrame(page), 'deep-linking picker', EXPLAINED);
    for (const path of ['/admin/lti', '/no-such-page', '/lab/x']) {
      await page.goto(`${flow.tool.url}${path}`);
      await page.locator('h1').first().waitFor();
      await expectAccessible(page, path, EXPLAINED);
    }
  });

  it('keyboard only: into the console and out again (announced), tick a step, with visible focus', async () => {
    const frame = await launchInPlatform(page, flow, 'second student');
    await frame.locator('.workspace').waitFor({ timeout: 30_000 });
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    const f = toolFrame(page);
    await f.locator('body').focus();
    const seen: string[] = [];
    let box = false;
    for (let i = 0; i < 60 && !box; i++) {
      await page.keyboard.press('Tab');
      const info = await f.evaluate<{ tag: string; text: string; outline: string; step: string }>(`(() => {
        const a = document.activeElement;
        const outline = a ? getComputedStyle(a).outlineStyle : 'none';
        return { tag: a?.tagName ?? '', text: (a?.getAttribute('aria-label') ?? a?.textContent ?? '').trim().slice(0, 40), outline, step: a?.getAttribute('data-step') ?? '' };
      })()`);
      seen.push(`${info.tag}:${info.text}`);
      if (info.tag && info.tag !== 'BODY') assert.notEqual(info.outline, 'none', `visible focus on ${info.tag} ${info.text}`);
      if (info.step === 'log-in') box = true;
    }
    assert.ok(box, `reached the first step's checkbox by Tab (${seen.join(' | ')})`);
    await page.keyboard.press('Space');
    await f.locator('#live', { hasText: '1 of 3 steps done.' }).waitFor();
    // into the console by keyboard: the tab, then the Console switch, then into the terminal
    await frame.getByRole('tab', { name: /box/ }).focus();
    await frame.getByRole('button', { name: 'Console' }).focus();
    await page.keyboard.press('Enter');
    await frame.locator('.host-console:not([hidden]) textarea').focus();
    await f.locator('#live', { hasText: 'Console of box' }).waitFor();
    assert.equal(await f.evaluate<boolean>("document.activeElement?.classList.contains('xterm-helper-textarea') === true"), true);
    await page.keyboard.press('Tab');
    assert.equal(await f.evaluate<boolean>("document.activeElement?.classList.contains('xterm-helper-textarea') === true"), true, 'Tab stays in the terminal');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    assert.equal(await f.evaluate<string | null>("document.activeElement?.getAttribute('role') ?? null"), 'tab', 'Escape twice leaves to the machine tab');
    await screenshot(page, 'a11y-keyboard-walk');
  });

  it('the lab page failed (reason, retry by keyboard) and queued for capacity (position), then running', async () => {
    // a second activity, so the student gets a new lab whose first provision fails half-way
    const dp = flow.tool.devPlatform!;
    const activity = await dp.createActivity({ clientId: flow.activity.clientId, title: 'Shell steps, second try', url: flow.tool.lti.urls.launch, custom: { lab_id: 'shell-steps' } });
    const phaseMs = backend.phaseMs;
    backend.phaseMs = 100;
    backend.failNext = new BackendFailure('qemu-img: disk full', { publicMessage: 'The machine disks could not be created.' });
    try {
      const frame = await launchInPlatform(page, { ...flow, activity }, 'student');
      await frame.getByRole('heading', { name: 'The lab could not be started' }).waitFor({ timeout: 15_000 });
      await frame.getByRole('alert').getByText('The machine disks could not be created.').waitFor();
      await expectAccessible(toolFrame(page), 'lab page failed', EXPLAINED);
      const f = toolFrame(page);
      await f.locator('body').focus();
      await tabTo(page, f, 'Try again');
      // capacity is taken (every lab the backend holds counts): the retry waits in the queue
      backend.maxLabs = backend.labs.size;
      await page.keyboard.press('Enter');
      await frame.locator('.provisioning .message', { hasText: 'You are number 1 in the queue' }).waitFor({ timeout: 15_000 });
      await frame.locator('.phases li[data-phase="queued"][aria-current="step"]').waitFor();
      await f.locator('#live', { hasText: 'You are number 1 in the queue' }).waitFor();
      await expectAccessible(toolFrame(page), 'lab page queued', EXPLAINED);
      await screenshot(page, 'a11y-queued');
      // capacity comes back: the queued lab starts by itself
      backend.maxLabs = undefined;
      flow.runtime.queue.release();
      await frame.locator('.workspace').waitFor({ timeout: 15_000 });
    } finally {
      backend.phaseMs = phaseMs;
      backend.maxLabs = undefined;
      backend.failNext = undefined;
    }
  });

  it('dark appearance and reduced motion: axe and computed contrast on the running lab page and the overview; nothing moves', async () => {
    try {
      // without the preference the overview's progress bars slide: the motion check sees that
      await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'no-preference' });
      let frame = await launchInPlatform(page, flow, 'teacher');
      await frame.locator('[data-instance] .progress').first().waitFor({ timeout: 15_000 });
      assert.ok((await motion(toolFrame(page))).some((m) => m.includes('fill transition width')), 'progress bar transition seen without the preference');
      await page.emulateMedia({ colorScheme: 'dark', reducedMotion: 'reduce' });
      for (const where of ['course overview', 'lab page running, desktop', 'lab page running, console']) {
        if (where === 'lab page running, desktop') {
          frame = await launchInPlatform(page, flow, 'second student');
          await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
        }
        if (where === 'lab page running, console') {
          await frame.getByRole('button', { name: 'Console' }).click();
          await frame.locator('.host-console:not([hidden]) .xterm').waitFor();
        }
        const f = toolFrame(page);
        assert.equal(await f.evaluate<string>('getComputedStyle(document.body).backgroundColor'), 'rgb(18, 22, 28)', `${where}: dark colours in use`);
        await expectAccessible(f, `${where} (dark)`, EXPLAINED);
        const contrast = await contrastReport(f);
        // contrast really measured (axe computes it for each text node), none too low, none it could not decide
        assert.ok(contrast.passed >= 20, `${where}: contrast computed for ${contrast.passed} nodes`);
        assert.deepEqual(contrast.violations, [], `${where}: contrast`);
        assert.deepEqual(contrast.undecided, [], `${where}: contrast undecided`);
        assert.deepEqual(await motion(f), [], `${where}: nothing moves under reduced motion`);
        await screenshot(page, `a11y-dark-${where.replace(/\W+/g, '-')}`);
      }
    } finally {
      await page.emulateMedia({ colorScheme: null, reducedMotion: null });
    }
  });

  it('200 % zoom (640×360) inside the frame and alone, and 320×256 (400 %): no horizontal scroll, instructions and machine controls reachable', async () => {
    // the second student's lab runs (earlier tests); the launch opens its page with the session in
    // the URL's fragment (which the page then removes from the address): keep that URL to open it alone
    let labUrl = '';
    const keep = (f: Frame) => { if (!labUrl && f.url().includes('#session=')) labUrl = f.url(); };
    page.on('framenavigated', keep);
    let frame = await launchInPlatform(page, flow, 'second student');
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    page.off('framenavigated', keep);
    assert.match(labUrl, /\/lab\/\w+#session=/);
    const sizes: Array<{ name: string; width: number; height: number; framed: boolean }> = [
      { name: '640x360-in-frame', width: 640, height: 360, framed: true },
      { name: '640x360', width: 640, height: 360, framed: false },
      { name: '320x256', width: 320, height: 256, framed: false },
    ];
    try {
      for (const size of sizes) {
        await page.setViewportSize({ width: size.width, height: size.height });
        let f: Frame;
        if (size.framed) {
          frame = await launchInPlatform(page, flow, 'second student');
          await frame.locator('.workspace').waitFor({ timeout: 15_000 });
          f = toolFrame(page);
        } else {
          await page.goto(labUrl);
          f = page.mainFrame();
          await f.locator('.workspace').waitFor({ timeout: 15_000 });
        }
        const where = f === page.mainFrame() ? page.locator('html') : frame.locator('html');
        const dims = await f.evaluate<{ scroll: number; client: number }>('({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })');
        assert.ok(dims.scroll <= dims.client, `${size.name}: no horizontal scroll (scrollWidth ${dims.scroll} > clientWidth ${dims.client})`);
        // reachable: scrolled into view, not covered, not clipped away (a pointer could press it)
        const reach = [
          where.locator('.instructions h2').first(), where.locator('.instructions .step-box').first(), where.getByRole('button', { name: /^Next/ }),
          where.getByRole('tab', { name: /box/ }), where.getByRole('button', { name: 'Console' }), where.getByRole('button', { name: 'Desktop' }),
          where.getByRole('button', { name: 'Full screen' }), where.getByRole('button', { name: 'Reset box' }),
          where.getByRole('button', { name: 'Pause' }), where.getByRole('button', { name: 'Stop lab' }),
        ];
        for (const l of reach) await l.click({ trial: true, timeout: 5_000 });
        await screenshot(page, `a11y-reflow-${size.name}`, !size.framed);
        // usable, not only reachable: a machine screen, and a window onto the instruction text (the
        // box that scrolls it, as much of it as the screen shows), of a readable height
        const stage = await where.locator('.panel:not([hidden]) .stage').evaluate((e) => e.clientHeight);
        const text = await f.evaluate<number>(`(() => {
          let box = document.querySelector('.instructions .page-content');
          while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowY)) box = box.parentElement;
          return Math.min(box ? box.clientHeight : 0, innerHeight);
        })()`);
        assert.ok(stage >= 120, `${size.name}: the machine's screen is ${stage} px high`);
        assert.ok(text >= 120, `${size.name}: the instructions' text area is ${text} px high`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 720 });
    }
  });

  it('the desktop says what it is and what to use instead; the console\'s screen-reader mode is a visible toggle, announced, kept for the next visit', async () => {
    let frame = await launchInPlatform(page, flow, 'second student');
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    const f = () => toolFrame(page);
    // the canvas: named for what it is and pointing to the console, described by the way out
    const canvas = frame.getByRole('application', { name: /^Graphical desktop of box\. It cannot be read by a screen reader: use the Console view/ });
    await canvas.waitFor();
    assert.equal(await f().evaluate<string>("document.getElementById(document.querySelector('.host-vnc canvas').getAttribute('aria-describedby')).textContent"),
      'Ctrl+Shift+↑ or Esc twice leaves the screen');
    await frame.getByRole('button', { name: 'Console' }).click();
    const tree = frame.locator('.host-console:not([hidden]) .xterm-accessibility-tree');
    const toggle = frame.getByRole('button', { name: 'Screen reader mode' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    assert.equal(await tree.count(), 0, 'no accessibility tree before the student asks');
    await toggle.focus();
    await page.keyboard.press('Enter');
    await f().locator('#live', { hasText: 'Screen reader mode on' }).waitFor();
    await tree.waitFor({ state: 'attached' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    await expectAccessible(f(), 'lab page console, screen reader mode', EXPLAINED);
    // the next visit: the console opens in the mode the student chose
    frame = await launchInPlatform(page, flow, 'second student');
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    await frame.getByRole('button', { name: 'Console' }).click();
    await tree.waitFor({ state: 'attached' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    await toggle.press('Enter');
    await f().locator('#live', { hasText: 'Screen reader mode off' }).waitFor();
    await tree.waitFor({ state: 'detached' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
  });
});
