/**
 * The virt-launcher pod of a VMI, as KubeVirt's virt-controller renders it (services/template.go,
 * serialconsolelog.go), reduced to what is observable from the API: generateName
 * `virt-launcher-<vmi>-`, the VMI's labels plus `kubevirt.io=virt-launcher`,
 * `kubevirt.io/created-by=<vmi uid>` and `vm.kubevirt.io/name=<hostname>`, owned by the VMI, bound to
 * the stand-in's node; a `compute` container sized like the VMI plus an overhead, and — when the
 * serial console is logged — KubeVirt's `guest-console-log` sidecar (an init container with
 * restartPolicy Always, virt-tail, 5m/35M requested, 15m/60M limit). Created in the VMI's namespace
 * as any pod, so the lab's ResourceQuota and LimitRange admit or refuse it for real. Set Running
 * (status subresource, pod IP = the VMI address) once the guest runs; deleted with its VMI.
 */
import type { KubeClient } from './kube.js';
import type { Vmi } from './controller.js';
import { CONSOLE_LOG_CONTAINER, CREATED_BY_LABEL, LAUNCHER_LABEL } from './kubelet.js';
import { quantityToMiB } from './guests.js';

/** What the stand-in adds to the guest's memory for the compute container (KubeVirt computes ~200–300 Mi for a small VM). */
const COMPUTE_OVERHEAD_MIB = 256;
const LAUNCHER_IMAGE = 'quay.io/kubevirt/virt-launcher:v1.6.0';

interface PodMeta { name: string; namespace: string; uid: string; creationTimestamp?: string; deletionTimestamp?: string }

/**
 * KubeVirt's rule (virt-controller isSerialConsoleLogEnabled): no log without the auto-attached
 * serial console; else the VMI's `logSerialConsole` when set, else the cluster's default (on,
 * unless the KubeVirt CR sets `virtualMachineOptions.disableSerialConsoleLog`).
 */
export function serialConsoleLogged(vmi: Vmi, clusterDisablesLog: boolean): boolean {
  const d = vmi.spec.domain?.devices;
  if (d?.autoattachSerialConsole === false) return false;
  if (d?.logSerialConsole !== undefined) return d.logSerialConsole;
  return !clusterDisablesLog;
}

function withOverhead(q: string | undefined): string | undefined {
  return q === undefined ? undefined : `${quantityToMiB(q, 0) + COMPUTE_OVERHEAD_MIB}Mi`;
}

export function launcherPod(vmi: Vmi, nodeName: string, clusterDisablesLog: boolean): Record<string, unknown> {
  const { name, namespace, uid } = vmi.metadata;
  const r = vmi.spec.domain?.resources;
  const compact = (o: Record<string, string | undefined>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const requests = compact({ cpu: r?.requests?.cpu, memory: withOverhead(r?.requests?.memory) });
  const limits = compact({ cpu: r?.limits?.cpu, memory: withOverhead(r?.limits?.memory) });
  const securityContext = { runAsNonRoot: true, runAsUser: 107, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
  const logged = serialConsoleLogged(vmi, clusterDisablesLog);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `virt-launcher-${name}-`,
      namespace,
      labels: { ...(vmi.metadata.labels ?? {}), [LAUNCHER_LABEL]: 'virt-launcher', [CREATED_BY_LABEL]: uid, 'vm.kubevirt.io/name': vmi.spec.hostname ?? name },
      annotations: { 'kubevirt.io/domain': name },
      ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', name, uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName,
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      ...(vmi.spec.hostname ? { hostname: vmi.spec.hostname } : {}),
      ...(vmi.spec.subdomain ? { subdomain: vmi.spec.subdomain } : {}),
      containers: [{
        name: 'compute', image: LAUNCHER_IMAGE, command: ['/usr/bin/virt-launcher-monitor'], securityContext,
        resources: { ...(Object.keys(requests).length ? { requests } : {}), ...(Object.keys(limits).length ? { limits } : {}) },
      }],
      ...(logged ? {
        initContainers: [{
          name: CONSOLE_LOG_CONTAINER, image: LAUNCHER_IMAGE, restartPolicy: 'Always', securityContext,
          command: ['/usr/bin/virt-tail'], args: ['--logfile', `/var/run/kubevirt-private/${uid}/virt-serial0-log`],
          resources: { requests: { cpu: '5m', memory: '35M' }, limits: { cpu: '15m', memory: '60M' } },
        }],
      } : {}),
    },
  };
}

const podsPath = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
const selectorOf = (uid: string) => encodeURIComponent(`${CREATED_BY_LABEL}=${uid}`);

/** The VMI's launcher pod: the one there is, else a new one (throws when the API refuses it, e.g. the quota). */
export async function ensureLauncherPod(kube: KubeClient, vmi: Vmi, nodeName: string, clusterDisablesLog: boolean): Promise<PodMeta> {
  const { namespace: ns, uid } = vmi.metadata;
  const list = await kube.must<{ items: Array<{ metadata: PodMeta }> }>('GET', `${podsPath(ns)}?labelSelector=${selectorOf(uid)}`);
  const live = list.items.find((p) => !p.metadata.deletionTimestamp);
  if (live) return live.metadata;
  const created = await kube.must<{ metadata: PodMeta }>('POST', podsPath(ns), launcherPod(vmi, nodeName, clusterDisablesLog), [201]);
  return created.metadata;
}

/** What the kubelet reports once the pod's containers run. */
export async function markLauncherRunning(kube: KubeClient, pod: PodMeta, ip: string, logged: boolean): Promise<void> {
  const t = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const running = (name: string, image: string) => ({ name, image, imageID: '', ready: true, started: true, restartCount: 0, state: { running: { startedAt: t } } });
  const cond = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: t });
  await kube.mergePatch(`${podsPath(pod.namespace)}/${pod.name}/status`, {
    status: {
      phase: 'Running', hostIP: '127.0.0.1', podIP: ip, podIPs: [{ ip }], startTime: t, qosClass: 'Burstable',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(cond),
      containerStatuses: [running('compute', LAUNCHER_IMAGE)],
      ...(logged ? { initContainerStatuses: [running(CONSOLE_LOG_CONTAINER, LAUNCHER_IMAGE)] } : {}),
    },
  }, [200, 404]);
}

/** The VMI's launcher pods go with it (the kubelet has nothing left to wait for). */
export async function deleteLauncherPods(kube: KubeClient, ns: string, uid: string): Promise<void> {
  await kube.must('DELETE', `${podsPath(ns)}?labelSelector=${selectorOf(uid)}&gracePeriodSeconds=0`, undefined, [200, 404]);
}
