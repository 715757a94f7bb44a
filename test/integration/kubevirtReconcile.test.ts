/**
 * Reconciliation on the KubeVirt backend: the runtime's LabService/LabSupervisor (real FerretDB)
 * over the backend as the tool's ServiceAccount, against the real API server and the stand-in.
 * Drift is made by hand with admin rights, the way an operator (or an accident) would.
 */
import assert from 'node:assert/strict';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { installTool, newHandle, silentLog, toolBackend } from '../support/kubevirtTool.js';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { StaticLabs } from '../support/staticLabs.js';
import { LabService } from '../../src/labs/LabService.js';
import { LabSupervisor } from '../../src/labs/LabSupervisor.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { BackendLabSpec } from '../../src/backends/types.js';
import type { K8sObject } from '../../src/backends/kubevirt/manifests.js';

const SEL = encodeURIComponent('app.kubernetes.io/managed-by=lab-orchestrator');
let n = 0;
const key = (labId: string) => ({ activityId: `kv-act-${++n}-${Date.now()}`, userId: `kv-user-${n}`, contextId: 'ctx', labId, labVersion: '1' });

function oneVm(labId: string): BackendLabSpec {
  return { labId, labVersion: '1', machines: [{ name: 'solo', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console'] }], network: { internetEgress: false } };
}

describe('KubeVirt backend reconciliation (LabService + LabSupervisor, real API server and guests)', function () {
  this.timeout(240_000);
  let tool: TestTool;
  let cp: ControlPlane;
  let standIn: StandIn;
  let backend: KubeVirtBackend;

  let svc: LabService;
  let sup: LabSupervisor;
  const labs = new StaticLabs([{ id: 'kv-pair', machines: [{ name: 'alpha', channels: ['console'] }, { name: 'beta', channels: ['console'] }] }]);

  before(async () => {
    tool = await startTestTool();
    ({ cp, standIn } = await sharedKubeVirt());
    ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 120_000 }));
    svc = new LabService({ backend, labs, log: silentLog });
    sup = new LabSupervisor({ service: svc, backend, labs, log: silentLog });
  });
  after(async () => {
    await svc?.close();
    await backend?.close();
    await tool?.shutdown();
  });

  async function runningInstance(): Promise<{ id: string; ns: string }> {
    const inst = await svc.ensureInstance(key('kv-pair'));
    await svc.start(inst._id);
    await waitFor(async () => (await svc.get(inst._id))?.state === 'running', 60_000, 'instance running');
    const doc = await svc.get(inst._id);
    return { id: inst._id, ns: doc?.handle?.name ?? '' };
  }

  it('recreates a deleted NetworkPolicy and restores an altered one, as soon as it happens', async () => {
    const { id, ns } = await runningInstance();
    const np = (name: string) => cp.request('GET', `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${name}`);
    const before = (await np('default-deny')).json<K8sObject>();
    assert.equal((await cp.request('DELETE', `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/default-deny`)).status, 200);
    await waitFor(async () => (await np('default-deny')).status === 200, 10_000, 'default-deny recreated');
    const after = (await np('default-deny')).json<K8sObject>();
    assert.notEqual(after.metadata.uid, before.metadata.uid);
    assert.deepStrictEqual(after.spec, before.spec);

    // someone opens the lab to every pod in the cluster
    const widened = await cp.request(
      'PATCH',
      `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/allow-same-namespace-ingress`,
      { spec: { ingress: [{ from: [{ namespaceSelector: {} }] }] } },
      undefined,
      'application/merge-patch+json',
    );
    assert.equal(widened.status, 200);
    await waitFor(async () => JSON.stringify((await np('allow-same-namespace-ingress')).json<K8sObject>().spec).includes('"podSelector":{}}]}]'), 10_000, 'policy restored');
    assert.equal(JSON.stringify((await np('allow-same-namespace-ingress')).json<K8sObject>().spec).includes('namespaceSelector'), false);
    assert.deepEqual(await backend.repair({ instanceId: id, backend: 'kubevirt', name: ns, generation: 1 }), [], 'nothing left to repair');
    await svc.destroy(id);
  });

  it('removes a managed namespace that no instance owns', async () => {
    const orphan = newHandle();
    await backend.provision(oneVm('orphan'), orphan, () => undefined);
    assert.ok((await backend.list()).some((h) => h.name === orphan.name));
    const report = await sup.pass();
    assert.ok(report.orphansDestroyed.includes(orphan.name), JSON.stringify(report));
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${orphan.name}`)).status, 404);
  });

  it('fails an instance whose namespace was deleted by hand, with a reason', async () => {
    const { id, ns } = await runningInstance();
    assert.equal((await cp.request('DELETE', `/api/v1/namespaces/${ns}`)).status, 200);
    const report = await sup.pass();
    assert.deepEqual(report.vanished, [id]);
    const doc = await LabInstance.findById(id).lean();
    assert.equal(doc?.state, 'failed');
    assert.match(doc?.failureReason ?? '', /machines are gone/);
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${ns}`)).status, 404);
  });

  it('converges with no duplicates when the tool process is killed after any provisioning step and starts again', async () => {
    const spec = oneVm('crashy');
    // requests of a one-VM lab: namespace, rolebinding, 4 policies, quota, limit range, secret, service, VM, start
    const killAfter = [1, 2, 4, 9, 11];
    const handles = killAfter.map(() => newHandle());
    const kubeconfig = await installTool(cp);
    const seen = await Promise.all(
      killAfter.map(
        (k, i) =>
          new Promise<number>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/provisionChild.ts'), kubeconfig, standIn.baseUrl, JSON.stringify(handles[i]), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
            let n = 0;
            createInterface({ input: child.stdout }).on('line', (l) => {
              if (l.startsWith('REQ') && ++n >= k) child.kill('SIGKILL'); // dies with whatever else is in flight
            });
            child.once('exit', (code, sig) => (sig === 'SIGKILL' || code === 0 ? resolve(n) : reject(new Error(`child exited ${code}`))));
          }),
      ),
    );
    assert.ok(seen.every((n, i) => n >= (killAfter[i] ?? 0)), `killed after ${seen.join(', ')} requests`);
    process.stderr.write(`      [kubevirt] tool processes SIGKILLed after ${seen.join(', ')} completed requests\n`);
    // a new process: fresh client, informers and caches
    const { backend: restarted } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 120_000 });
    try {
      await Promise.all(handles.map((h) => restarted.provision(spec, h, () => undefined)));
      for (const h of handles) {
        const count = async (path: string) => (await cp.request('GET', `${path}?labelSelector=${SEL}`)).json<{ items: unknown[] }>().items.length;
        const counts = [
          await count(`/apis/networking.k8s.io/v1/namespaces/${h.name}/networkpolicies`),
          await count(`/api/v1/namespaces/${h.name}/resourcequotas`),
          await count(`/api/v1/namespaces/${h.name}/limitranges`),
          await count(`/api/v1/namespaces/${h.name}/secrets`),
          await count(`/api/v1/namespaces/${h.name}/services`),
          await count(`/apis/rbac.authorization.k8s.io/v1/namespaces/${h.name}/rolebindings`),
          await count(`/apis/kubevirt.io/v1/namespaces/${h.name}/virtualmachines`),
          await count(`/apis/kubevirt.io/v1/namespaces/${h.name}/virtualmachineinstances`),
        ];
        assert.deepEqual(counts, [4, 1, 1, 1, 1, 1, 1, 1], `objects of ${h.name}`);
        assert.deepEqual(await restarted.status(h), { solo: { phase: 'running' } });
      }
    } finally {
      await Promise.all(handles.map((h) => restarted.destroy(h)));
      await restarted.close();
    }
  });

  it('finishes provisioning after a restart through the supervisor, as another process would', async () => {
    const inst = await svc.ensureInstance(key('kv-pair'));
    const crashed = new LabService({ backend, labs, log: silentLog });
    await crashed.start(inst._id);
    await crashed.close(); // the process dies mid-provisioning
    assert.equal((await svc.get(inst._id))?.state, 'provisioning');
    const fresh = new LabSupervisor({ service: svc, backend, labs, log: silentLog });
    const report = await fresh.pass(); // first pass of a new process takes over stale provisioning
    assert.deepEqual(report.resumedProvisioning, [inst._id]);
    await waitFor(async () => (await svc.get(inst._id))?.state === 'running', 60_000, 'running after restart');
    const ns = (await svc.get(inst._id))?.handle?.name ?? '';
    const vmis = (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances`)).json<{ items: K8sObject[] }>().items;
    assert.deepEqual(vmis.map((v) => v.metadata.name).sort(), ['alpha', 'beta']);
    await svc.destroy(inst._id);
  });
});
