/**
 * The backend's informer against the real kube-apiserver: what it lists and what it watches reach
 * its cache and its listeners without server-side apply's managedFields (which the API server
 * keeps on every object).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sharedControlPlane, type ControlPlane } from '../support/k8s/controlPlane.js';
import { silentLog } from '../support/kubevirtTool.js';
import { KubeClient } from '../../src/backends/kubevirt/client.js';
import { Informer } from '../../src/backends/kubevirt/Informer.js';
import type { K8sObject } from '../../src/backends/kubevirt/manifests.js';
import { waitFor } from '../support/tool.js';

describe('Kubernetes informer (real API server)', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let client: KubeClient;
  const label = `informer-test-${randomBytes(4).toString('hex')}`;
  const names = [`${label}-listed`, `${label}-watched`];
  before(async () => {
    cp = await sharedControlPlane();
    client = new KubeClient({ kubeconfigPath: cp.kubeconfigPath, log: silentLog });
  });
  after(async () => {
    for (const n of names) await client.remove(`/api/v1/namespaces/${n}`).catch(() => undefined);
  });

  it('keeps and hands on objects without managedFields, listed or watched', async () => {
    const ns = (name: string): K8sObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'informer-test': label } } });
    await client.create(ns(names[0]!));
    const informer = new Informer(client, '/api/v1/namespaces', `informer-test=${label}`, silentLog);
    const events: K8sObject[] = [];
    informer.on((_type, o) => events.push(o));
    try {
      informer.start();
      await informer.synced();
      await client.create(ns(names[1]!));
      await waitFor(() => informer.get(undefined, names[1]!) !== undefined, 20_000, 'the watched namespace in the cache');
      for (const name of names) {
        const served = await client.request<K8sObject>('GET', `/api/v1/namespaces/${name}`);
        assert.ok(((served.metadata as { managedFields?: unknown[] }).managedFields ?? []).length > 0, `the API server keeps managedFields on ${name}`);
        const cached = informer.get(undefined, name);
        assert.equal(cached?.metadata.name, name);
        assert.equal((cached!.metadata as { managedFields?: unknown }).managedFields, undefined, `${name} cached without them`);
      }
      assert.deepEqual(events.map((e) => e.metadata.name).filter((n) => names.includes(n)).slice(0, 2), names, 'one listed, one watched');
      for (const e of events) assert.equal((e.metadata as { managedFields?: unknown }).managedFields, undefined, `${e.metadata.name} handed on without them`);
    } finally {
      await informer.stop();
    }
  });
});
