/** Builds the KubeVirt backend from the configuration (the composition root calls this for BACKEND=kubevirt). */
import os from 'node:os';
import type { Config } from '../../config.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { KubeClient } from './client.js';
import { KubeVirtBackend } from './KubeVirtBackend.js';
import { LeaderLease } from './LeaderLease.js';

export function createKubeVirtBackend(config: Config, deps: { log: Logger; metrics?: Metrics }): KubeVirtBackend {
  const client = new KubeClient({ kubeconfigPath: config.KUBECONFIG, log: deps.log, metrics: deps.metrics, qps: config.KUBEVIRT_QPS, burst: config.KUBEVIRT_BURST });
  return new KubeVirtBackend({
    client,
    log: deps.log,
    toolNamespace: config.KUBEVIRT_TOOL_NAMESPACE,
    toolServiceAccount: config.KUBEVIRT_SERVICE_ACCOUNT,
    ...(config.KUBEVIRT_API_SERVER_CIDRS ? { apiServerCidrs: config.KUBEVIRT_API_SERVER_CIDRS.split(',') } : {}),
    ...(config.KUBEVIRT_SUBRESOURCE_URL ? { subresourceUrl: config.KUBEVIRT_SUBRESOURCE_URL } : {}),
    bootTimeoutMs: config.KUBEVIRT_BOOT_TIMEOUT_MS,
    limits: {
      ...(config.KUBEVIRT_MAX_VMS !== undefined ? { maxVms: config.KUBEVIRT_MAX_VMS } : {}),
      ...(config.KUBEVIRT_MAX_MEMORY_MIB !== undefined ? { maxMemoryMiB: config.KUBEVIRT_MAX_MEMORY_MIB } : {}),
    },
    disks: {
      imageNamespace: config.KUBEVIRT_IMAGE_NAMESPACE,
      ...(config.KUBEVIRT_STORAGE_CLASS ? { storageClass: config.KUBEVIRT_STORAGE_CLASS } : {}),
      ...(config.KUBEVIRT_MAX_LAB_STORAGE_GIB !== undefined ? { maxLabStorageGiB: config.KUBEVIRT_MAX_LAB_STORAGE_GIB } : {}),
    },
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
}

/** The Lease the replicas compete for (k8s/rbac-tool.yaml grants the tool exactly this one). */
export const LEASE_NAME = 'lab-orchestrator-leader';

/**
 * The leader election for BACKEND=kubevirt with several replicas: only the holder should run the
 * LabSupervisor, the expiry sweeper and the grade outbox. Call start() after wiring onChange, and
 * on shutdown release(), then close the lease's own client (its renewals never wait behind lab
 * requests for the backend's rate limit).
 */
export function createLeaderLease(config: Config, deps: { log: Logger; metrics?: Metrics; onChange: (leader: boolean) => void }): { lease: LeaderLease; client: KubeClient } {
  const client = new KubeClient({ kubeconfigPath: config.KUBECONFIG, log: deps.log, metrics: deps.metrics, qps: config.KUBEVIRT_QPS, burst: config.KUBEVIRT_BURST });
  const lease = new LeaderLease({
    client,
    log: deps.log,
    namespace: config.KUBEVIRT_TOOL_NAMESPACE,
    name: LEASE_NAME,
    identity: config.POD_NAME ?? `${os.hostname()}-${process.pid}`,
    durationMs: config.LEASE_DURATION_MS,
    onChange: deps.onChange,
  });
  return { lease, client };
}
