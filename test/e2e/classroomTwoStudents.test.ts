/**
 * The live classroom in headless Chromium with two students and a teacher, each page inside a
 * Moodle-like iframe, against the real tool with loopback machines: a raised hand reaches the
 * teacher on the right card only; a message to one student reaches only her page, a message to
 * everyone reaches both, pushed without a reload; a student cannot read or message the other's lab.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { BrowserContext, FrameLocator, Page } from 'playwright-core';
import { startTestTool, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { framedBrowser, screenshot, type FramedBrowser } from '../support/chromium.js';
import { SessionTokens } from '../../src/auth/session.js';

const SECRET_KEY = 'classroom-e2e-secret-key-0123456789abcdef';

describe('live classroom in the browser: two students and a teacher (loopback machines)', function () {
  this.timeout(120_000);
  let tool: TestTool;
  let rt: LoopbackRuntime;
  let ctx: BrowserContext;
  let host: FramedBrowser['host'];
  let framed: FramedBrowser | undefined;
  const tok: Record<string, string> = {};
  const pages: Record<string, { page: Page; frame: FrameLocator }> = {};

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    rt = await new LoopbackRuntime().listen();
    rt.onConnection = (c) => c.socket.on('data', (d: Buffer) => c.socket.write(d));
    tool = await startTestTool({ SECRET_KEY }, { runtime: rt, labs: new PageLabs() });
    const sessions = new SessionTokens(SECRET_KEY);
    tok.alice = await sessions.issue({ userId: 'alice', role: 'learner', contextId: 'course-2', name: 'Alice' });
    tok.bob = await sessions.issue({ userId: 'bob', role: 'learner', contextId: 'course-2', name: 'Bob' });
    tok.teacher = await sessions.issue({ userId: 'teacher', role: 'instructor', contextId: 'course-2', name: 'Teacher' });
    await rt.add({ id: 'alicelab2', userId: 'alice', contextId: 'course-2' });
    await rt.add({ id: 'boblab2', userId: 'bob', contextId: 'course-2' });
    ({ host, ctx } = framed = await framedBrowser(tool));
    for (const [who, lab] of [['alice', 'alicelab2'], ['bob', 'boblab2']] as const) {
      const page = await ctx.newPage();
      await page.goto(host.url(`${tool.url}/lab/${lab}#session=${tok[who]}`));
      const frame = page.frameLocator('#tool');
      await frame.getByRole('button', { name: 'Raise hand' }).waitFor({ timeout: 15_000 });
      pages[who] = { page, frame };
    }
  });
  after(async () => {
    await framed?.close();
    await tool?.shutdown();
    await rt?.close();
  });

  it('a hand, a message to one, a message to all: each reaches exactly whom it should, live', async () => {
    const { frame: alice } = pages.alice!;
    const { frame: bob, page: bobPage } = pages.bob!;
    await alice.getByRole('button', { name: 'Raise hand' }).click();
    const dlg = alice.getByRole('dialog');
    await dlg.getByRole('textbox', { name: 'Your message to the teacher' }).fill('Stuck on step 3');
    await dlg.getByRole('button', { name: 'Raise hand' }).click();

    const t = await ctx.newPage();
    await t.goto(`${tool.url}/course/course-2#session=${tok.teacher}`);
    const aliceCard = t.locator('[data-instance="alicelab2"]');
    const bobCard = t.locator('[data-instance="boblab2"]');
    await aliceCard.locator('.hand', { hasText: 'Stuck on step 3' }).waitFor({ timeout: 10_000 });
    await bobCard.waitFor();
    assert.equal(await bobCard.locator('.hand').count(), 0, 'Bob raised no hand');

    await aliceCard.getByRole('button', { name: 'Message to Alice' }).click();
    await t.getByRole('dialog').getByRole('textbox', { name: 'Message' }).fill('Only for Alice: look at the netmask.');
    await t.getByRole('dialog').getByRole('button', { name: 'Send' }).click();
    await t.locator('#live', { hasText: 'Message sent to 1 lab.' }).waitFor({ timeout: 5000 });
    await alice.locator('.messages .message', { hasText: 'Only for Alice' }).waitFor({ timeout: 5000 });

    await t.getByRole('button', { name: 'Message to everyone' }).click();
    await t.getByRole('dialog').getByRole('textbox', { name: 'Message' }).fill('Ten minutes left, everyone.');
    await t.getByRole('dialog').getByRole('button', { name: 'Send' }).click();
    await t.locator('#live', { hasText: 'Message sent to 2 labs.' }).waitFor({ timeout: 5000 });
    await alice.locator('.messages .message', { hasText: 'Ten minutes left' }).waitFor({ timeout: 5000 });
    await bob.locator('.messages .message', { hasText: 'Ten minutes left' }).waitFor({ timeout: 5000 });
    // pushed in order on one channel: Bob has the later message, so the earlier one for Alice would be there by now
    assert.deepEqual(await bob.locator('.messages .message').allTextContents().then((a) => a.filter((x) => x.includes('Only for Alice'))), [], 'Bob never sees Alice\'s message');
    await screenshot(bobPage, 'classroom-two-students-bob');
    await screenshot(t, 'classroom-two-students-teacher');
    await t.close();
  });

  it('a student can neither read the other\'s lab nor raise a hand on it', async () => {
    const get = await fetch(`${tool.url}/api/instances/alicelab2`, { headers: { authorization: `Bearer ${tok.bob}` } });
    assert.ok(get.status === 403 || get.status === 404, `Bob reading Alice's lab: ${get.status}`);
    const hand = await fetch(`${tool.url}/api/instances/alicelab2/hand`, { method: 'POST', headers: { authorization: `Bearer ${tok.bob}`, 'content-type': 'application/json' }, body: JSON.stringify({ message: 'not mine' }) });
    assert.ok(hand.status === 403 || hand.status === 404, `Bob raising a hand on Alice's lab: ${hand.status}`);
    const list = await fetch(`${tool.url}/api/courses/course-2/instances`, { headers: { authorization: `Bearer ${tok.bob}` } });
    assert.equal(list.status, 403, 'the class overview is for teachers');
  });
});
