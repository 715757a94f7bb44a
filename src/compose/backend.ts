/** The lab backend chosen by BACKEND, its readiness check, and leadership (the Lease on KubeVirt; alone, this process leads). */
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ReadinessCheck } from '../http/createApp.js';
import type { LabBackend } from '../backends/types.js';
import type { Duties } from '../leadership.js';
import { createKubeVirtBackend, createLeaderLease } from '../backends/kubevirt/createKubeVirtBackend.js';
import { createQemuBackend } from '../backends/qemu/createQemuBackend.js';
import type { Closers } from './Closers.js';

export function buildBackend(config: Config, deps: { log: Logger; metrics: Metrics }, closers: Closers): { backend: LabBackend; readiness: ReadinessCheck } {
  const log = deps.log.child({ component: 'backend' });
  if (config.BACKEND === 'kubevirt') {
    const kv = createKubeVirtBackend(config, { log, metrics: deps.metrics });
    closers.add('backend', () => kv.close());
    return { backend: kv, readiness: { name: 'kubevirt', check: () => kv.ready() } };
  }
  const qemu = createQemuBackend(config, { log });
  closers.add('backend', () => qemu.close());
  return { backend: qemu, readiness: { name: 'qemu', check: () => qemu.ready() } };
}

/** The Lease holder runs the duties (KubeVirt, several replicas); with the local backend this process does. */
export async function startLeadership(config: Config, deps: { log: Logger; metrics: Metrics; duties: Duties }, closers: Closers): Promise<void> {
  if (config.BACKEND !== 'kubevirt') return deps.duties.setLeader(true);
  const { lease, client } = createLeaderLease(config, { log: deps.log.child({ component: 'lease' }), metrics: deps.metrics, onChange: (leader) => void deps.duties.setLeader(leader) });
  lease.start();
  closers.add('lease', async () => {
    await deps.duties.setLeader(false);
    await lease.release();
    client.close();
  });
}
