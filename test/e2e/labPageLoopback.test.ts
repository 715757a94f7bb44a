/**
 * The lab page in headless Chromium, inside a Moodle-like iframe at 1366×768, against the real
 * tool with a loopback runtime (its "machines" are a tiny RFB server and an echoing console).
 * Covers the page itself — desktop, console, send to machine, steps and score, reconnect,
 * provisioning, teacher view-only and overview — without needing QEMU.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { BrowserContext, FrameLocator, Page } from 'playwright-core';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { serveRfb, type RfbSinkState } from '../support/rfbSink.js';
import { framedBrowser, screenshot, type FramedBrowser } from '../support/chromium.js';
import { SessionTokens } from '../../src/auth/session.js';
import { GradeOutbox } from '../../src/store/GradeOutbox.js';
import { LabInstance } from '../../src/store/LabInstance.js';

const SECRET_KEY = 'lab-page-e2e-secret-key-0123456789abcdef';
/** The canvas as these browser-side functions use it (the test compiles without the DOM lib). */
type Canvas = { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null };

/** Distinct colours and bright pixels of the noVNC canvas (a blank canvas has one colour). */
async function canvasStats(frame: FrameLocator): Promise<{ colours: number; bright: number; w: number; h: number }> {
  return frame.locator('.host-vnc canvas').first().evaluate((el) => {
    const c = el as unknown as Canvas;
    const ctx = c.getContext('2d')!;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set<number>();
    let bright = 0;
    for (let i = 0; i < d.length; i += 16) {
      seen.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
      if (d[i]! > 200 && d[i + 1]! > 200 && d[i + 2]! > 200) bright++;
    }
    return { colours: seen.size, bright, w: c.width, h: c.height };
  });
}

describe('lab page in the browser (loopback machines)', function () {
  this.timeout(120_000);
  let tool: TestTool;
  let rt: LoopbackRuntime;
  let ctx: BrowserContext;
  let host: FramedBrowser['host'];
  let framed: FramedBrowser | undefined;
  const rfb: RfbSinkState = { keys: [], pointerEvents: 0 };
  const tok: Record<string, string> = {};

  before(async () => {
    // always the bundle of this checkout, never a stale one
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    rt = await new LoopbackRuntime().listen();
    rt.onConnection = (c) => {
      if (c.channel === 'vnc') serveRfb(c.socket, rfb);
      else c.socket.on('data', (d: Buffer) => c.socket.write(d.toString('latin1').replace(/\r/g, '\r\n')));
    };
    tool = await startTestTool({ SECRET_KEY }, { runtime: rt, labs: new PageLabs() });
    tool.grades.use({ targets: { targetFor: async (id) => ({ issuer: 'https://lms.example', clientId: 'c1', lineItemUrl: `https://lms.example/li/${id}`, userSub: `sub-${id}` }) } });
    rt.grades = tool.grades;
    const sessions = new SessionTokens(SECRET_KEY);
    tok.alice = await sessions.issue({ userId: 'alice', role: 'learner', contextId: 'course-1', name: 'Alice' });
    tok.teacher = await sessions.issue({ userId: 'teacher', role: 'instructor', contextId: 'course-1', name: 'Teacher' });
    await rt.add({ id: 'alicelab', userId: 'alice' });
    ({ host, ctx } = framed = await framedBrowser(tool));
  });
  after(async () => {
    await framed?.close();
    await tool?.shutdown();
    await rt?.close();
  });

  let student: Page;
  let frame: FrameLocator;

  it('shows the desktop of a running lab inside the course iframe (canvas not blank)', async () => {
    student = await ctx.newPage();
    await student.goto(host.url(`${tool.url}/lab/alicelab#session=${tok.alice}`));
    frame = student.frameLocator('#tool');
    await frame.locator('h1', { hasText: 'Linux basics' }).waitFor();
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 15_000 });
    await waitFor(async () => (await canvasStats(frame)).colours > 20, 10_000, 'the desktop drawn');
    const s = await canvasStats(frame);
    assert.ok(s.bright > 100, `text band visible (${s.bright} bright pixels)`);
    const src = await frame.locator('body').evaluate(() => (globalThis as unknown as { location: { href: string } }).location.href);
    assert.ok(!src.includes('session='), 'the session token was removed from the URL');
    await screenshot(student, 'loopback-student-desktop');
  });

  /** The student opens the Console tab, runs a command, and sees it echoed. */
  async function typeInConsole(cmd: string): Promise<void> {
    await frame.getByRole('button', { name: 'Console', exact: true }).click();
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor();
    await frame.locator('.host-console .xterm').click();
    await student.keyboard.type(cmd);
    await student.keyboard.press('Enter');
    await frame.locator('.xterm-rows', { hasText: cmd }).waitFor();
  }

  it('echoes typing in the console and types a code block with "Send to web"', async () => {
    await typeInConsole('echo lab-4242');
    await frame.getByRole('button', { name: 'Send to web' }).click();
    await waitFor(() => rt.connections.some((c) => c.channel === 'console' && Buffer.concat(c.received).toString().includes('echo sent-$((6*7))\r')), 5000, 'the command sent');
    await frame.locator('.xterm-rows', { hasText: 'echo sent-$((6*7))' }).waitFor();
  });

  it('ticks every step to 100 % and publishes the full score', async () => {
    for (const id of ['login', 'hostname']) {
      await frame.locator(`input[data-step="${id}"]`).check();
      await frame.locator(`input[data-step="${id}"]:not([disabled])`).waitFor();
    }
    await frame.getByRole('button', { name: 'Next ›' }).click();
    await frame.locator('input[data-step="file"]').check();
    await frame.locator('.instructions .progress .text', { hasText: '3 of 3 steps · 100 %' }).waitFor();
    // the other tab's view can update (server push) a moment before the score is written
    await waitFor(async () => (await GradeOutbox.countDocuments({ instanceId: 'alicelab', 'score.activityProgress': 'Completed' })) > 0, 5000, 'the final score');
    const last = await GradeOutbox.findOne({ instanceId: 'alicelab' }).sort({ timestamp: -1 }).lean();
    assert.deepEqual([last?.score.scoreGiven, last?.score.scoreMaximum, last?.score.activityProgress, last?.score.gradingProgress], [10, 10, 'Completed', 'FullyGraded']);
    await frame.getByRole('button', { name: '‹ Previous' }).click();
    await screenshot(student, 'loopback-student-console');
  });

  it('reconnects by itself when the connection to the machine drops', async () => {
    const dials = rt.dials;
    for (const c of rt.connections) if (c.channel === 'console' && !c.socket.destroyed) c.socket.destroy();
    await frame.locator('.panel:not([hidden]) .link-reconnecting').waitFor({ timeout: 5000 });
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 10_000 });
    assert.ok(rt.dials > dials, 'a new connection with a new ticket');
  });

  it('leaves a screen with Ctrl+Shift+Up and types pasted text into the desktop as keys', async () => {
    await frame.locator('.host-console .xterm').click();
    await student.keyboard.press('Control+Shift+ArrowUp');
    assert.equal(await frame.locator(':focus').getAttribute('role'), 'tab', 'focus back on the machine tab');
    await frame.getByRole('button', { name: 'Desktop', exact: true }).click();
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor();
    const keys = rfb.keys.length;
    await frame.getByRole('button', { name: 'Paste as keys' }).click();
    await frame.getByRole('dialog').getByRole('textbox').fill('ab');
    await frame.getByRole('dialog').getByRole('button', { name: 'Type it' }).click();
    await waitFor(() => rfb.keys.length >= keys + 2, 5000, 'the keys typed');
    assert.deepEqual(rfb.keys.slice(keys), [0x61, 0x62]);
    await frame.getByRole('button', { name: 'Console', exact: true }).click();
  });

  it('pauses and resumes: the screens close with the reason and come back', async () => {
    await frame.getByRole('button', { name: 'Pause', exact: true }).click();
    await frame.locator('.paused-note').waitFor();
    await frame.locator('.panel:not([hidden]) .link-closed', { hasText: 'lab paused' }).waitFor({ timeout: 5000 });
    await frame.getByRole('button', { name: 'Resume', exact: true }).click();
    await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 10_000 });
    assert.equal(await frame.locator('.paused-note').isVisible(), false);
  });

  it('warns before the lab expires', async () => {
    rt.emit({ type: 'expiry-warning', instanceId: 'alicelab', expiresAt: new Date(Date.now() + 4 * 60_000).toISOString() });
    await frame.locator('.banner.warn', { hasText: /stops in about 4 min/ }).waitFor({ timeout: 5000 });
    await frame.locator('.time-left.warn').waitFor();
  });

  it('lets the teacher see progress in the overview, watch view-only (no input reaches the machine) and reset', async () => {
    const t = await ctx.newPage();
    await t.goto(`${tool.url}/course/course-1#session=${tok.teacher}`);
    const row = t.locator('[data-instance="alicelab"]');
    await row.locator('.progress .text', { hasText: '3/3 · 100 %' }).waitFor();
    await screenshot(t, 'loopback-teacher-overview');
    await row.getByRole('link', { name: 'Open (view only)' }).click();
    await t.locator('.view-only').waitFor();
    await t.locator('.panel:not([hidden]) .link-connected', { hasText: 'view only' }).waitFor({ timeout: 15_000 });
    await waitFor(async () => (await t.locator('.host-vnc canvas').first().evaluate((el) => (el as unknown as Canvas).width)) > 0, 10_000, 'teacher canvas');
    const keys = rfb.keys.length;
    await t.locator('.host-vnc canvas').first().click();
    await t.keyboard.type('rm -rf');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(rfb.keys.length, keys, 'no key reached the desktop');
    assert.equal(await t.locator('input.step-box:not([disabled])').count(), 0, 'teachers cannot tick steps');
    await screenshot(t, 'loopback-teacher-view');
    await t.getByRole('button', { name: 'Reset web' }).click();
    await t.getByRole('dialog').getByRole('button', { name: 'Reset web' }).click();
    await waitFor(() => rt.resets.some((r) => r.id === 'alicelab' && r.machine === 'web'), 5000, 'reset requested');
    await t.close();
  });

  it('shows provisioning progress pushed by the server, then the lab; a failure offers a retry', async () => {
    await rt.add({ id: 'provlab', userId: 'alice', state: 'provisioning' });
    await LabInstance.updateOne({ _id: 'provlab' }, { $set: { progress: { phase: 'queued', percent: 0, message: 'Queued' } } });
    const p = await ctx.newPage();
    await p.goto(host.url(`${tool.url}/lab/provlab#session=${tok.alice}`));
    const f = p.frameLocator('#tool');
    await f.getByRole('heading', { name: 'Preparing your lab' }).waitFor();
    await f.locator('#app[data-live="up"]').waitFor();
    rt.emit({ type: 'progress', instanceId: 'provlab', progress: { phase: 'disks', percent: 35, message: 'Copying the disk images' } });
    await f.locator('.provisioning .progress .text', { hasText: '35 %' }).waitFor();
    await f.locator('.phases li.current', { hasText: 'Preparing the disks' }).waitFor();
    await screenshot(p, 'loopback-provisioning');
    await LabInstance.updateOne({ _id: 'provlab' }, { $set: { failureReason: 'The machine "web" did not boot in time.' } });
    await rt.setStateForTest('provlab', 'failed');
    await f.getByRole('alert').getByText('did not boot in time').waitFor();
    await f.getByRole('button', { name: 'Try again' }).click();
    await f.locator('.workspace').waitFor();
    await p.close();
  });

  it('live classroom: the student raises a hand, the teacher sees it in the overview, sends a message, lowers the hand', async () => {
    await typeInConsole('ping -c1 glance-4343');
    await frame.getByRole('button', { name: 'Raise hand' }).click();
    const dlg = frame.getByRole('dialog');
    await dlg.getByRole('textbox', { name: 'Your message to the teacher' }).fill('My ping gets no answer');
    await dlg.getByRole('button', { name: 'Raise hand' }).click();
    await frame.locator('.hand', { hasText: 'Hand raised: My ping gets no answer' }).waitFor({ timeout: 5000 });

    const t = await ctx.newPage();
    await t.goto(`${tool.url}/course/course-1#session=${tok.teacher}`);
    const row = t.locator('[data-instance="alicelab"]');
    await row.locator('.hand', { hasText: 'My ping gets no answer' }).waitFor({ timeout: 10_000 });
    // the student's open console, at a glance
    await row.locator('.console-tail', { hasText: 'ping -c1 glance-4343' }).waitFor({ timeout: 5000 });
    await screenshot(t, 'loopback-classroom-overview');
    await row.getByRole('button', { name: 'Message to Alice' }).click();
    await t.getByRole('dialog').getByRole('textbox', { name: 'Message' }).fill('Check the address in step 2.');
    await t.getByRole('dialog').getByRole('button', { name: 'Send' }).click();
    await t.locator('#live', { hasText: 'Message sent to 1 lab.' }).waitFor({ timeout: 5000 });
    // pushed to the open lab page, and announced there
    await frame.locator('.messages .message', { hasText: 'Check the address in step 2.' }).waitFor({ timeout: 5000 });
    await frame.locator('#live', { hasText: 'Message from Teacher: Check the address in step 2.' }).waitFor();
    await screenshot(student, 'loopback-classroom-student');
    await row.getByRole('button', { name: "Lower Alice's hand" }).click();
    await frame.getByRole('button', { name: 'Raise hand' }).waitFor({ timeout: 5000 });
    assert.equal(await frame.locator('.hand').count(), 0, 'the hand is gone from the student\'s page');

    // the teacher asks to take control; it begins when Alice allows it and ends when she says so
    await row.getByRole('link', { name: 'Open (view only)' }).click();
    await t.locator('.view-only').waitFor();
    await t.getByRole('button', { name: 'Ask to take control' }).click();
    await t.locator('.takeover-state', { hasText: 'Waiting for the student to accept' }).waitFor({ timeout: 5000 });
    await frame.getByRole('alert').getByText('Teacher asks to take control of your lab').waitFor({ timeout: 5000 });
    await frame.getByRole('button', { name: 'Allow' }).click();
    await frame.locator('.takeover p', { hasText: 'Teacher has control of your lab since' }).waitFor({ timeout: 5000 });
    await t.locator('.takeover-state', { hasText: 'You have control of this lab' }).waitFor({ timeout: 5000 });
    await t.getByRole('button', { name: 'Console', exact: true }).click();
    await t.locator('.panel:not([hidden]) .link-connected', { hasText: /^Connected$/ }).waitFor({ timeout: 15_000 });
    await t.locator('.host-console:not([hidden]) .xterm').click();
    await t.keyboard.type('echo help-from-teacher');
    await t.keyboard.press('Enter');
    await waitFor(() => rt.connections.some((c) => c.channel === 'console' && Buffer.concat(c.received).toString().includes('echo help-from-teacher')), 5000, 'the teacher\'s typing at the machine');
    await screenshot(student, 'loopback-takeover-student');
    await frame.getByRole('button', { name: 'End the take-over' }).click();
    await t.getByRole('button', { name: 'Ask to take control' }).waitFor({ timeout: 5000 });
    await t.locator('.panel:not([hidden]) .link-connected', { hasText: 'view only' }).waitFor({ timeout: 15_000 });
    await frame.locator('.takeover-log summary', { hasText: 'Take-overs of this lab' }).click();
    await frame.locator('.takeover-log li', { hasText: 'Teacher:' }).waitFor();
    await t.close();
  });

  it('tells the student when the lab is stopped', async () => {
    // before stopping, the student is told until when a stop keeps the work: the keep time (7 days) from now
    await frame.getByRole('button', { name: 'Stop lab', exact: true }).click();
    const dialog = frame.getByRole('dialog');
    const said = await dialog.locator('p').innerText();
    const dates = await frame.locator('body').evaluate(() => [0, 60_000].map((d) => new Date(Date.now() - d + 7 * 86_400_000).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' })));
    assert.ok(dates.some((d) => said === `Your machines are shut down. Files saved on their disks are kept until ${d}: continue the lab any time before then.`), `${said} / ${dates.join(' | ')}`);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await LabInstance.updateOne({ _id: 'alicelab' }, { $set: { storageGiB: 10 } });
    await rt.stop('alicelab');
    await frame.getByRole('heading', { name: 'Lab not running' }).waitFor({ timeout: 5000 });
    // until when the stopped lab keeps its disks (the lab's expiry, in the page's language), and the way back
    const expires = (await rt.get('alicelab'))!.expiresAt!;
    // formatted by the browser's Intl (its ICU may space "AM" differently from Node's)
    const date = await frame.locator('body').evaluate((_b, iso) => new Date(iso).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' }), expires.toISOString());
    await frame.locator('.stopped p', { hasText: `Its machines keep their disks until ${date}; then they are deleted.` }).waitFor({ timeout: 5000 });
    await frame.getByRole('button', { name: 'Continue the lab' }).waitFor();
    // its deletion is near (within the 2 days' warning): the page says so when it shows the stopped lab
    await frame.locator('.banner.warn', { hasText: /^Your stopped lab and its disks are deleted in about .+\. Continue it to keep working\.$/ }).waitFor({ timeout: 5000 });
    // the teacher's overview says the same date on the student's row
    const t = await ctx.newPage();
    await t.goto(`${tool.url}/course/course-1#session=${tok.teacher}`);
    await t.locator('[data-kept-until="alicelab"]', { hasText: `stopped; kept until ${date} · 10 GiB of disks` }).waitFor({ timeout: 10_000 });
    await t.close();
  });
});
