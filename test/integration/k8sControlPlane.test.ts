/**
 * The test Kubernetes control plane (real etcd, kube-apiserver, kube-controller-manager) and the
 * KubeVirt API on it. See test/support/k8s/ and the README's testing section.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import https from 'node:https';
import { ControlPlane, kubectlBin, processesMentioning, sharedControlPlane } from '../support/k8s/controlPlane.js';
import { WsBytes, consoleLogin, rfbHandshake } from '../support/k8s/wsBytes.js';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import { pidAlive, waitFor } from '../support/tool.js';

const run = promisify(execFile);

export function testVm(name: string, runStrategy = 'Always', cloudInitSecret?: string): Record<string, unknown> {
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
              disks: [{ name: 'root', disk: { bus: 'virtio' } }, ...(cloudInitSecret ? [{ name: 'cloudinit', disk: { bus: 'virtio' } }] : [])],
              interfaces: [{ name: 'default', masquerade: {} }],
            },
          },
          networks: [{ name: 'default', pod: {} }],
          volumes: [
            { name: 'root', containerDisk: { image: 'registry.example/labs/lab-tiny:latest' } },
            ...(cloudInitSecret ? [{ name: 'cloudinit', cloudInitNoCloud: { secretRef: { name: cloudInitSecret } } }] : []),
          ],
        },
      },
    },
  };
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
    assert.deepEqual(processesMentioning(other.dir), []);
    for (const pid of pids) assert.equal(pidAlive(pid), false);
  });
});

describe('KubeVirt stand-in on the test control plane', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  const ns = `lab-${Date.now().toString(36)}`;
  let userToken = '';
  let nobodyToken = '';
  const sub = (name: string, what: string): string => `${standIn.baseUrl}/apis/subresources.kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}/${what}`;
  const wsUrl = (name: string, what: string): string => sub(name, what).replace(/^https/, 'wss');
  const put = (url: string, token: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = https.request(url, { method: 'PUT', ca: cp.caPem, headers: { authorization: `Bearer ${token}` } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const vmi = async (name: string): Promise<VmiObject | undefined> => {
    const r = await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}`);
    return r.status === 200 ? r.json<VmiObject>() : undefined;
  };

  before(async function () {
    this.timeout(180_000);
    ({ cp, standIn } = await sharedKubeVirt());
    assert.equal((await cp.request('POST', '/api/v1/namespaces', { metadata: { name: ns } })).status, 201);
    for (const sa of ['lab-user', 'nobody']) await cp.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: sa } });
    await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      metadata: { name: 'vm-user' },
      rules: [
        { apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachineinstances/vnc', 'virtualmachineinstances/console'], verbs: ['get'] },
        { apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachineinstances/pause', 'virtualmachineinstances/unpause'], verbs: ['update'] },
      ],
    });
    await cp.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      metadata: { name: 'vm-user' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'vm-user' },
      subjects: [{ kind: 'ServiceAccount', name: 'lab-user', namespace: ns }],
    });
    const userdata = '#cloud-config\nhostname: alpha-host\nuser: "ada"\npassword: "s3cret-pw"\nchpasswd: { expire: false }\n';
    await cp.request('POST', `/api/v1/namespaces/${ns}/secrets`, { metadata: { name: 'alpha-ci' }, data: { userdata: Buffer.from(userdata).toString('base64') } });
    userToken = await cp.serviceAccountToken(ns, 'lab-user');
    nobodyToken = await cp.serviceAccountToken(ns, 'nobody');
  });

  it('runs a VirtualMachine: its VMI goes Scheduling → Scheduled → Running with the Ready condition and an IP, backed by a QEMU guest', async () => {
    assert.equal((await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, testVm('alpha', 'Always', 'alpha-ci'))).status, 201);
    await waitFor(async () => (await vmi('alpha'))?.status?.phase === 'Running', 60_000, 'VMI Running');
    const v = (await vmi('alpha'))!;
    assert.deepEqual(v.status!.phaseTransitionTimestamps!.map((p) => p.phase), ['Scheduling', 'Scheduled', 'Running']);
    assert.equal(v.status!.conditions!.find((c) => c.type === 'Ready')?.status, 'True');
    assert.match(v.status!.interfaces![0]!.ipAddress, /^10\.244\.\d+\.\d+$/);
    assert.equal(v.metadata.ownerReferences?.[0]?.kind, 'VirtualMachine');
    await waitFor(async () => (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/alpha`)).json<{ status?: { printableStatus?: string; ready?: boolean } }>().status?.printableStatus === 'Running', 10_000, 'VM printableStatus Running');
    assert.equal(standIn.guestPids().length, 1);
  });

  it('opens the VNC subresource with a ServiceAccount token and completes an RFB handshake', async () => {
    const s = await WsBytes.open(wsUrl('alpha', 'vnc'), { token: userToken, ca: cp.caPem });
    assert.equal(s.ws.protocol, 'plain.kubevirt.io');
    const init = await rfbHandshake(s);
    assert.equal(init.version, 'RFB 003.008');
    assert.ok(init.width >= 640 && init.height >= 400, `${init.width}x${init.height}`);
    s.close();
  });

  it('keeps one VNC connection per VMI: a newer connection closes the older', async () => {
    const first = await WsBytes.open(wsUrl('alpha', 'vnc'), { token: userToken, ca: cp.caPem });
    await rfbHandshake(first);
    const second = await WsBytes.open(wsUrl('alpha', 'vnc'), { token: userToken, ca: cp.caPem });
    assert.equal((await first.waitClosed()).code, 1000);
    await rfbHandshake(second);
    second.close();
  });

  it('refuses a token without RBAC permission for virtualmachineinstances/vnc (403), and no token (401)', async () => {
    await assert.rejects(WsBytes.open(wsUrl('alpha', 'vnc'), { token: nobodyToken, ca: cp.caPem }), (err: { status?: number; body?: string }) =>
      err.status === 403 && /cannot get resource "virtualmachineinstances\/vnc"/.test((JSON.parse(err.body ?? '{}') as { message?: string }).message ?? ''));
    await assert.rejects(WsBytes.open(wsUrl('alpha', 'vnc'), { token: 'not-a-token', ca: cp.caPem }), (err: { status?: number }) => err.status === 401);
    assert.equal((await put(sub('alpha', 'pause'), nobodyToken)).status, 403);
  });

  it('opens the serial console, logs in with the cloud-init credentials and gets an echo from the guest', async () => {
    const c = await WsBytes.open(wsUrl('alpha', 'console'), { token: userToken, ca: cp.caPem });
    await consoleLogin(c, 'ada', 's3cret-pw');
    c.send('echo "sum=$((6*7))"\r');
    await c.readUntil(/sum=42/, 10_000);
    c.send('exit\r');
    await c.readUntil(/login: $/, 30_000);
    c.close();
  });

  it('pauses and resumes the guest through the subresources', async () => {
    const c = await WsBytes.open(wsUrl('alpha', 'console'), { token: userToken, ca: cp.caPem });
    await waitFor(async () => {
      c.send('\r');
      return c.readUntil(/login: $/, 5_000).then(() => true, () => false);
    }, 60_000, 'login prompt');
    await c.drain(1000);
    assert.equal((await put(sub('alpha', 'pause'), userToken)).status, 200);
    await waitFor(async () => (await vmi('alpha'))?.status?.conditions?.some((x) => x.type === 'Paused' && x.status === 'True') ?? false, 10_000, 'Paused condition');
    assert.equal((await put(sub('alpha', 'pause'), userToken)).status, 409);
    c.send('zz');
    await assert.rejects(c.readUntil(/zz/, 1500), /timed out/); // a paused guest echoes nothing
    assert.equal((await put(sub('alpha', 'unpause'), userToken)).status, 200);
    await c.readUntil(/zz/, 15_000); // ...and catches up once resumed
    c.send('\x15');
    c.close();
    await waitFor(async () => !(await vmi('alpha'))?.status?.conditions?.some((x) => x.type === 'Paused'), 10_000, 'Paused condition cleared');
  });

  it('stops the guest for runStrategy Halted and boots a new one for Always', async () => {
    const pid = standIn.guestPids()[0];
    await cp.request('PATCH', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/alpha`, { spec: { runStrategy: 'Halted' } }, undefined, 'application/merge-patch+json');
    await waitFor(async () => (await vmi('alpha')) === undefined, 30_000, 'VMI gone');
    assert.equal(pidAlive(pid), false);
    await cp.request('PATCH', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/alpha`, { spec: { runStrategy: 'Always' } }, undefined, 'application/merge-patch+json');
    await waitFor(async () => (await vmi('alpha'))?.status?.phase === 'Running', 60_000, 'VMI Running again');
    assert.equal(standIn.guestPids().length, 1);
  });

  it('restarts through the VM restart subresource and replaces a guest that died', async () => {
    const before = (await vmi('alpha'))!;
    const r = await put(`${standIn.baseUrl}/apis/subresources.kubevirt.io/v1/namespaces/${ns}/virtualmachines/alpha/restart`, cp.adminToken);
    assert.equal(r.status, 200, r.body);
    await waitFor(async () => { const v = await vmi('alpha'); return !!v && v.metadata.uid !== before.metadata.uid && v.status?.phase === 'Running'; }, 60_000, 'a new VMI Running');
    const [pid] = standIn.guestPids();
    const uid = (await vmi('alpha'))!.metadata.uid;
    process.kill(pid!, 'SIGKILL');
    await waitFor(async () => { const v = await vmi('alpha'); return !!v && v.metadata.uid !== uid && v.status?.phase === 'Running'; }, 60_000, 'the VMI replaced after its guest died');
    assert.equal(standIn.guestPids().length, 1);
  });

  it('offers no VNC for a VMI without a graphics device, as KubeVirt', async () => {
    const vm = testVm('beta');
    const devices = (vm.spec as { template: { spec: { domain: { devices: Record<string, unknown> } } } }).template.spec.domain.devices;
    devices.autoattachGraphicsDevice = false;
    assert.equal((await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, vm)).status, 201);
    await waitFor(async () => (await vmi('beta'))?.status?.phase === 'Running', 60_000, 'VMI beta Running');
    await assert.rejects(WsBytes.open(wsUrl('beta', 'vnc'), { token: userToken, ca: cp.caPem }), (err: { status?: number; body?: string }) =>
      err.status === 400 && /No graphics devices/.test(err.body ?? ''));
    const c = await WsBytes.open(wsUrl('beta', 'console'), { token: userToken, ca: cp.caPem });
    c.close();
  });

  it('deleting the namespace (by the controller-manager) stops the QEMU guests', async () => {
    const pids = standIn.guestPids();
    assert.equal(pids.length, 2);
    assert.equal((await cp.request('DELETE', `/api/v1/namespaces/${ns}`)).status, 200);
    await waitFor(async () => (await cp.request('GET', `/api/v1/namespaces/${ns}`)).status === 404, 60_000, 'namespace gone');
    assert.deepEqual(standIn.guestPids(), []);
    for (const pid of pids) assert.equal(pidAlive(pid), false);
  });
});

interface VmiObject {
  metadata: { name: string; uid: string; ownerReferences?: Array<{ kind: string }> };
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string }>;
    interfaces?: Array<{ ipAddress: string }>;
    phaseTransitionTimestamps?: Array<{ phase: string }>;
  };
}
