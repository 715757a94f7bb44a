/**
 * 30 labs provisioned at once on the KubeVirt backend (real API server, stand-in with real QEMU
 * guests, the tool's ServiceAccount): all reach running, and the API requests each lab costs are
 * counted from the client's own request log (the same path that feeds lab_k8s_api_requests_total).
 */
import assert from 'node:assert/strict';
import { sharedKubeVirt } from '../support/kubevirt-standin/launcher.js';
import { newHandle, toolBackend } from '../support/kubevirtTool.js';
import { planLab } from '../../src/backends/kubevirt/manifests.js';
import type { BackendLabSpec } from '../../src/backends/types.js';
import { Metrics } from '../../src/metrics.js';

const LABS = 30;

describe('KubeVirt backend at scale', function () {
  this.timeout(300_000);

  it(`provisions ${LABS} labs concurrently, all running, with one request per object plus one start per VM`, async () => {
    const { cp, standIn } = await sharedKubeVirt();
    const metrics = new Metrics({ defaultMetrics: false });
    const { backend, client } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 240_000, metrics });
    const spec: BackendLabSpec = {
      labId: 'scale',
      labVersion: '1',
      machines: [{ name: 'node', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console'], credentials: { username: 'student', password: 'pw' } }],
      network: { internetEgress: false },
    };
    const handles = Array.from({ length: LABS }, () => newHandle());
    const perLab = new Map<string, number>(handles.map((h) => [h.name, 0]));
    let namespaceCreates = 0;
    let other = 0;
    const off = client.onRequest((r) => {
      const ns = /\/namespaces\/([^/]+)/.exec(r.path)?.[1];
      if (ns && perLab.has(ns)) perLab.set(ns, (perLab.get(ns) ?? 0) + 1);
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
      const objects = 2 + p.guards.length + p.setup.length + p.vms.length + p.pods.length; // + namespace + rolebinding
      const counts = [...perLab.values()].map((c) => c + 1); // + its namespace create
      assert.equal(namespaceCreates, LABS);
      const min = Math.min(...counts);
      const max = Math.max(...counts);
      const avg = counts.reduce((a, b) => a + b, 0) / counts.length;
      process.stderr.write(
        `      [kubevirt] ${LABS} labs (1 VM each) running in ${allRunningMs} ms; API requests per lab min ${min} / avg ${avg.toFixed(1)} / max ${max} ` +
          `for ${objects} objects (objects + ${p.vms.length} VM start); shared (informers etc.) ${other}; ` +
          `lab_k8s_api_requests_total ${(await metrics.k8sRequests.get()).values.reduce((a, v) => a + v.value, 0)}\n`,
      );
      assert.equal(max, objects + p.vms.length, 'no retries, no extra reads');

      const t1 = Date.now();
      await Promise.all(handles.map((h) => backend.destroy(h)));
      process.stderr.write(`      [kubevirt] ${LABS} labs destroyed (namespaces confirmed gone) in ${Date.now() - t1} ms\n`);
      assert.deepEqual(await backend.list(), []);
    } finally {
      off();
      await backend.close();
    }
  });
});
