/**
 * The KubeVirt backend against a real kube-apiserver + etcd + controller-manager (test/support/k8s),
 * running as the tool's ServiceAccount with the RBAC and admission policies from k8s/ — never as
 * admin. Objects are asserted from the API server (admin reads and watches), not from our calls.
 */
import assert from 'node:assert/strict';
import { sharedControlPlane, type ControlPlane } from '../support/k8s/controlPlane.js';
import { installTool, kubectl, newHandle, silentLog, toolBackend, toolMay, twoVmSpec, TOOL_NS, UNMANAGED_NS } from '../support/kubevirtTool.js';
import { KubeApiError, KubeClient } from '../../src/backends/kubevirt/client.js';
import { NotFound } from '../../src/errors.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import { planLab, type K8sObject } from '../../src/backends/kubevirt/manifests.js';
import type { Progress } from '../../src/backends/types.js';

const SEL = 'app.kubernetes.io/managed-by=lab-orchestrator';

interface Seen {
  type: string;
  kind: string;
  name: string;
  rv: number;
  runStrategy?: string;
}

/** Admin watches on the kinds a lab consists of, recording events in resourceVersion order. */
async function recordEvents(cp: ControlPlane, ns: string): Promise<{ events: Seen[]; stop: () => void }> {
  const admin = new KubeClient({ kubeconfigPath: cp.kubeconfigPath, log: silentLog });
  const abort = new AbortController();
  const events: Seen[] = [];
  const paths = [
    `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`,
    `/api/v1/namespaces/${ns}/resourcequotas`,
    `/api/v1/namespaces/${ns}/limitranges`,
    `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`,
    `/api/v1/namespaces/${ns}/secrets`,
  ];
  for (const p of paths) {
    void admin
      .watch(p, { labelSelector: SEL, resourceVersion: '0' }, (type, o) => {
        events.push({ type, kind: o.kind, name: o.metadata.name, rv: Number(o.metadata.resourceVersion), runStrategy: (o.spec as { runStrategy?: string } | undefined)?.runStrategy });
      }, abort.signal)
      .catch(() => undefined);
  }
  return {
    events,
    stop: () => {
      abort.abort();
      admin.close();
    },
  };
}

async function adminList(cp: ControlPlane, path: string): Promise<K8sObject[]> {
  const r = await cp.request('GET', `${path}?labelSelector=${encodeURIComponent(SEL)}`);
  assert.equal(r.status, 200, r.body);
  return r.json<{ items: K8sObject[] }>().items;
}

async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('KubeVirt backend on a real API server, as the tool service account', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let backend: KubeVirtBackend;
  let client: KubeClient;

  before(async () => {
    cp = await sharedControlPlane();
    await installTool(cp);
    ({ backend, client } = await toolBackend(cp, { settleMs: 20_000 }));
    assert.equal(await backend.ready(), true, 'ready once its watches are synced');
  });
  after(async () => {
    await backend?.close();
  });

  it('k8s/ applies with kubectl and a server-side dry run of it succeeds', async () => {
    const { stdout } = await kubectl(cp, 'apply', '-k', 'k8s/', '--dry-run=server');
    assert.match(stdout, /clusterrole.rbac.authorization.k8s.io\/lab-orchestrator-lab (unchanged|configured) \(server dry run\)/);
    assert.match(stdout, /deployment.apps\/lab-orchestrator (unchanged|configured) \(server dry run\)/);
    const dep = await cp.request('GET', `/apis/apps/v1/namespaces/${TOOL_NS}/deployments/lab-orchestrator`);
    assert.equal(dep.json<{ spec: { replicas: number } }>().spec.replicas, 2);
  });

  it('cannot read secrets outside lab namespaces, exec into pods it did not create, or touch kube-system (SubjectAccessReview)', async () => {
    const denied: Array<Parameters<typeof toolMay>[1]> = [
      { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
      { verb: 'list', resource: 'secrets' },
      { verb: 'get', resource: 'secrets', namespace: 'default' },
      { verb: 'get', resource: 'secrets', namespace: TOOL_NS },
      { verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'default' },
      { verb: 'get', resource: 'pods', subresource: 'exec', namespace: 'kube-system' },
      { verb: 'list', resource: 'pods' },
      { verb: 'create', resource: 'pods', namespace: 'kube-system' },
      { verb: 'update', resource: 'configmaps', namespace: 'kube-system' },
      { verb: 'delete', resource: 'networkpolicies', namespace: 'kube-system', group: 'networking.k8s.io' },
      { verb: 'create', resource: 'virtualmachines', namespace: 'default', group: 'kubevirt.io' },
      { verb: 'get', resource: 'virtualmachineinstances', subresource: 'vnc', namespace: 'default', group: 'subresources.kubevirt.io' },
      { verb: 'bind', resource: 'clusterroles', name: 'cluster-admin', group: 'rbac.authorization.k8s.io' },
      { verb: 'escalate', resource: 'clusterroles', group: 'rbac.authorization.k8s.io' },
      { verb: 'create', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' },
      { verb: 'impersonate', resource: 'serviceaccounts' },
    ];
    for (const a of denied) assert.equal(await toolMay(cp, a), false, `must be denied: ${JSON.stringify(a)}`);
    const allowed: Array<Parameters<typeof toolMay>[1]> = [
      { verb: 'create', resource: 'namespaces' },
      { verb: 'bind', resource: 'clusterroles', name: 'lab-orchestrator-lab', group: 'rbac.authorization.k8s.io' },
      { verb: 'watch', resource: 'virtualmachineinstances', group: 'kubevirt.io' },
      { verb: 'update', resource: 'leases', namespace: TOOL_NS, group: 'coordination.k8s.io' },
    ];
    for (const a of allowed) assert.equal(await toolMay(cp, a), true, `must be allowed: ${JSON.stringify(a)}`);
  });

  it('is kept by admission policies from deleting kube-system, creating unmanaged namespaces or binding roles outside lab namespaces', async () => {
    const token = /token: (\S+)/.exec(await import('node:fs').then((fs) => fs.readFileSync(`${cp.dir}/tool.kubeconfig`, 'utf8')))?.[1] ?? '';
    for (const victim of [UNMANAGED_NS, 'kube-system']) {
      const del = await cp.request('DELETE', `/api/v1/namespaces/${victim}?dryRun=All`, undefined, token);
      assert.equal(del.status, 403, del.body);
    }
    const del = await cp.request('DELETE', `/api/v1/namespaces/${UNMANAGED_NS}?dryRun=All`, undefined, token);
    assert.match(del.body, /may only manage namespaces labelled/);
    const ns = await cp.request('POST', '/api/v1/namespaces?dryRun=All', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'not-a-lab' } }, token);
    assert.equal(ns.status, 403, ns.body);
    const rb = await cp.request(
      'POST',
      '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings?dryRun=All',
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'sneaky' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'lab-orchestrator-lab' },
        subjects: [{ kind: 'ServiceAccount', name: 'lab-orchestrator', namespace: TOOL_NS }],
      },
      token,
    );
    assert.equal(rb.status, 403, rb.body);
    assert.match(rb.body, /only bind roles in its lab namespaces/);
  });

  it('creates exactly the expected objects of a two-VM lab, policies and quota before any VM is set to run', async () => {
    const spec = twoVmSpec();
    const handle = newHandle();
    const rec = await recordEvents(cp, handle.name);
    const requests: string[] = [];
    const off = client.onRequest((r) => {
      if (r.path.includes(handle.name)) requests.push(`${r.verb} ${r.status}`);
    });
    const progress: Progress[] = [];
    const abort = new AbortController();
    const run = backend.provision(spec, handle, (p) => progress.push(p), abort.signal).catch((e: unknown) => e);
    try {
      await until('both VMs set to Always', () => rec.events.filter((e) => e.kind === 'VirtualMachine' && e.runStrategy === 'Always').length >= 2).catch((e: unknown) => {
        throw new Error(`${String(e)}; seen ${JSON.stringify(rec.events)}; requests ${requests.join(', ')}`);
      });
      // as read back by admin from the API server
      const plan = planLab({ handle, spec, toolNamespace: TOOL_NS, toolServiceAccount: 'lab-orchestrator', apiServerCidrs: [], disks: { imageNamespace: 'lab-images' } });
      const names = async (p: string) => (await adminList(cp, p)).map((o) => o.metadata.name).sort();
      assert.deepEqual((await adminList(cp, '/api/v1/namespaces')).filter((n) => n.metadata.name === handle.name).length, 1);
      assert.deepEqual(await names(`/apis/networking.k8s.io/v1/namespaces/${handle.name}/networkpolicies`), ['allow-dns', 'allow-internet', 'allow-same-namespace-egress', 'allow-same-namespace-ingress', 'default-deny']);
      assert.deepEqual(await names(`/api/v1/namespaces/${handle.name}/resourcequotas`), ['lab']);
      assert.deepEqual(await names(`/api/v1/namespaces/${handle.name}/limitranges`), ['lab']);
      assert.deepEqual(await names(`/api/v1/namespaces/${handle.name}/secrets`), ['machine-alpha', 'machine-beta']);
      assert.deepEqual(await names(`/api/v1/namespaces/${handle.name}/services`), ['lab']);
      assert.deepEqual(await names(`/apis/rbac.authorization.k8s.io/v1/namespaces/${handle.name}/rolebindings`), ['lab-orchestrator']);
      assert.deepEqual(await names(`/api/v1/namespaces/${handle.name}/pods`), []);
      const vms = await adminList(cp, `/apis/kubevirt.io/v1/namespaces/${handle.name}/virtualmachines`);
      assert.deepEqual(vms.map((v) => v.metadata.name).sort(), ['alpha', 'beta']);
      for (const vm of vms) {
        const want = plan.vms.find((v) => v.metadata.name === vm.metadata.name);
        assert.deepStrictEqual(vm.spec, { ...want?.spec, runStrategy: 'Always' });
      }
      const q = (await adminList(cp, `/api/v1/namespaces/${handle.name}/resourcequotas`))[0];
      assert.deepStrictEqual((q?.spec as { hard: unknown }).hard, (plan.guards.find((g) => g.kind === 'ResourceQuota')?.spec as { hard: unknown }).hard);

      // order, from the API server's own resource versions
      const created = (kind: string) => rec.events.filter((e) => e.kind === kind && e.type === 'ADDED');
      const started = rec.events.filter((e) => e.kind === 'VirtualMachine' && e.runStrategy === 'Always');
      const firstStart = Math.min(...started.map((e) => e.rv));
      for (const g of [...created('NetworkPolicy'), ...created('ResourceQuota'), ...created('LimitRange')]) assert.ok(g.rv < firstStart, `${g.kind}/${g.name} created before a VM runs`);
      assert.equal(created('NetworkPolicy').length, 5);
      // created running, after the guards (above) and the secrets they boot from, and never patched
      for (const s of created('Secret')) assert.ok(s.rv < firstStart, `Secret/${s.name} created before a VM runs`);
      assert.equal(created('VirtualMachine').length, 2);
      for (const v of created('VirtualMachine')) assert.equal(v.runStrategy, 'Always', `VM ${v.name} created running`);
      assert.equal(requests.filter((r) => r.startsWith('patch')).length, 0, requests.join(', '));
      assert.deepEqual([...new Set(progress.map((p) => p.phase))].slice(0, 3), ['network', 'disks', 'machines-starting']);
    } finally {
      abort.abort();
      await run;
      off();
      rec.stop();
    }
    await backend.destroy(handle);
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${handle.name}`)).status, 404);
    assert.ok(requests.length > 0);
  });
  it('runs a container machine as a pod without a service-account token, admitted under Pod Security baseline', async () => {
    const handle = newHandle();
    const spec = { labId: 'shell', labVersion: '1', machines: [{ name: 'shell', kind: 'container' as const, image: 'docker.io/library/alpine:3.20', cpus: 1, memoryMiB: 256, channels: ['console' as const] }], network: { internetEgress: false } };
    const abort = new AbortController();
    const run = backend.provision(spec, handle, () => undefined, abort.signal).catch((e: unknown) => e);
    try {
      const pod = await until('the pod', async () => (await adminList(cp, `/api/v1/namespaces/${handle.name}/pods`))[0]);
      const ps = pod.spec as { automountServiceAccountToken: boolean; volumes?: Array<{ name: string }>; containers: Array<{ volumeMounts?: unknown[] }> };
      assert.equal(ps.automountServiceAccountToken, false);
      assert.deepEqual(ps.volumes ?? [], [], 'no projected service-account token volume');
      assert.equal(ps.containers[0]?.volumeMounts, undefined);
      assert.deepEqual(await backend.status(handle), { shell: { phase: 'pending' } }, 'no kubelet here: the pod never runs');
      // the terminal path is authorised in the lab namespace only
      assert.equal(await toolMay(cp, { verb: 'create', resource: 'pods', subresource: 'exec', namespace: handle.name }), true);
      assert.equal(await toolMay(cp, { verb: 'get', resource: 'virtualmachineinstances', subresource: 'vnc', namespace: handle.name, group: 'subresources.kubevirt.io' }), true);
      assert.equal(await toolMay(cp, { verb: 'list', resource: 'secrets', namespace: handle.name }), false, 'secrets: get/create/delete only');
      // the terminal goes to the API server's pods/exec as the tool: authorised (not 403), refused only because no node runs the pod
      await assert.rejects(backend.openChannel(handle, 'shell', 'console'), (e: unknown) => e instanceof KubeApiError && e.status === 400);
      await assert.rejects(backend.openChannel(handle, 'nope', 'console'), NotFound);
      // Pod Security baseline is enforced in the lab namespace: a pod sharing the host's PID and network namespaces is refused even for admin
      const priv = await cp.request('POST', `/api/v1/namespaces/${handle.name}/pods?dryRun=All`, {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'escape' },
        spec: { hostPID: true, hostNetwork: true, containers: [{ name: 'c', image: 'busybox' }] },
      });
      assert.equal(priv.status, 403, priv.body);
      assert.match(priv.json<{ message: string }>().message, /violates PodSecurity "baseline:latest": host namespaces/);
    } finally {
      abort.abort();
      await run;
    }
    // stop deletes the container (it keeps nothing), start creates it again from the stored spec
    await backend.stop(handle);
    await until('the pod deleted', async () => (await adminList(cp, `/api/v1/namespaces/${handle.name}/pods`)).length === 0 || undefined);
    await until('reported stopped', async () => (await backend.status(handle)).shell?.phase === 'stopped');
    const { backend: impatient } = await toolBackend(cp, { bootTimeoutMs: 1000 });
    try {
      await assert.rejects(impatient.start(handle), /did not boot in time/, 'no kubelet: it never boots here');
    } finally {
      await impatient.close();
    }
    const again = await adminList(cp, `/api/v1/namespaces/${handle.name}/pods`);
    assert.deepEqual(again.map((p) => p.metadata.name), ['shell']);
    assert.equal((again[0]?.spec as { automountServiceAccountToken: boolean }).automountServiceAccountToken, false);
    await backend.destroy(handle);
  });
});
