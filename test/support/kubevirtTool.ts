/**
 * The tool's identity on the test control plane: k8s/ applied for real with kubectl (namespace,
 * ServiceAccount, RBAC, admission policies, Deployment…), then a kubeconfig holding a token of the
 * tool's ServiceAccount — so backend tests run with exactly the permissions k8s/ grants, not admin.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { kubectlBin, type ControlPlane } from './k8s/controlPlane.js';
import { KubeClient, type RequestRecord } from '../../src/backends/kubevirt/client.js';
import type { Metrics } from '../../src/metrics.js';
import type { BackendLabSpec, LabHandle, MachineSpec } from '../../src/backends/types.js';
import { KubeVirtBackend, type KubeVirtBackendOptions } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import { goldenName } from '../../src/backends/kubevirt/disks.js';
import YAML from 'yaml';
import { STANDIN_IMAGE_CATALOG } from './imageCatalog.js';

const run = promisify(execFile);
/** A namespace the tool did not create (made by admin), for the admission tests. */
export const UNMANAGED_NS = 'someone-elses';
export const TOOL_NS = 'lab-orchestrator';
export const TOOL_SA = 'lab-orchestrator';
export const TOOL_USER = `system:serviceaccount:${TOOL_NS}:${TOOL_SA}`;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

export function kubectl(cp: ControlPlane, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(kubectlBin(), [`--kubeconfig=${cp.kubeconfigPath}`, ...args], { cwd: root, maxBuffer: 16 << 20 });
}

const installed = new WeakMap<ControlPlane, Promise<string>>();

/** Apply k8s/ once per control plane; resolves to a kubeconfig path for the tool's ServiceAccount. */
export function installTool(cp: ControlPlane): Promise<string> {
  let p = installed.get(cp);
  if (!p) {
    p = (async () => {
      await kubectl(cp, 'apply', '-k', 'k8s/');
      await kubectl(cp, 'apply', '-k', 'k8s/images/');
      await installGoldenImages(cp, DEFAULT_GOLDEN_IMAGES);
      const token = await cp.serviceAccountToken(TOOL_NS, TOOL_SA, 7200);
      const file = path.join(cp.dir, 'tool.kubeconfig');
      fs.writeFileSync(file, cp.kubeconfigYaml(token, 'lab-orchestrator'), { mode: 0o600 });
      // the admission policies take effect once the API server's policy informer has them
      await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: UNMANAGED_NS } });
      for (let i = 0; i < 100; i++) {
        const r = await cp.request('DELETE', `/api/v1/namespaces/${UNMANAGED_NS}?dryRun=All`, undefined, token);
        if (r.status === 403) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      return file;
    })();
    installed.set(cp, p);
  }
  return p;
}

/** Images the tests' labs use: lab-tiny by name, and every containerDisk of the stand-in's image catalog. */
export const DEFAULT_GOLDEN_IMAGES = [
  'lab-tiny',
  ...Object.values((YAML.parse(fs.readFileSync(STANDIN_IMAGE_CATALOG, 'utf8')) as { images: Record<string, { kubevirt?: { containerDisk?: string } }> }).images)
    .flatMap((e) => (e.kubevirt?.containerDisk ? [e.kubevirt.containerDisk] : [])),
];
export const IMAGE_NS = 'lab-images';

/**
 * What an administrator does once per image version (k8s/images/golden-image.example.yaml), as
 * admin: a DataVolume importing the image from the registry and a DataSource named
 * goldenName(image) pointing at its PVC. The stand-in's CDI fills it from the local guest image.
 */
export async function installGoldenImages(cp: ControlPlane, images: string[], sizeGi = 1): Promise<void> {
  for (const image of images) {
    const name = goldenName(image);
    const url = `docker://${image.includes('/') ? image : `registry.invalid/${image}:latest`}`;
    const objs = [
      { apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: { name, namespace: IMAGE_NS }, spec: { source: { registry: { url } }, storage: { resources: { requests: { storage: `${sizeGi}Gi` } } } } },
      { apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataSource', metadata: { name, namespace: IMAGE_NS }, spec: { source: { pvc: { name, namespace: IMAGE_NS } } } },
    ];
    for (const o of objs) {
      const r = await cp.request('POST', `/apis/cdi.kubevirt.io/v1beta1/namespaces/${IMAGE_NS}/${o.kind.toLowerCase()}s?fieldValidation=Strict`, o);
      if (r.status !== 201 && r.status !== 409) throw new Error(`creating golden ${o.kind} ${name}: ${r.status} ${r.body}`);
    }
  }
}

export const silentLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** Every client toolBackend made, so a file that leaves one open is named (test/support/hooks.ts). */
const made: KubeClient[] = [];

/**
 * Closes the tool clients (and so the backends' watches) that are still open; returns how many
 * were. A backend left open would relist on its own forever once the control plane stops.
 */
export function closeLeftToolClients(): number {
  const left = made.splice(0).filter((c) => !c.closed);
  for (const c of left) c.close();
  return left.length;
}

export async function toolBackend(cp: ControlPlane, o: Partial<KubeVirtBackendOptions> & { metrics?: Metrics } = {}): Promise<{ backend: KubeVirtBackend; client: KubeClient }> {
  return toolBackendAt(await installTool(cp), o);
}

/** The tool's backend with the kubeconfig installTool wrote (e.g. in another process). */
export function toolBackendAt(kubeconfigPath: string, o: Partial<KubeVirtBackendOptions> & { metrics?: Metrics } = {}): { backend: KubeVirtBackend; client: KubeClient } {
  const { metrics, ...rest } = o;
  const client = new KubeClient({ kubeconfigPath, log: silentLog, qps: 100, ...(metrics ? { metrics } : {}) });
  made.push(client);
  const backend = new KubeVirtBackend({ client, log: silentLog, toolNamespace: TOOL_NS, toolServiceAccount: TOOL_SA, ...rest, ...(metrics ? { metrics } : {}) });
  return { backend, client };
}

/** SubjectAccessReview for the tool's ServiceAccount, asked as admin. */
export async function toolMay(cp: ControlPlane, attrs: { verb: string; resource: string; namespace?: string; group?: string; subresource?: string; name?: string }): Promise<boolean> {
  const r = await cp.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: TOOL_USER,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${TOOL_NS}`, 'system:authenticated'],
      resourceAttributes: { ...attrs, group: attrs.group ?? '' },
    },
  });
  if (r.status !== 201) throw new Error(`SubjectAccessReview: ${r.status} ${r.body}`);
  return r.json<{ status: { allowed: boolean } }>().status.allowed;
}

export function twoVmSpec(labId = 'two-vm'): BackendLabSpec {
  const vm = (name: string): MachineSpec => ({
    name,
    kind: 'vm',
    image: 'lab-tiny',
    cpus: 1,
    memoryMiB: 128,
    channels: ['vnc', 'console'],
    credentials: { username: 'student', password: `pw-${name}` },
  });
  return { labId, labVersion: '1', machines: [vm('alpha'), vm('beta')], network: { internetEgress: true } };
}

let seq = 0;
export function newHandle(): LabHandle {
  const id = `t${Date.now().toString(36)}${(seq++).toString(36)}`.padEnd(16, 'x').slice(0, 16);
  return { instanceId: id, backend: 'kubevirt', name: `lab-${id}-g1`, generation: 1 };
}


/** A lab's API requests, sorted by what they are for (from KubeClient.onRequest records). */
export interface LabRequests {
  /** POSTs in the lab namespace: one per object the lab has there. */
  creates: number;
  /**
   * Creates refused with 403 in the moment before the API server's authorizer sees the lab's new
   * RoleBinding; the backend repeats them (createSettled). Counted apart, never in `failed`.
   */
  settling: number;
  /** PATCHes in the lab namespace: the VMs' start (runStrategy Always). */
  patches: number;
  /**
   * Clone-progress reads: lists of the namespace's DataVolumes and VirtualMachines, one of each
   * per look while a VM has no VMI yet (its disk is being cloned). How many depends on how long
   * the clones take, so tests bound them, never count them exactly.
   */
  cloneReads: number;
  /** Every other request in the namespace (status reads, retries' extra reads…). */
  other: RequestRecord[];
  /** Requests answered with an error status other than the RoleBinding's settling. */
  failed: RequestRecord[];
}

export function labRequests(records: RequestRecord[], ns: string): LabRequests {
  const out: LabRequests = { creates: 0, settling: 0, patches: 0, cloneReads: 0, other: [], failed: [] };
  const cloneLists = new Set([`/apis/cdi.kubevirt.io/v1beta1/namespaces/${ns}/datavolumes`, `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`]);
  for (const r of records) {
    if (!r.path.includes(`/namespaces/${ns}/`) && !r.path.endsWith(`/namespaces/${ns}`)) continue;
    if (r.verb === 'create' && r.status === 403) {
      out.settling++;
      continue;
    }
    if (r.status >= 400) out.failed.push(r);
    if (r.verb === 'create') out.creates++;
    else if (r.verb === 'patch') out.patches++;
    else if (r.verb === 'list' && cloneLists.has(r.path)) out.cloneReads++;
    else out.other.push(r);
  }
  return out;
}
