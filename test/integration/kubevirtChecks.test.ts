/**
 * Automatic checks on KubeVirt VMs: the real API server, the KubeVirt stand-in booting a real QEMU
 * guest, the backend as the tool's ServiceAccount (k8s/ RBAC). A check runs through the VMI
 * `portforward` subresource to the exec agent cloud-init installed in the guest, authenticated
 * with the machine's token from its Secret — never on the serial console.
 */
import { ImageCatalog } from '../../src/images/ImageCatalog.js';
import { STANDIN_IMAGE_CATALOG } from '../support/imageCatalog.js';
import assert from 'node:assert/strict';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import { WsBytes } from '../support/k8s/wsBytes.js';
import { TOOL_NS, TOOL_SA, toolBackend, toolMay } from '../support/kubevirtTool.js';
import { ConsoleSession } from '../support/console.js';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { SessionTokens } from '../../src/auth/session.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import { AGENT_TCP_PORT as AGENT_PORT } from '../../src/backends/kubevirt/vmAgent.js';
import { LabCatalog } from '../../src/labs/definition/LabCatalog.js';
import { validateLab } from '../../src/labs/definition/validateLab.js';
import { LabService } from '../../src/labs/LabService.js';
import { checkProgram } from '../../src/labs/checks/checkProgram.js';
import type { LabEvent } from '../../src/labs/contracts.js';
import { CheckResult } from '../../src/store/CheckResult.js';
import { createLogger } from '../../src/logger.js';

const SECRET_KEY = 'kubevirt-checks-secret-key-0123456789abcdef';
const log = createLogger({ level: 'fatal', format: 'json' });

/** A one-VM lab of the edge cases: a check that hangs, one that floods its output. */
function edgeLab() {
  const files = new Map(Object.entries({
    'lab.yaml': `schemaVersion: 1
title: Check edge cases on KubeVirt
machines:
  - name: box
    image: lab-tiny
    consoles: [serial]
    memory: 128Mi
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
`,
    'instructions/01.md': '# Edge cases\n\n## Hang {#hang}\n\n## Flood {#flood}\n',
  }).map(([k, v]) => [k, Buffer.from(v)]));
  const r = validateLab('kv-check-edges', files, 'test/kv-check-edges');
  assert.deepEqual(r.problems, []);
  return r.lab!;
}

describe('automatic checks on KubeVirt VMs (portforward to the exec agent, as the tool ServiceAccount)', function () {
  this.timeout(1_200_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  let backend: KubeVirtBackend;
  let svc: LabService;
  let tool: TestTool;
  const catalog = new LabCatalog({ log, images: ImageCatalog.load(STANDIN_IMAGE_CATALOG) });
  const sessions = new SessionTokens(SECRET_KEY);
  let instanceId = '';
  let edgeId = '';
  let ns = '';
  let token = '';
  let con: ConsoleSession;

  before(async () => {
    ({ cp, standIn } = await sharedKubeVirt());
    ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 900_000 }));
    svc = new LabService({ backend, labs: catalog, log, activityWriteMs: 0 });
    tool = await startTestTool({ SECRET_KEY }, { runtime: svc, labs: catalog });
    await catalog.add(edgeLab(), { source: 'admin' });
  });
  after(async () => {
    con?.stream.destroy();
    for (const id of [instanceId, edgeId]) if (id) await svc?.destroy(id).catch(() => undefined);
    await tool?.shutdown();
    await svc?.close();
    await backend?.close();
  });

  async function api(method: string, p: string, tok: string) {
    const res = await fetch(`${tool.url}${p}`, { method, headers: { authorization: `Bearer ${tok}`, accept: 'application/json' } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  const press = (step: string) => api('POST', `/api/instances/${instanceId}/steps/${step}/check`, token);
  const pfUrl = (namespace: string, vmi: string) => `${standIn.baseUrl.replace(/^https/, 'wss')}/apis/subresources.kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstances/${vmi}/portforward/${AGENT_PORT}/tcp`;

  it('linux-basics on KubeVirt: a check fails with its hint, passes after the student types the solution on the console; the console never sees the check', async () => {
    const inst = await svc.ensureInstance({ activityId: 'kv-act', userId: 'kv-student', contextId: 'kv-course', labId: 'linux-basics', labVersion: '1' });
    instanceId = inst._id;
    const t0 = Date.now();
    await svc.start(instanceId);
    await waitFor(async () => (await svc.get(instanceId))?.state === 'running', 900_000, 'lab running');
    const doc = (await svc.get(instanceId))!;
    ns = doc.handle!.name;
    process.stderr.write(`      [kubevirt] linux-basics running in ${Date.now() - t0} ms\n`);
    token = await sessions.issue({ userId: 'kv-student', role: 'learner', contextId: 'kv-course', name: 'Ada' });
    const events: LabEvent[] = [];
    svc.subscribe(instanceId, (e) => { if (e.type === 'check') events.push(e); });

    con = new ConsoleSession(await svc.openChannel(instanceId, 'box', 'console'));
    await con.login(doc.machines.box!.username!, doc.machines.box!.password!, 120_000);
    const consoleBefore = con.output.length;

    const t1 = Date.now();
    const fail = await press('make-dir');
    const failMs = Date.now() - t1;
    assert.equal(fail.status, 200, JSON.stringify(fail.body));
    assert.equal(fail.body.passed, false, JSON.stringify(fail.body));
    assert.equal((fail.body.checks as Array<{ hint?: string }>)[0]?.hint, 'The directory /tmp/notes does not exist yet. Try mkdir /tmp/notes');
    assert.ok(events.some((e) => e.type === 'check' && !e.passed), 'pushed live');

    await con.run('mkdir /tmp/notes');
    const t2 = Date.now();
    const pass = await press('make-dir');
    const passMs = Date.now() - t2;
    assert.equal(pass.body.passed, true, JSON.stringify(pass.body));
    process.stderr.write(`      [kubevirt] check round trips through portforward: failing ${failMs} ms, passing ${passMs} ms\n`);

    // a script check (checks/sleeper-running.sh), fails before and passes after
    assert.equal((await press('start-process')).body.passed, false);
    await con.run('sleep 3000 & echo $! > /tmp/notes/sleeper.pid');
    assert.equal((await press('start-process')).body.passed, true);

    await new Promise((r) => setTimeout(r, 500));
    const seen = con.output.slice(consoleBefore);
    for (const s of ['test -d /tmp/notes', 'kill -0', 'lab-agent', 'denied']) assert.ok(!seen.includes(s), `the console shows "${s}"`);
    assert.doesNotMatch(seen, /\nR [0-9a-f]{12} -?\d+ /, 'no agent reply on the console');
  });

  it('stops a hung command at its timeout on both sides and cuts megabytes of output to the limit', async () => {
    assert.ok(instanceId, 'needs the lab of the first test');
    const t0 = Date.now();
    const hang = await svc.exec(instanceId, 'box', 'sleep 120', { timeoutMs: 2000, maxOutputBytes: 1024 });
    const ms = Date.now() - t0;
    assert.equal(hang.timedOut, true, JSON.stringify(hang));
    assert.ok(ms >= 1900 && ms < 9000, `stopped after ${ms} ms`);
    const left = await svc.exec(instanceId, 'box', "ps -o args | grep -c '^sleep 120$'", { timeoutMs: 5000, maxOutputBytes: 1024 });
    assert.equal(left.stdout, '0\n', 'the hung command is gone from the guest (its whole process group)');

    const t1 = Date.now();
    const flood = await svc.exec(instanceId, 'box', "head -c 5000000 /dev/zero | tr '\\0' y; echo oops >&2; exit 3", { timeoutMs: 20_000, maxOutputBytes: 4096 });
    process.stderr.write(`      [kubevirt] hung check stopped after ${ms} ms; 5 MB of output cut in ${Date.now() - t1} ms\n`);
    assert.deepEqual([flood.exitCode, flood.truncated, flood.timedOut, flood.stdout.length, flood.stderr], [3, true, false, 4096, 'oops\n']);
    assert.match(flood.stdout, /^y+$/);

    const guarded = await svc.exec(instanceId, 'box', 'stat -c %a /etc/lab-agent/token; id -u', { timeoutMs: 5000, maxOutputBytes: 1024 });
    assert.equal(guarded.stdout, '600\n0\n', 'the token file is root-only; checks run as root');

    assert.ok((await CheckResult.countDocuments({ instanceId })) >= 2, 'the runner stored the results of the first test');
  });

  it('through the check runner: a hung check is reported failed with "timed out" at its timeout, megabytes of output are cut for the teacher', async () => {
    const inst = await svc.ensureInstance({ activityId: 'kv-edge-act', userId: 'kv-edge', contextId: 'kv-course', labId: 'kv-check-edges', labVersion: '1' });
    edgeId = inst._id;
    await svc.start(edgeId);
    await waitFor(async () => (await svc.get(edgeId))?.state === 'running', 180_000, 'edge lab running');
    // right after boot the agent may not listen yet: exec waits for it within the timeout
    const t0 = Date.now();
    assert.equal((await svc.exec(edgeId, 'box', 'echo up', { timeoutMs: 120_000, maxOutputBytes: 64 })).stdout, 'up\n');
    process.stderr.write(`      [kubevirt] exec agent answered ${Date.now() - t0} ms after the lab was running\n`);
    // a hostile LMS name templated into a check reaches the guest (as root) as data, never as code
    const name = 'x" ; touch /tmp/inj ; echo "';
    const p = checkProgram({ command: 'printf %s "{{user.name}}"; test ! -e /tmp/inj' }, { 'user.name': name });
    const named = await svc.exec(edgeId, 'box', p.command, { timeoutMs: 10_000, maxOutputBytes: 1024, env: p.env });
    assert.deepEqual([named.exitCode, named.stdout], [0, name], 'the name printed exactly, nothing run');
    const edgeToken = await sessions.issue({ userId: 'kv-edge', role: 'learner', contextId: 'kv-course' });
    const run = (step: string) => api('POST', `/api/instances/${edgeId}/steps/${step}/check`, edgeToken);

    const t1 = Date.now();
    const hang = await run('hang');
    const ms = Date.now() - t1;
    const h = (hang.body.checks as Array<{ passed: boolean; timedOut: boolean; hint?: string }>)[0]!;
    assert.deepEqual([h.passed, h.timedOut, h.hint], [false, true, 'This check never ends.'], JSON.stringify(hang.body));
    assert.ok(ms >= 1900 && ms < 9000, `stopped after ${ms} ms`);
    assert.match((await CheckResult.findOne({ instanceId: edgeId, stepId: 'hang' }).lean())?.output ?? '', /^timed out after 2 s/);

    const flood = await run('flood');
    assert.equal(flood.body.passed, false);
    const row = await CheckResult.findOne({ instanceId: edgeId, stepId: 'flood' }).lean();
    assert.equal(row?.exitCode, 3);
    assert.ok(Buffer.byteLength(row?.output ?? '') <= 4096 + 20, `${Buffer.byteLength(row?.output ?? '')} bytes kept`);
    await svc.destroy(edgeId);
    edgeId = '';
  });

  it('keeps the agent token in the Secret and the portforward permission in the per-lab role only; a token without it gets 403, a wrong agent token is denied', async () => {
    assert.ok(ns, 'needs the lab of the first test');
    const secret = (await cp.request('GET', `/api/v1/namespaces/${ns}/secrets/machine-box`)).json<{ data: Record<string, string> }>();
    const agentToken = Buffer.from(secret.data.agenttoken ?? '', 'base64').toString();
    assert.match(agentToken, /^[A-Za-z0-9_-]{32}$/);
    // the shared generator's cloud-config (a multipart with the lab's own part when the lab has user data)
    assert.match(Buffer.from(secret.data.userdata ?? '', 'base64').toString(), /^#cloud-config\n[^]*lab-agent/);
    assert.equal(await toolMay(cp, { verb: 'get', group: 'subresources.kubevirt.io', resource: 'virtualmachineinstances', subresource: 'portforward', namespace: ns }), true);
    assert.equal(await toolMay(cp, { verb: 'get', group: 'subresources.kubevirt.io', resource: 'virtualmachineinstances', subresource: 'portforward', namespace: 'default' }), false, 'not outside lab namespaces');

    // a ServiceAccount that may open consoles but not port forwards
    await cp.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: 'console-only' } });
    await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      metadata: { name: 'console-only' },
      rules: [{ apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachineinstances/console', 'virtualmachineinstances/vnc'], verbs: ['get'] }],
    });
    await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      metadata: { name: 'console-only' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'console-only' },
      subjects: [{ kind: 'ServiceAccount', name: 'console-only', namespace: ns }],
    });
    const consoleOnly = await cp.serviceAccountToken(ns, 'console-only');
    await assert.rejects(WsBytes.open(pfUrl(ns, 'box'), { token: consoleOnly, ca: cp.caPem }), (err: { status?: number; body?: string }) =>
      err.status === 403 && /cannot get resource "virtualmachineinstances\/portforward"/.test((JSON.parse(err.body ?? '{}') as { message?: string }).message ?? ''));

    // the tool's own identity reaches the agent, but the agent wants the machine's token
    const toolToken = await cp.serviceAccountToken(TOOL_NS, TOOL_SA);
    const ws = await WsBytes.open(pfUrl(ns, 'box'), { token: toolToken, ca: cp.caPem });
    ws.ws.send(Buffer.from(`not-the-token abc 5 100 - ${Buffer.from('id').toString('base64')}\n`));
    assert.match(await ws.readUntil(/\n/, 30_000), /^E denied\n/);
    ws.close();
  });
});
