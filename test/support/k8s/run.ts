/**
 * Start the test control plane (and the KubeVirt stand-in) by hand, e.g. to try the tool with
 * BACKEND=kubevirt or to poke at it with kubectl:
 *
 *   npx tsx test/support/k8s/run.ts [--no-kubevirt]
 *
 * Prints the kubeconfig path and the subresource URL, runs until Ctrl-C / SIGTERM, then tears
 * everything down (no process, no temp dir; LAB_K8S_KEEP=1 keeps the dir).
 */
import { ControlPlane, kubectlBin } from './controlPlane.js';
import { startStandIn, type StandIn } from '../kubevirt-standin/launcher.js';

const cp = await ControlPlane.start();
let standIn: StandIn | undefined;
try {
  if (!process.argv.includes('--no-kubevirt')) standIn = await startStandIn(cp);
} catch (err) {
  await cp.stop();
  throw err;
}
process.stdout.write([
  `control plane ready in ${cp.startupMs} ms: ${cp.server}`,
  `  export KUBECONFIG=${cp.kubeconfigPath}`,
  `  kubectl: ${kubectlBin()}`,
  ...(standIn ? [`  KubeVirt stand-in: KUBEVIRT_SUBRESOURCE_URL=${standIn.baseUrl} (log ${standIn.logFile})`] : []),
  'Ctrl-C stops it.', '',
].join('\n'));
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  try {
    await standIn?.stop();
  } finally {
    await cp.stop();
  }
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
