/**
 * A separate process campaigning for the leader Lease (for the "kill the leader" test):
 * node --import tsx test/support/leaseHolder.ts <kubeconfig> <identity> <durationMs>
 * Prints "LEADER true|false" on every change; exits when stdin closes.
 */
import { pino } from 'pino';
import { KubeClient } from '../../src/backends/kubevirt/client.js';
import { LeaderLease } from '../../src/backends/kubevirt/LeaderLease.js';

const [kubeconfigPath, identity, duration] = process.argv.slice(2);
const log = pino({ level: 'silent' });
const client = new KubeClient({ kubeconfigPath, log });
const lease = new LeaderLease({
  client, log, namespace: 'lab-orchestrator', name: 'lab-orchestrator', identity: identity ?? 'child', durationMs: Number(duration ?? 3000),
  onChange: (leader) => process.stdout.write(`LEADER ${leader}\n`),
});
lease.start();
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
