/**
 * Warm before class on the KubeVirt backend: the real tool (BACKEND=kubevirt, its warm duty and
 * supervisor) against the real API server and the KubeVirt stand-in. A scheduled session's labs
 * are namespaces with their VMs before anyone launches; a launch hands one out (the student's
 * record names that namespace, no namespace is created); the unused ones go when the session ends.
 * The guests are paper ones (nothing boots): the test is about namespaces and VMs, not guests.
 */
import assert from 'node:assert/strict';
import { waitFor } from '../support/tool.js';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import { installTool, TOOL_NS, TOOL_SA } from '../support/kubevirtTool.js';
import { STANDIN_IMAGE_CATALOG } from '../support/imageCatalog.js';
import { startWarmTool, type WarmTool } from '../support/warmTool.js';
import { MANAGED_BY_LABEL, MANAGER } from '../../src/backends/kubevirt/manifests.js';
import { Activity } from '../../src/store/Activity.js';
import { LabInstance, type LabInstanceDoc } from '../../src/store/LabInstance.js';
import { WarmSession } from '../../src/store/WarmSession.js';
import { ensurePoolLab } from '../../src/store/WarmLabs.js';

const HOUR = 3_600_000;

describe('warm sessions on the KubeVirt backend (stand-in, paper guests)', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  let w: WarmTool;
  const handedOut: string[] = [];

  before(async function () {
    this.timeout(300_000);
    ({ cp, standIn } = await sharedKubeVirt());
    const kubeconfig = await installTool(cp);
    w = await startWarmTool(undefined, {
      BACKEND: 'kubevirt', KUBECONFIG: kubeconfig, KUBEVIRT_SUBRESOURCE_URL: standIn.baseUrl, KUBEVIRT_TOOL_NAMESPACE: TOOL_NS,
      KUBEVIRT_SERVICE_ACCOUNT: TOOL_SA, KUBEVIRT_BOOT_TIMEOUT_MS: '120000', IMAGE_CATALOG: STANDIN_IMAGE_CATALOG,
    });
  });
  after(async () => {
    for (const id of handedOut) await w?.svc.destroy(id).catch(() => undefined);
    await w?.tool.shutdown();
  });

  /** The lab namespaces the tool manages (not terminating). */
  async function labNamespaces(): Promise<Set<string>> {
    const r = await cp.request('GET', `/api/v1/namespaces?labelSelector=${encodeURIComponent(`${MANAGED_BY_LABEL}=${MANAGER}`)}`);
    assert.equal(r.status, 200, r.body);
    const items = r.json<{ items: Array<{ metadata: { name: string }; status?: { phase?: string } }> }>().items;
    return new Set(items.filter((n) => n.status?.phase !== 'Terminating').map((n) => n.metadata.name));
  }

  /** The VMs of a namespace and their instances' phases, by name. */
  async function vms(ns: string): Promise<Record<string, string | undefined>> {
    const list = async (kind: string) => {
      const r = await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/${kind}`);
      assert.equal(r.status, 200, r.body);
      return r.json<{ items: Array<{ metadata: { name: string }; status?: { phase?: string } }> }>().items;
    };
    const phases = new Map((await list('virtualmachineinstances')).map((i) => [i.metadata.name, i.status?.phase]));
    return Object.fromEntries((await list('virtualmachines')).map((v) => [v.metadata.name, phases.get(v.metadata.name)]));
  }

  it('prepares 3 labs ahead as namespaces with their VMs, hands 2 to launching students without a new namespace, and destroys the unused one after the session', async () => {
    const prepared0 = await w.metric('lab_warm_prepared_total');
    const handed0 = await w.metric('lab_warm_handed_out_total');
    const wasted0 = await w.metric('lab_warm_wasted_total');
    // in three hours: nothing is prepared yet (preparation starts 10 minutes before)
    const { a, contextId, id } = await w.schedule({ expected: 3, startsAt: new Date(Date.now() + 3 * HOUR) });
    const activityId = (await Activity.findOne({ contextKey: contextId, title: a.title }).lean())!._id;
    const version = (await w.tool.labs.latest('shell-steps'))!.version;

    // paper guests: the stand-in must know a namespace's name before it exists. The duty's records
    // are one per (activity, session, n), so make them as it does and mark their namespaces.
    const pool = await Promise.all([0, 1, 2].map((n) => ensurePoolLab({ sessionId: id, n, activityId, contextId, labId: 'shell-steps', labVersion: version })));
    const poolNs = pool.map((p) => `lab-${p._id}-g1`);
    standIn.withoutGuests(poolNs);
    const before = await labNamespaces();
    assert.ok(poolNs.every((ns) => !before.has(ns)), 'no namespace before the session\'s preparation starts');

    // the clock reaches the preparation window: the duty prepares the three
    await WarmSession.updateOne({ _id: id }, { $set: { startsAt: new Date(), endsAt: new Date(Date.now() + HOUR) } });
    await waitFor(async () => (await LabInstance.countDocuments({ warmSession: id, state: 'running' })) === 3, 180_000, 'three prepared labs running');
    const prepared = await labNamespaces();
    for (const ns of poolNs) {
      assert.ok(prepared.has(ns), `namespace ${ns} exists before any launch`);
      assert.deepEqual(await vms(ns), { box: 'Running' }, `the VM of ${ns} runs`);
    }
    assert.equal(await w.metric('lab_warm_prepared_total'), prepared0 + 3);

    // two students launch (the launch starts the lab)
    const students = await Promise.all([w.launch(a, 'student'), w.launch(a, 'student2')]);
    const ids = students.map((s) => decodeURIComponent(s.path.split('/').pop()!));
    handedOut.push(...ids);
    for (const [i, s] of students.entries()) {
      const view = (await (await w.api(s.session, 'GET', `/api/instances/${ids[i]}`)).json()) as { state: string };
      assert.equal(view.state, 'running', 'running at once');
    }
    const mine = (await LabInstance.find({ _id: { $in: ids } }).lean()) as LabInstanceDoc[];
    const taken = mine.map((d) => d.handle!.name);
    assert.equal(new Set(taken).size, 2, 'two distinct labs');
    assert.ok(taken.every((ns) => poolNs.includes(ns)), `each student's record names a prepared namespace (${taken.join(', ')})`);
    assert.deepEqual(await labNamespaces(), prepared, 'no namespace created or removed by the launches');
    assert.ok(ids.every((sid) => ![...prepared].some((ns) => ns.startsWith(`lab-${sid}-`))), 'none named after a student\'s record');
    assert.equal(await w.metric('lab_warm_handed_out_total'), handed0 + 2);

    // the session ends: the lab nobody took goes, the students' stay
    const unused = poolNs.find((ns) => !taken.includes(ns))!;
    await WarmSession.updateOne({ _id: id }, { $set: { endsAt: new Date() } });
    await waitFor(async () => (await WarmSession.findById(id).lean())?.state === 'ended', 120_000, 'the session ended');
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${unused}`)).status, 404, 'the unused namespace is deleted');
    const after = await labNamespaces();
    for (const ns of taken) {
      assert.ok(after.has(ns), `the student's namespace ${ns} stays`);
      assert.deepEqual(await vms(ns), { box: 'Running' });
    }
    assert.deepEqual((await LabInstance.find({ _id: { $in: ids } }).lean()).map((d) => d.state), ['running', 'running']);
    assert.equal(await w.metric('lab_warm_wasted_total'), wasted0 + 1);
  });
});
