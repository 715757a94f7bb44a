/** Builds the KubeVirt backend from the configuration (the composition root calls this for BACKEND=kubevirt). */
import type { Config } from '../../config.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { KubeClient } from './client.js';
import { KubeVirtBackend } from './KubeVirtBackend.js';

export function createKubeVirtBackend(config: Config, deps: { log: Logger; metrics?: Metrics }): KubeVirtBackend {
  const client = new KubeClient({ kubeconfigPath: config.KUBECONFIG, log: deps.log, metrics: deps.metrics, qps: config.KUBEVIRT_QPS });
  return new KubeVirtBackend({
    client,
    log: deps.log,
    toolNamespace: config.KUBEVIRT_TOOL_NAMESPACE,
    toolServiceAccount: config.KUBEVIRT_SERVICE_ACCOUNT,
    ...(config.KUBEVIRT_API_SERVER_CIDRS ? { apiServerCidrs: config.KUBEVIRT_API_SERVER_CIDRS.split(',') } : {}),
    ...(config.KUBEVIRT_SUBRESOURCE_URL ? { subresourceUrl: config.KUBEVIRT_SUBRESOURCE_URL } : {}),
    bootTimeoutMs: config.KUBEVIRT_BOOT_TIMEOUT_MS,
  });
}
