/**
 * A tool process that provisions one lab and can be killed at any point (the "kill after each
 * step" test): node --import tsx test/support/provisionChild.ts <kubeconfig> <subresourceUrl> <handle JSON> <spec JSON>
 * Prints "REQ <verb> <status>" for every completed API request of the lab, then "DONE".
 */
import { pino } from 'pino';
import { KubeClient } from '../../src/backends/kubevirt/client.js';
import { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { BackendLabSpec, LabHandle } from '../../src/backends/types.js';

const [kubeconfigPath, subresourceUrl, handleJson, specJson] = process.argv.slice(2);
const handle = JSON.parse(handleJson ?? '{}') as LabHandle;
const spec = JSON.parse(specJson ?? '{}') as BackendLabSpec;
const log = pino({ level: 'silent' });
const client = new KubeClient({ kubeconfigPath, log });
client.onRequest((r) => {
  if (r.path.includes(handle.name) || (r.verb === 'create' && r.path === '/api/v1/namespaces')) process.stdout.write(`REQ ${r.verb} ${r.status}\n`);
});
const backend = new KubeVirtBackend({ client, log, toolNamespace: 'lab-orchestrator', toolServiceAccount: 'lab-orchestrator', ...(subresourceUrl ? { subresourceUrl } : {}) });
await backend.provision(spec, handle, () => undefined);
process.stdout.write('DONE\n');
await backend.close();
