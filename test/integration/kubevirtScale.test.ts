/**
 * 30 labs provisioned at once on the KubeVirt backend (real API server, the stand-in's controllers
 * and CDI, the tool's ServiceAccount): all reach running, and the API requests each lab costs are
 * counted from the client's own request log (the same path that feeds lab_k8s_api_requests_total).
 * The VMIs run paper guests (no QEMU: paperGuests.ts); the VM tests boot real ones.
 */
import assert from 'node:assert/strict';
import { sharedKubeVirt } from '../support/kubevirt-standin/launcher.js';
import { labRequests, newHandle, toolBackend } from '../support/kubevirtTool.js';
import type { RequestRecord } from '../../src/backends/kubevirt/client.js';
import { planLab } from '../../src/backends/kubevirt/manifests.js';
import type { BackendLabSpec } from '../../src/backends/types.js';
import { Metrics } from '../../src/metrics.js';

const LABS = 30;

describe('KubeVirt backend at scale', function () {
  this.timeout(300_000);

  it(`provisions ${LABS} labs concurrently, all running, with one request per object (VMs created running, none patched)`, async () => {
    const { cp, standIn } = await sharedKubeVirt();
    const metrics = new Metrics({ defaultMetrics: false });
    const { backend, client } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 120_000, metrics });
    const spec: BackendLabSpec = {
      labId: 'scale',
      labVersion: '1',
      machines: [{ name: 'node', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console'], credentials: { username: 'student', password: 'pw' } }],
      network: { internetEgress: false },
    };
    const handles = Array.from({ length: LABS }, () => newHandle());
    // what is measured is the tool's traffic and concurrency, not guests: 30 QEMU boots at once on
    // 2 cores take minutes and tell nothing about the backend (the guests' own tests boot real ones)
    standIn.withoutGuests(handles.map((h) => h.name));
    const records: RequestRecord[] = [];
    let namespaceCreates = 0;
    let other = 0;
    const names = new Set(handles.map((h) => h.name));
    const off = client.onRequest((r) => {
      const ns = /\/namespaces\/([^/]+)/.exec(r.path)?.[1];
      if (ns && names.has(ns)) records.push(r);
      else if (r.verb === 'create' && r.path === '/api/v1/namespaces') namespaceCreates++;
      else other++;
    });
    try {
      const t0 = Date.now();
      await Promise.all(handles.map((h) => backend.provision(spec, h, () => undefined)));
      const allRunningMs = Date.now() - t0;
      off();
      const statuses = await Promise.all(handles.map((h) => backend.status(h)));
      for (const st of statuses) assert.deepEqual(st, { node: { phase: 'running' } });

      const p = planLab({ handle: handles[0]!, spec, toolNamespace: 'lab-orchestrator', toolServiceAccount: 'lab-orchestrator', apiServerCidrs: [], disks: { imageNamespace: 'lab-images' } });
      const inNamespace = 1 + p.guards.length + p.setup.length + p.vms.length + p.pods.length; // + rolebinding
      assert.equal(namespaceCreates, LABS);
      const perLab = handles.map((h) => labRequests(records, h.name));
      const counts = perLab.map((r) => 1 + r.creates + r.patches); // + its namespace create
      const refused = perLab.map((r) => r.settling);
      const reads = perLab.map((r) => r.cloneReads);
      process.stderr.write(
        `      [kubevirt] ${LABS} labs (1 VM each) running in ${allRunningMs} ms; writes per lab ${Math.min(...counts)}..${Math.max(...counts)} ` +
          `for ${inNamespace + 1} objects (403s while the RoleBinding settles ${Math.min(...refused)}..${Math.max(...refused)}); clone-progress reads per lab ${Math.min(...reads)}..${Math.max(...reads)}; shared (informers etc.) ${other}; ` +
          `lab_k8s_api_requests_total ${(await metrics.k8sRequests.get()).values.reduce((a, v) => a + v.value, 0)}\n`,
      );
      for (const [i, r] of perLab.entries()) {
        const ns = handles[i]!.name;
        assert.equal(r.creates, inNamespace, `${ns}: each object created once`);
        assert.deepEqual(r.failed, [], `${ns}: no request refused (besides creates while the RoleBinding settles)`);
        assert.equal(r.patches, 0, `${ns}: VMs created running, none patched to start`);
        assert.deepEqual(r.other, [], `${ns}: no reads besides the clone progress`);
        assert.equal(r.cloneReads % 2, 0, `${ns}: clone progress is a DataVolume list with a VM list`);
        // looks only while the lab's one VM has no VMI: the first, then one per 2 s (a VMI change means it has one)
        assert.ok(r.cloneReads / 2 <= 1 + Math.ceil(allRunningMs / 2000), `${ns}: ${r.cloneReads / 2} clone looks in ${allRunningMs} ms`);
      }

      const t1 = Date.now();
      await Promise.all(handles.map((h) => backend.destroy(h)));
      process.stderr.write(`      [kubevirt] ${LABS} labs destroyed (namespaces confirmed gone) in ${Date.now() - t1} ms\n`);
      assert.deepEqual(await backend.list(), []);
    } finally {
      off();
      // whatever failed above, no lab of this test outlives it
      await Promise.allSettled(handles.map((h) => backend.destroy(h)));
      await backend.close();
    }
  });
});
