/**
 * The test Kubernetes control plane (real etcd, kube-apiserver, kube-controller-manager) and the
 * KubeVirt API on it. See test/support/k8s/ and the README's testing section.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ControlPlane, kubectlBin, sharedControlPlane } from '../support/k8s/controlPlane.js';
import { waitFor } from '../support/tool.js';

const run = promisify(execFile);

export function testVm(name: string, runStrategy = 'Always'): Record<string, unknown> {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name },
    spec: {
      runStrategy,
      template: {
        metadata: { labels: { 'kubevirt.io/vm': name } },
        spec: {
          domain: {
            cpu: { cores: 1 },
            memory: { guest: '128Mi' },
            devices: {
              disks: [{ name: 'root', disk: { bus: 'virtio' } }],
              interfaces: [{ name: 'default', masquerade: {} }],
            },
          },
          networks: [{ name: 'default', pod: {} }],
          volumes: [{ name: 'root', containerDisk: { image: 'lab-tiny' } }],
        },
      },
    },
  };
}

function procCmdlines(): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      out.push({ pid: Number(d), cmd: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch { /* exited meanwhile */ }
  }
  return out;
}

describe('Kubernetes test control plane', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  before(async () => { cp = await sharedControlPlane(); });

  it('serves a ready API (/readyz is exactly "ok") with the four default namespaces', async () => {
    assert.equal((await cp.request('GET', '/readyz')).body, 'ok');
    const ns = (await cp.request('GET', '/api/v1/namespaces')).json<{ items: Array<{ metadata: { name: string } }> }>();
    for (const n of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      assert.ok(ns.items.some((i) => i.metadata.name === n), `namespace ${n}`);
    }
    const version = (await cp.request('GET', '/version')).json<{ gitVersion: string }>();
    assert.equal(version.gitVersion, 'v1.34.4');
  });

  it('works with kubectl through the admin kubeconfig, including the KubeVirt printer columns', async () => {
    const ns = `kubectl-${Date.now().toString(36)}`;
    const env = { ...process.env, KUBECONFIG: cp.kubeconfigPath };
    await run(kubectlBin(), ['create', 'namespace', ns], { env });
    const vm = JSON.stringify(testVm('printer', 'Halted'));
    const apply = run(kubectlBin(), ['-n', ns, 'apply', '-f', '-'], { env });
    apply.child.stdin!.end(vm);
    await apply;
    const { stdout } = await run(kubectlBin(), ['-n', ns, 'get', 'vm', 'printer'], { env });
    assert.match(stdout, /^NAME\s+AGE\s+STATUS\s+READY/);
    const version = await run(kubectlBin(), ['version', '-o', 'json'], { env });
    assert.equal((JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, 'v1.34.4');
    await run(kubectlBin(), ['delete', 'namespace', ns, '--wait=false'], { env });
  });

  it('rejects a VirtualMachine with a misspelled spec field (strict field validation, as kubectl sends)', async () => {
    const ns = `strict-${Date.now().toString(36)}`;
    assert.equal((await cp.request('POST', '/api/v1/namespaces', { metadata: { name: ns } })).status, 201);
    const bad = testVm('typo');
    const spec = bad.spec as Record<string, unknown>;
    spec.runStrategyy = spec.runStrategy;
    delete spec.runStrategy;
    const strict = await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines?fieldValidation=Strict`, bad);
    assert.equal(strict.status, 400, strict.body);
    assert.match(strict.body, /strict decoding error: unknown field \\"spec.runStrategyy\\"/);
    // A misspelling nested in the VMI template is caught too, and a wrong enum value always is.
    const nested = testVm('typo2');
    ((nested.spec as { template: { spec: Record<string, unknown> } }).template.spec).netwroks = [];
    const r2 = await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines?fieldValidation=Strict`, nested);
    assert.equal(r2.status, 400, r2.body);
    assert.match(r2.body, /spec.template.spec.netwroks/);
    const r3 = await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, testVm('enum', 'Sometimes'));
    assert.equal(r3.status, 422, r3.body);
    assert.equal((await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines?fieldValidation=Strict`, testVm('good', 'Halted'))).status, 201);
    await cp.request('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('issues ServiceAccount tokens (TokenRequest) that RBAC restricts', async () => {
    const ns = `rbac-${Date.now().toString(36)}`;
    await cp.request('POST', '/api/v1/namespaces', { metadata: { name: ns } });
    await cp.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: 'viewer' } });
    const token = await cp.serviceAccountToken(ns, 'viewer');
    assert.equal((await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, undefined, token)).status, 403);
    await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      metadata: { name: 'vm-reader' }, rules: [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get', 'list'] }],
    });
    await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      metadata: { name: 'viewer' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'vm-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: ns }],
    });
    await waitFor(async () => (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, undefined, token)).status === 200, 10_000, 'RBAC to apply');
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${ns}/secrets`, undefined, token)).status, 403);
    await cp.request('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('deletes a namespace and everything in it through the real controller-manager', async () => {
    const ns = `gone-${Date.now().toString(36)}`;
    await cp.request('POST', '/api/v1/namespaces', { metadata: { name: ns } });
    assert.equal((await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, testVm('halted', 'Halted'))).status, 201);
    await cp.request('POST', `/api/v1/namespaces/${ns}/configmaps`, { metadata: { name: 'c' }, data: { a: 'b' } });
    assert.equal((await cp.request('DELETE', `/api/v1/namespaces/${ns}`)).status, 200);
    await waitFor(async () => (await cp.request('GET', `/api/v1/namespaces/${ns}`)).status === 404, 60_000, 'namespace deletion');
    assert.equal((await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/halted`)).status, 404);
  });

  it('starts a second control plane, reports its start-up time, and stops it leaving no process or temp dir', async function () {
    this.timeout(180_000);
    const other = await ControlPlane.start();
    const pids = other.pids();
    assert.equal(pids.length, 3);
    assert.ok(other.startupMs > 0);
    process.stderr.write(`      [k8s] second control plane: ${other.startupMs} ms ${JSON.stringify(other.timings)}\n`);
    await other.stop();
    assert.equal(fs.existsSync(other.dir), false);
    assert.deepEqual(procCmdlines().filter((p) => pids.includes(p.pid) || p.cmd.includes(other.dir)), []);
  });
});
