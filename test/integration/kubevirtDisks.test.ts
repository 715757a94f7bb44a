/**
 * Persistent machines on KubeVirt: each VM boots its own DataVolume, a clone of its image's golden
 * DataSource. Real API server (CDI's real DataVolume/DataSource CRDs, real ResourceQuota
 * admission), the KubeVirt stand-in booting real QEMU guests and playing CDI (a qcow2 overlay per
 * DataVolume), the backend as the tool's ServiceAccount.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import { IMAGE_NS, newHandle, toolBackend } from '../support/kubevirtTool.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { BackendLabSpec, LabHandle, MachineSpec } from '../../src/backends/types.js';
import { BackendFailure } from '../../src/errors.js';
import { Metrics } from '../../src/metrics.js';

const run = promisify(execFile);
const SEL = 'app.kubernetes.io/managed-by=lab-orchestrator';

function vm(name: string, o: Partial<MachineSpec> = {}): MachineSpec {
  return { name, kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, diskGiB: 1, channels: ['console'], credentials: { username: 'student', password: `pw-${name}` }, ...o };
}
const spec = (machines: MachineSpec[]): BackendLabSpec => ({ labId: 'disks', labVersion: '1', machines, network: { internetEgress: false } });

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Pvc { metadata: { name: string; namespace: string; annotations?: Record<string, string> }; status?: { phase?: string; capacity?: { storage?: string } } }

describe('persistent machines on KubeVirt (per-VM DataVolume cloned from the golden image)', function () {
  this.timeout(420_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  let backend: KubeVirtBackend;
  const metrics = new Metrics({ defaultMetrics: false });
  const handles: LabHandle[] = [];

  const pvcs = async (ns?: string): Promise<Pvc[]> => {
    const r = await cp.request('GET', `${ns ? `/api/v1/namespaces/${ns}` : '/api/v1'}/persistentvolumeclaims?labelSelector=${encodeURIComponent(SEL)}`);
    assert.equal(r.status, 200, r.body);
    return r.json<{ items: Pvc[] }>().items;
  };
  const exec = (h: LabHandle, machine: string, cmd: string) => backend.exec(h, machine, cmd, { timeoutMs: 20_000, maxOutputBytes: 65536 });

  before(async () => {
    ({ cp, standIn } = await sharedKubeVirt());
    ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 240_000, metrics }));
  });
  after(async () => {
    // stop every guest this file started: destroy its labs
    await Promise.all(handles.map((h) => backend.destroy(h).catch(() => undefined)));
    await backend?.close();
  });

  describe('a one-VM lab', () => {
    const h = newHandle();
    handles.push(h);
    let file = '';

    it('boots from its own clone of the golden disk, with the clone in the lab namespace and the quota counting it', async () => {
      await backend.provision(spec([vm('box')]), h, () => undefined);
      const dv = await cp.request('GET', `/apis/cdi.kubevirt.io/v1beta1/namespaces/${h.name}/datavolumes/box-root`);
      assert.equal(dv.status, 200, dv.body);
      const d = dv.json<{ spec: { sourceRef: unknown }; status: { phase: string }; metadata: { ownerReferences: Array<{ kind: string; name: string }> } }>();
      assert.deepEqual(d.spec.sourceRef, { kind: 'DataSource', name: 'lab-tiny', namespace: IMAGE_NS });
      assert.equal(d.status.phase, 'Succeeded');
      assert.deepEqual(d.metadata.ownerReferences.map((o) => `${o.kind}/${o.name}`), ['VirtualMachine/box'], 'the disk belongs to its VM');
      const [pvc] = await pvcs(h.name);
      assert.equal(pvc?.metadata.name, 'box-root');
      file = pvc?.metadata.annotations?.['kubevirt-standin/file'] ?? '';
      const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-U', file])).stdout) as { 'backing-filename'?: string; 'virtual-size': number };
      assert.match(info['backing-filename'] ?? '', /lab-tiny[^/]*\/disk\.qcow2$/, 'a copy-on-write clone of the golden disk, not a copy');
      const quota = await cp.request('GET', `/api/v1/namespaces/${h.name}/resourcequotas/lab`);
      const q = quota.json<{ status: { used: Record<string, string>; hard: Record<string, string> } }>();
      assert.equal(q.status.hard.persistentvolumeclaims, '1');
      await until('quota usage of the clone', async () => (await cp.request('GET', `/api/v1/namespaces/${h.name}/resourcequotas/lab`)).json<{ status: { used?: Record<string, string> } }>().status.used?.persistentvolumeclaims === '1');
    });

    it('reports the VM address and its name in the lab', async () => {
      const a = await backend.addresses(h);
      assert.match(a.box?.ip ?? '', /^\d+\.\d+\.\d+\.\d+$/);
      assert.equal(a.box?.host, 'box.lab');
    });

    it('keeps the file the student wrote across stop and start, and across a tool restart', async () => {
      const w = await exec(h, 'box', 'echo "monday notes" >/home/student/notes.txt && sync && cat /home/student/notes.txt');
      assert.equal(w.stdout.trim(), 'monday notes', w.stderr);
      await backend.stop(h);
      await until('the VMI to be gone', async () => (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${h.name}/virtualmachineinstances/box`)).status === 404);
      assert.equal((await pvcs(h.name)).length, 1, 'the disk is kept while the lab is stopped');
      assert.ok(fs.existsSync(file));
      assert.deepEqual(await backend.status(h), { box: { phase: 'stopped' } });
      const scrape = await metrics.render();
      assert.match(scrape, /lab_storage_bytes\{backend="kubevirt",state="stopped"\} [1-9]\d+/);

      // the tool restarts while the lab is stopped: a new backend (new watches, no memory) starts it
      await backend.close();
      const after = new Metrics({ defaultMetrics: false });
      ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 240_000, metrics: after }));
      await backend.start(h);
      const r = await exec(h, 'box', 'cat /home/student/notes.txt');
      assert.equal(r.stdout.trim(), 'monday notes', r.stderr);
      assert.match(await after.render(), /lab_storage_bytes\{backend="kubevirt",state="running"\} [1-9]\d+/);
    });

    it('deletes the disk with the lab and leaves the golden disk alone', async () => {
      await backend.destroy(h);
      assert.deepEqual(await pvcs(h.name), []);
      await until('the clone file to be removed', async () => !fs.existsSync(file));
      const golden = await cp.request('GET', `/api/v1/namespaces/${IMAGE_NS}/persistentvolumeclaims/lab-tiny`);
      assert.equal(golden.status, 200, 'the golden PVC stays');
    });
  });

  it('refuses a lab whose image has no golden disk, naming the image, before creating anything', async () => {
    const h = newHandle();
    handles.push(h);
    await assert.rejects(backend.provision(spec([vm('box', { image: 'registry.example.edu/labs/no-such-image:7' })]), h, () => undefined), (err: unknown) => {
      assert.ok(err instanceof BackendFailure);
      assert.match(err.publicMessage, /Image registry\.example\.edu\/labs\/no-such-image:7 is not available.*DataSource lab-images\/no-such-image-7/);
      return true;
    });
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${h.name}`)).status, 404, 'no namespace was created');
  });

  it('fails a lab whose disks exceed the storage quota, naming the quota, and its destroy leaves no disk behind', async () => {
    const { backend: capped } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 120_000, disks: { maxLabStorageGiB: 1 } });
    const h = newHandle();
    handles.push(h);
    try {
      await assert.rejects(capped.provision(spec([vm('alpha'), vm('beta')]), h, () => undefined), (err: unknown) => {
        assert.ok(err instanceof BackendFailure);
        assert.match(err.publicMessage, /Machine (alpha|beta) cannot start: the disk of machine \w+ does not fit the lab's storage quota \(.*exceeded quota: lab/);
        return true;
      });
      await capped.destroy(h);
      assert.equal((await cp.request('GET', `/api/v1/namespaces/${h.name}`)).status, 404);
      const left = (await pvcs()).filter((p) => p.metadata.namespace === h.name);
      assert.deepEqual(left, []);
      const dir = path.join(standIn.workDir, 'pv', h.name);
      assert.ok(!fs.existsSync(dir) || fs.readdirSync(dir).length === 0, 'no clone file left');
    } finally {
      await capped.close();
    }
  });
});
