/**
 * "Check" on the lab page in headless Chromium, against the real tool, the real catalog and a
 * real QEMU guest: the student sees the hint, fixes the machine, presses Check again and sees it
 * pass — and a check run elsewhere shows up live — without reloading. The teacher's overview lists
 * which checks passed and when. The page does not care which OS runs the checks: the lab is a
 * lab-tiny one (boots in seconds); checksQemu.test.ts runs the Debian examples' checks.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import { LabCatalog } from '../../src/labs/definition/LabCatalog.js';
import { validateLab } from '../../src/labs/definition/validateLab.js';
import { LabService } from '../../src/labs/LabService.js';
import { createLogger } from '../../src/logger.js';
import { ensureGuestImage, killQemuUnder } from '../support/guestImage.js';
import { ConsoleSession } from '../support/console.js';
import { launchChromium, screenshot } from '../support/chromium.js';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';

const log = createLogger({ level: 'fatal', format: 'json' });

/** Five steps with checks weighing 8 in all (the first is worth 12.5 of 100), on lab-tiny. */
function pageLab() {
  const files = new Map(Object.entries({
    'lab.yaml': `schemaVersion: 1
title: Files and processes
machines:
  - name: box
    image: lab-tiny
    consoles: [serial]
    memory: 256Mi
    credentials: { username: student, generate: true }
grading:
  mode: checks
  steps:
    make-dir:
      checks:
        - command: test -d /tmp/notes
          hint: The directory /tmp/notes does not exist yet. Try mkdir /tmp/notes
    write-file:
      checks:
        - command: grep -q "hello" /tmp/notes/hello.txt
          weight: 2
          hint: /tmp/notes/hello.txt should contain the word hello.
    copy-file:
      checks:
        - command: cmp -s /tmp/notes/hello.txt /tmp/notes/backup.txt
          hint: /tmp/notes/backup.txt should be an exact copy of hello.txt.
    start-process:
      checks:
        - command: kill -0 "$(cat /tmp/notes/sleeper.pid)"
          weight: 2
          hint: Start sleep 3000 in the background and save its PID in /tmp/notes/sleeper.pid
    stop-process:
      checks:
        - command: test -s /tmp/notes/sleeper.pid && ! kill -0 "$(cat /tmp/notes/sleeper.pid)"
          weight: 2
          hint: The process whose PID is in /tmp/notes/sleeper.pid is still running.
`,
    'instructions/01.md': [
      '# Files and processes', '',
      '## Make a directory {#make-dir}', '', 'Press **Check my work**.', '',
      '## Write a file {#write-file}', '',
      '## Copy a file {#copy-file}', '',
      '## Start a process {#start-process}', '',
      '## Stop it {#stop-process}', '',
    ].join('\n'),
  }).map(([k, v]) => [k, Buffer.from(v)]));
  const r = validateLab('check-page', files, 'test/check-page');
  assert.deepEqual(r.problems, []);
  return r.lab!;
}

describe('lab page: the "Check" button in the browser (real QEMU guest)', function () {
  this.timeout(240_000);
  let dataDir: string;
  let backend: QemuBackend;
  let svc: LabService;
  let tool: TestTool;
  let browser: Browser;
  const catalog = new LabCatalog({ log });

  before(async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    const imageDir = ensureGuestImage();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'checks-page-'));
    backend = new QemuBackend({ dataDir, imageDir, qemuBin: 'qemu-system-x86_64', accel: 'auto', savedStates: false, maxVms: 2, maxMemoryMiB: 1024, log });
    svc = new LabService({ backend, labs: catalog, log });
    tool = await startTestTool({}, { runtime: svc, labs: catalog });
    await catalog.add(pageLab(), { source: 'admin' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await tool?.shutdown();
    await svc?.close();
    for (const h of (await backend?.list()) ?? []) await backend.destroy(h).catch(() => undefined);
    await backend?.close();
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('shows the hint, then "Passed" and the new score after the student fixes the machine, live results of checks run elsewhere, and the teacher sees outputs and who passed what when', async () => {
    const inst = await svc.ensureInstance({ activityId: 'act-page', userId: 'ada', contextId: 'course-9', labId: 'check-page', labVersion: '1' });
    await svc.start(inst._id);
    await waitFor(async () => (await svc.get(inst._id))?.state === 'running', 120_000, 'lab running');
    const creds = (await svc.get(inst._id))!.machines.box!;
    const token = await tool.sessions.issue({ userId: 'ada', role: 'learner', contextId: 'course-9', name: 'Ada' });

    const page: Page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
    await page.goto(`${tool.url}/lab/${inst._id}#session=${token}`);
    const result = page.locator('.check-row[data-check="make-dir"] .check-status');
    await page.locator('.check-row[data-check="make-dir"] button', { hasText: 'Check my work' }).click();
    await result.filter({ hasText: 'Not yet' }).waitFor({ timeout: 20_000 });
    assert.match(await result.innerText(), /The directory \/tmp\/notes does not exist yet\. Try mkdir \/tmp\/notes/);
    await screenshot(page, 'checks-hint');

    // the student fixes it on the machine's console
    const con = new ConsoleSession(await svc.openChannel(inst._id, 'box', 'console'));
    await con.login(creds.username!, creds.password!, 60_000);
    await con.run('mkdir /tmp/notes && echo hello > /tmp/notes/hello.txt');

    const navigations: string[] = [];
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
    await page.locator('.check-row[data-check="make-dir"] button', { hasText: 'Check my work' }).click();
    await result.filter({ hasText: 'Passed' }).waitFor({ timeout: 20_000 });
    assert.doesNotMatch(await result.innerText(), /mkdir/, 'no hint once passed');
    await page.locator('input.step-box[data-step="make-dir"]:checked').waitFor({ timeout: 5000 });
    await waitFor(async () => Boolean((await svc.get(inst._id))?.steps?.['make-dir']), 5000, 'the tick saved');
    await page.locator('.instructions .progress .text', { hasText: 'Score 12.5 of 100' }).waitFor({ timeout: 5000 });

    // a check run from another tab (or the background) is pushed to this page live
    const other = await fetch(`${tool.url}/api/instances/${inst._id}/steps/write-file/check`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(other.status, 200);
    await page.locator('.check-row[data-check="write-file"] .check-status', { hasText: 'Passed' }).waitFor({ timeout: 10_000 });
    await page.locator('.instructions .progress .text', { hasText: 'Score 37.5 of 100' }).waitFor({ timeout: 5000 });
    assert.deepEqual(navigations, [], 'the page never reloaded');
    await screenshot(page, 'checks-passed');
    con.stream.destroy();

    // the teacher's overview: which checks passed and when
    const teacher = await tool.sessions.issue({ userId: 'prof', role: 'instructor', contextId: 'course-9', name: 'Prof' });
    const ov = (await (await fetch(`${tool.url}/api/courses/course-9/instances`, { headers: { authorization: `Bearer ${teacher}` } })).json()) as { instances: Array<{ id: string; checks: { passed: number; total: number; score: number; list: Array<{ stepId: string; passedAt: string }> } | null }> };
    const row = ov.instances.find((r) => r.id === inst._id);
    assert.deepEqual(row?.checks && { passed: row.checks.passed, total: row.checks.total, score: row.checks.score, steps: row.checks.list.map((l) => l.stepId) }, { passed: 2, total: 5, score: 37.5, steps: ['make-dir', 'write-file'] });
    const tpage = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
    await tpage.goto(`${tool.url}/course/course-9#session=${teacher}`);
    await tpage.locator(`[data-instance="${inst._id}"] .progress .text`, { hasText: '2/5 checks · 37.5 / 100' }).waitFor({ timeout: 10_000 });
    await tpage.locator(`[data-instance="${inst._id}"] details.checks-passed summary`).click();
    await tpage.locator(`[data-instance="${inst._id}"] li[data-passed="write-file/0"]`).waitFor();
    await screenshot(tpage, 'checks-teacher-overview');

    // watching the student's lab, the teacher sees each check's output but cannot run checks
    const wpage = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
    await wpage.goto(`${tool.url}/lab/${inst._id}#session=${teacher}`);
    const watched = wpage.locator('.check-row[data-check="make-dir"]');
    await watched.locator('details summary', { hasText: 'Check 1 on box: passed' }).waitFor({ timeout: 15_000 });
    assert.equal(await watched.locator('button').count(), 0, 'no Check button for a teacher');
    await watched.locator('details summary').click();
    assert.equal(await watched.locator('pre.check-output').innerText(), '(no output)');
  });
});
