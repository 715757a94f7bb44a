import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import { LabCatalog } from '../../src/labs/definition/LabCatalog.js';
import { validateLab } from '../../src/labs/definition/validateLab.js';
import { LabService } from '../../src/labs/LabService.js';
import type { InstanceMachines, LabEvent } from '../../src/labs/contracts.js';
import { CheckResult } from '../../src/store/CheckResult.js';
import { DevPlatformScore } from '../../src/devPlatform/models.js';
import { createLogger } from '../../src/logger.js';
import { imageDirWith, killQemuUnder, qemuProcessesUnder } from '../support/guestImage.js';
import { ConsoleSession } from '../support/console.js';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { atToolPage, startLtiTool, type LtiTestTool } from '../support/ltiTool.js';
import { waitFor } from '../support/tool.js';

const log = createLogger({ level: 'fatal', format: 'json' });

/** A lab of the edge cases, on the same guest image: a check that hangs, one that floods its output. */
function edgeLab() {
  const files = new Map(Object.entries({
    'lab.yaml': `schemaVersion: 1
title: Check edge cases
machines:
  - name: box
    image: lab-tiny
    consoles: [serial]
    memory: 256Mi
grading:
  mode: checks
  steps:
    hang:
      checks:
        - command: sleep 120
          timeoutSeconds: 2
          hint: This check never ends.
    flood:
      checks:
        - command: head -c 5000000 /dev/zero | tr '\\0' y; exit 3
          hint: Too much output.
    named:
      checks:
        - command: grep -qx "{{user.name}}" /tmp/owner
          hint: Write your name into /tmp/owner.
`,
    'instructions/01.md': '# Edge cases\n\n## Hang {#hang}\n\n## Flood {#flood}\n\n## Named {#named}\n',
  }).map(([k, v]) => [k, Buffer.from(v)]));
  const r = validateLab('check-edges', files, 'test/check-edges');
  assert.deepEqual(r.problems, []);
  return r.lab!;
}

describe('automatic checks on real QEMU guests (linux-basics, exec over the virtio-serial agent)', function () {
  this.timeout(1_200_000);
  let dataDir: string;
  let imageDir: string;
  let backend: QemuBackend;
  let svc: LabService;
  let t: LtiTestTool;
  const catalog = new LabCatalog({ log });

  before(async () => {
    // the examples run on debian-12, the edge-case lab on lab-tiny: one image folder with both
    imageDir = imageDirWith('debian-12');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'checks-qemu-'));
    backend = new QemuBackend({ dataDir, imageDir, qemuBin: 'qemu-system-x86_64', accel: 'auto', savedStates: false, maxVms: 4, maxMemoryMiB: 2048, log, bootTimeoutMs: 900_000 });
    svc = new LabService({ backend, labs: catalog, log });
    // a student here presses Check 14 times within a minute, more than the default limit per user
    // (the limit has its own test in checks.test.ts)
    t = await startLtiTool({ GRADE_RETRY_BASE_MS: '100', CHECK_RATE_PER_MINUTE: '60' }, { fake: { labs: catalog, runtime: svc, started: [] } });
    await catalog.add(edgeLab(), { source: 'admin' });
  });
  after(async () => {
    await t?.tool.shutdown();
    await svc?.close();
    for (const h of (await backend?.list()) ?? []) await backend.destroy(h).catch(() => undefined);
    await backend?.close();
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (imageDir) fs.rmSync(imageDir, { recursive: true, force: true });
  });

  async function api(method: string, p: string, token: string) {
    const res = await fetch(`${t.tool.url}${p}`, { method, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  const press = (id: string, step: string, token: string) => api('POST', `/api/instances/${id}/steps/${step}/check`, token);
  const running = (id: string) => waitFor(async () => (await svc.get(id))?.state === 'running', 900_000, `lab ${id} running`);

  it('fails with its hint, passes after the student types the solution on the console, the gradebook shows each new score up to 100 / 100 Completed, FullyGraded; the console never sees the check', async () => {
    const activity = await t.activity('linux-basics');
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: activity._id, user: 'student' }, { stopAt: atToolPage });
    const loc = new URL(r.location!);
    const instanceId = loc.pathname.split('/').at(-1)!;
    const token = loc.hash.replace('#session=', '');
    await running(instanceId);
    const inst = (await svc.get(instanceId))!;
    const events: LabEvent[] = [];
    svc.subscribe(instanceId, (e) => { if (e.type === 'check') events.push(e); });

    const con = new ConsoleSession(await svc.openChannel(instanceId, 'box', 'console'));
    await con.login(inst.machines.box!.username!, inst.machines.box!.password!, 60_000);
    const consoleBefore = con.output.length;

    const t0 = Date.now();
    const fail = await press(instanceId, 'make-dir', token);
    const failMs = Date.now() - t0;
    assert.equal(fail.status, 200);
    assert.equal(fail.body.passed, false);
    assert.equal((fail.body.checks as Array<{ hint?: string }>)[0]?.hint, 'The directory /tmp/notes does not exist yet. Try mkdir /tmp/notes');
    const ev = events.at(-1);
    assert.ok(ev?.type === 'check' && !ev.passed && ev.hint === 'The directory /tmp/notes does not exist yet. Try mkdir /tmp/notes', 'pushed live with the hint');

    await con.run('mkdir /tmp/notes');
    const t1 = Date.now();
    const pass = await press(instanceId, 'make-dir', token);
    const passMs = Date.now() - t1;
    assert.equal(pass.body.passed, true);
    assert.deepEqual(pass.body.score, { given: 10, max: 100, complete: false });
    console.log(`      check round trips on QEMU: failing ${failMs} ms, passing ${passMs} ms`);

    // the script checks (checks/sleeper-*.sh) run as they are in the guest
    assert.equal((await press(instanceId, 'start-process', token)).body.passed, false);
    await con.run('sleep 3000 & echo $! > /tmp/notes/sleeper.pid');
    assert.equal((await press(instanceId, 'start-process', token)).body.passed, true);

    // nothing of the check traffic reached the student's console
    await new Promise((res) => setTimeout(res, 500));
    const seen = con.output.slice(consoleBefore);
    for (const s of ['test -d /tmp/notes', 'names a running', 'kill -0', 'lab.agent']) assert.ok(!seen.includes(s), `the console shows "${s}"`);
    assert.doesNotMatch(seen, /\nR [0-9a-f]{12} -?\d+ /, 'no agent reply on the console');

    // the development platform's gradebook has the score the server computed (weights 1+2 of 10 → 30)
    await waitFor(async () => (await DevPlatformScore.findOne({ scoreGiven: 30 }).lean()) !== null, 30_000, 'score 30 in the gradebook');
    const page = await (await fetch(t.dp.urls.page)).text();
    assert.match(page, /data-user="101">30 \/ 100 <small>InProgress, FullyGraded<\/small>/);

    // the rest of the lab, as the instructions say: every check fails before and passes after
    for (const [step, solution] of [
      ['write-file', 'echo hello > /tmp/notes/hello.txt'],
      ['copy-file', 'cp /tmp/notes/hello.txt /tmp/notes/backup.txt'],
      ['stop-process', 'kill $(cat /tmp/notes/sleeper.pid)'],
      ['ssh-service', 'systemctl show -p MainPID --value ssh > /tmp/notes/sshd.pid'],
      ['ssh-port', 'echo 22 > /tmp/notes/ssh-port'],
    ] as const) {
      const before = await press(instanceId, step, token);
      assert.equal(before.body.passed, false, `${step} fails before: ${before.status} ${JSON.stringify(before.body)}`);
      await con.run(solution);
      const done = await press(instanceId, step, token);
      assert.equal(done.body.passed, true, `${step} passes after: ${JSON.stringify(done.body)}`);
    }
    await waitFor(async () => /data-user="101">100 \/ 100 <small>Completed, FullyGraded<\/small>/.test(await (await fetch(t.dp.urls.page)).text()), 30_000, 'Completed, FullyGraded in the gradebook');

    con.stream.destroy();

    // another student can neither run nor read this lab's checks
    const other = await t.tool.sessions.issue({ userId: 'someone-else', role: 'learner', contextId: inst.contextId });
    assert.equal((await press(instanceId, 'make-dir', other)).status, 403);
    assert.equal((await api('GET', `/api/instances/${instanceId}/checks`, other)).status, 403);
  });

  it('two-host-network: each check fails before and passes after the documented solution, on the machine it names', async () => {
    const inst = await svc.ensureInstance({ activityId: 'net-act', userId: 'net-user', contextId: 'net-course', labId: 'two-host-network', labVersion: '1' });
    await svc.start(inst._id);
    await running(inst._id);
    const m = (await svc.get(inst._id))!.machines as InstanceMachines;
    const token = await t.tool.sessions.issue({ userId: 'net-user', role: 'learner', contextId: 'net-course' });
    const alpha = new ConsoleSession(await svc.openChannel(inst._id, 'alpha', 'console'));
    const beta = new ConsoleSession(await svc.openChannel(inst._id, 'beta', 'console'));
    await alpha.login(m.alpha!.username!, m.alpha!.password!, 60_000);
    await beta.login(m.beta!.username!, m.beta!.password!, 60_000);
    const steps: Array<[string, ConsoleSession, string]> = [
      ['find-address', alpha, `echo ${m.beta!.ip} > /tmp/beta-address`],
      ['ping-beta', alpha, 'ping -c 3 $(cat /tmp/beta-address) | tee /tmp/ping.txt'],
      ['start-server', beta, 'mkdir -p /tmp/www && echo "hello from beta" > /tmp/www/index.html && (python3 -m http.server 8080 --directory /tmp/www > /tmp/www.log 2>&1 &) && for i in $(seq 60); do ss -ltnH "sport = :8080" | grep -q LISTEN && break; sleep 1; done'],
      ['fetch-page', alpha, 'curl -i http://$(cat /tmp/beta-address):8080/ | tee /tmp/page.txt'],
    ];
    for (const [step, con, solution] of steps) {
      assert.equal((await press(inst._id, step, token)).body.passed, false, `${step} fails before`);
      await con.run(solution, 90_000);
      const done = await press(inst._id, step, token);
      assert.equal(done.body.passed, true, `${step} passes after: ${JSON.stringify(done.body)}`);
    }
    assert.deepEqual((await api('GET', `/api/instances/${inst._id}/checks`, token)).body.score, { given: 100, max: 100, complete: true, passed: 4, total: 4 });
    alpha.stream.destroy();
    beta.stream.destroy();
    await svc.destroy(inst._id);
  });

  it('stops a hung check at its timeout ("timed out", failed) and cuts megabytes of output', async () => {
    const inst = await svc.ensureInstance({ activityId: 'edge-act', userId: 'edge-user', contextId: 'edge-course', labId: 'check-edges', labVersion: '1' });
    await svc.start(inst._id);
    await running(inst._id);
    const token = await t.tool.sessions.issue({ userId: 'edge-user', role: 'learner', contextId: 'edge-course' });

    const t0 = Date.now();
    const hang = await press(inst._id, 'hang', token);
    const ms = Date.now() - t0;
    const h = (hang.body.checks as Array<{ passed: boolean; timedOut: boolean; hint?: string }>)[0]!;
    assert.deepEqual([h.passed, h.timedOut, h.hint], [false, true, 'This check never ends.']);
    assert.ok(ms >= 1900 && ms < 9000, `stopped after ${ms} ms`);
    assert.match((await CheckResult.findOne({ instanceId: inst._id, stepId: 'hang' }).lean())?.output ?? '', /^timed out after 2 s/);

    const t1 = Date.now();
    const flood = await press(inst._id, 'flood', token);
    console.log(`      5 MB of output cut in ${Date.now() - t1} ms`);
    assert.equal(flood.body.passed, false);
    const row = await CheckResult.findOne({ instanceId: inst._id, stepId: 'flood' }).lean();
    assert.equal(row?.exitCode, 3);
    assert.ok(Buffer.byteLength(row?.output ?? '') <= 4096 + 20);
    assert.match(row?.output ?? '', /^y{100}/);
    assert.match(row?.output ?? '', /\[output cut\]$/);

    // the agent is still usable after both
    const again = await press(inst._id, 'hang', token);
    assert.equal(again.status, 200);

    // a hostile LMS name reaches the guest (where checks run as root) as data, never as code
    const name = 'x" /tmp/owner ; touch /tmp/inj ; echo "';
    const named = await t.tool.sessions.issue({ userId: 'edge-user', role: 'learner', contextId: 'edge-course', name });
    assert.equal((await press(inst._id, 'named', named)).body.passed, false, 'the name alone does not pass');
    const injected = await svc.exec(inst._id, 'box', 'test -e /tmp/inj', { timeoutMs: 10_000, maxOutputBytes: 1024 });
    assert.equal(injected.exitCode, 1, 'the name ran as code in the guest');
    await svc.exec(inst._id, 'box', 'printf "%s\\n" "$N" > /tmp/owner', { timeoutMs: 10_000, maxOutputBytes: 1024, env: { N: name } });
    assert.equal((await press(inst._id, 'named', named)).body.passed, true, 'the exact name passes');
    await svc.destroy(inst._id);
    assert.equal(qemuProcessesUnder(path.join(dataDir, 'qemu', `lab-${inst._id}-g1`)).length, 0);
  });
});
