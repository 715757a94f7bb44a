/**
 * The recent serial console output of a VM, from KubeVirt's serial console log (KubeVirt ≥ 1.1,
 * `spec.domain.devices.logSerialConsole`): virt-launcher's `guest-console-log` container (virt-tail)
 * prints every complete line the guest wrote to its serial console, kept by the kubelet whether or
 * not anyone is connected. Read with `pods/log` of the VMI's virt-launcher pod (labelled
 * `kubevirt.io/created-by=<vmi uid>`), through the API server, with the tool's own identity.
 *
 * The tail: the last `TAIL_LINES` lines (`tailLines`), the response capped at `CAP_BYTES`
 * (`limitBytes` counts from the start of what is sent), then cut to the last `maxBytes` at a line
 * start. A line that is still being written — a `login: ` prompt waiting for input — is not in the
 * log until its newline (virt-tail prints complete lines only).
 */
import type { KubeClient } from './client.js';

export const CONSOLE_LOG_CONTAINER = 'guest-console-log';
export const CREATED_BY_LABEL = 'kubevirt.io/created-by';
const TAIL_LINES = 200;
const CAP_BYTES = 128 * 1024;

interface PodItem { metadata: { name: string; creationTimestamp?: string }; spec?: { nodeName?: string } }

/** The VMI's running virt-launcher pod (the newest, on the VMI's node when it names one). */
export async function launcherPodName(client: KubeClient, ns: string, vmiUid: string, nodeName: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
  const list = await client.request<{ items: PodItem[] }>('GET', `/api/v1/namespaces/${ns}/pods`, {
    query: { labelSelector: `${CREATED_BY_LABEL}=${vmiUid}`, fieldSelector: 'status.phase=Running' },
    signal,
  });
  const pods = [...list.items].sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''));
  return (pods.find((p) => nodeName && p.spec?.nodeName === nodeName) ?? pods[0])?.metadata.name;
}

/**
 * The last at most `maxBytes` of the VM's serial console log, starting at a line; empty when the
 * VMI has no running launcher pod or its log is empty. Throws what the API server answers
 * otherwise (403 without `pods/log`, 400 when the pod has no guest-console-log container).
 */
export async function consoleLogTail(client: KubeClient, ns: string, vmi: { uid: string; nodeName?: string }, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
  const pod = await launcherPodName(client, ns, vmi.uid, vmi.nodeName, signal);
  if (!pod) return Buffer.alloc(0);
  const path = `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod)}/log`;
  const read = (tailLines: number) => client.request<Buffer>('GET', path, {
    query: { container: CONSOLE_LOG_CONTAINER, tailLines: String(tailLines), limitBytes: String(CAP_BYTES) },
    binary: true,
    signal,
  }, 'get');
  let log = await read(TAIL_LINES);
  // capped: the cap cut off the newest lines; fewer lines fit (or there is no whole-line tail to give)
  if (log.length >= CAP_BYTES) log = await read(Math.max(1, Math.floor(TAIL_LINES / 10)));
  if (log.length >= CAP_BYTES) return Buffer.alloc(0);
  return lineTail(log, maxBytes);
}

/** The last at most `maxBytes` of `b`, from the first line start within them. */
export function lineTail(b: Buffer, maxBytes: number): Buffer {
  if (b.length <= maxBytes) return b;
  const tail = b.subarray(b.length - maxBytes);
  const nl = tail.indexOf(0x0a);
  return nl >= 0 && nl < tail.length - 1 ? tail.subarray(nl + 1) : Buffer.alloc(0);
}
