/**
 * 500 one-VM labs on one replica: the runtime (LabService, LabSupervisor, KubeVirtBackend as the
 * tool's ServiceAccount, FerretDB) alone in a process of its own (scaleTool.mts), against the test
 * API server and the KubeVirt stand-in (this process starts both) with paper guests (the VMIs run,
 * nothing boots). Labs start in waves under a KUBEVIRT_MAX_VMS of exactly the lab count (one lab
 * more queues). At steady state, with the supervisor on its default 15 s interval: API requests per
 * second (every request the client sends, counted as it sends it), the tool process's RSS,
 * event-loop delay, one supervisor pass; then every lab destroyed at once. Beside the requests: what
 * polling each lab the way KubeSpawner polls a pod would send.
 */
import { sharedKubeVirt, stopSharedKubeVirt } from '../test/support/kubevirt-standin/launcher.js';
import { stopSharedControlPlane } from '../test/support/k8s/controlPlane.js';
import { installTool } from '../test/support/kubevirtTool.js';
import { sharedMongoUri } from '../test/support/ferret.js';
import { forkChild, type BenchRow } from './lib.mjs';
import type { FromScaleTool, ToScaleTool } from './scaleTool.mjs';

export async function run(): Promise<BenchRow[]> {
  try {
    const { cp, standIn } = await sharedKubeVirt();
    const kubeconfigPath = await installTool(cp);
    const tool = forkChild<FromScaleTool, ToScaleTool>(new URL('./scaleTool.mts', import.meta.url), "the scale benchmark's tool");
    try {
      tool.send({ msg: 'start', mongoUri: sharedMongoUri(), kubeconfigPath, subresourceUrl: standIn.baseUrl });
      for (;;) {
        const m = await tool.next();
        if (m.msg === 'paperGuests') {
          standIn.withoutGuests(m.names);
          tool.send({ msg: 'paperGuests' });
        } else if (m.msg === 'rows') {
          return m.rows;
        }
      }
    } finally {
      await tool.stop({ msg: 'stop' });
    }
  } finally {
    await stopSharedKubeVirt();
    await stopSharedControlPlane();
  }
}
