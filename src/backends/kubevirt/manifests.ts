/**
 * Pure builders for every Kubernetes object a lab consists of. No I/O: the backend creates what
 * these return, the unit tests compare whole objects, and the drift repair rebuilds them to
 * compare with what the API server holds.
 *
 * One namespace per lab generation (`handle.name`). Everything carries
 * `app.kubernetes.io/managed-by=lab-orchestrator`, the instance id in a label and an annotation,
 * and the generation in a label — never a user name or e-mail.
 *
 * Network isolation (NetworkPolicy objects; enforcement needs a CNI that implements them):
 * - `default-deny`: no ingress, no egress for any pod of the lab;
 * - `allow-same-namespace-egress` and `-ingress`: machines of one lab reach each other (ports per
 *   machine when MachineSpec.ports is set: `allow-ingress-<machine>`);
 * - `allow-dns`: UDP/TCP 53 to kube-dns in kube-system;
 * - `allow-internet` (only with network.internetEgress): any address except private (10/8,
 *   172.16/12, 192.168/16), link-local and cloud metadata (169.254/16), CGNAT (100.64/10),
 *   loopback and the API server addresses; IPv6 likewise (ULA, link-local, loopback).
 * No ingress from other namespaces, not even the tool's: the tool reaches consoles and desktops
 * through the API server (KubeVirt's vnc/console subresources, pods/exec), never pod-to-pod.
 */
import type { BackendLabSpec, LabHandle, MachineSpec } from '../types.js';
import { rootDataVolumeTemplate, rootDiskName, storageQuota, type DiskOptions } from './disks.js';
import { AGENT_TCP_PORT } from '../guest/cloudInit.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGER = 'lab-orchestrator';
export const INSTANCE_LABEL = 'lab-orchestrator/instance';
export const GENERATION_LABEL = 'lab-orchestrator/generation';
export const MACHINE_LABEL = 'lab-orchestrator/machine';
/** The proof of ownership checked on a 409: an object without it is never adopted. */
export const INSTANCE_ANNOTATION = 'lab-orchestrator/instance-id';
/** The lab (template) and version this namespace was built from; used by the drift repair. */
export const LAB_ANNOTATION = 'lab-orchestrator/lab';
export const NETWORK_ANNOTATION = 'lab-orchestrator/internet-egress';
/** Set on the namespace while the lab is stopped (container pods are deleted then). */
export const STOPPED_ANNOTATION = 'lab-orchestrator/stopped';
/** The lab spec without credentials or user data: lets the drift repair rebuild policies and quota. */
export const SPEC_ANNOTATION = 'lab-orchestrator/spec';
/** Per-lab ClusterRole the tool binds in each lab namespace (k8s/rbac-lab.yaml). */
export const LAB_CLUSTER_ROLE = 'lab-orchestrator-lab';
/** Headless Service: machines resolve each other as `<machine>.lab`. */
export const SUBDOMAIN = 'lab';

/** Memory KubeVirt's virt-launcher pod needs on top of the guest (MiB); counted in the quota. */
export const VM_OVERHEAD_MIB = 384;
/**
 * KubeVirt's guest-console-log container in the virt-launcher pod of a VM with a logged serial
 * console (its defaults: 5m/35M requested, 15m/60M limit; in MiB rounded up), counted in the quota.
 */
export const CONSOLE_LOG_CONTAINER = { requestMilliCpu: 5, limitMilliCpu: 15, requestMiB: 34, limitMiB: 58 } as const;
/** Guests get this share of a core as request (overcommit); the limit is the full core count. */
export const CPU_REQUEST_MILLI_PER_CPU = 250;

export const PRIVATE_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '127.0.0.0/8'] as const;
export const PRIVATE_V6 = ['fc00::/7', 'fe80::/10', '::1/128'] as const;

export interface BuildContext {
  handle: LabHandle;
  spec: BackendLabSpec;
  /** The tool's own namespace (its ServiceAccount is the RoleBinding subject). */
  toolNamespace: string;
  toolServiceAccount: string;
  /** API server addresses (CIDRs) excluded from internet egress, e.g. ["203.0.113.10/32"]. */
  apiServerCidrs: string[];
  /** Where the golden disks live and how the per-VM disks are made (disks.ts). */
  disks: DiskOptions;
}

export type Labels = Record<string, string>;

/**
 * An object as it goes over the wire (JSON field names such as `from` and `default`, which the
 * client library's typed models rename). Only src/backends/kubevirt builds or reads these.
 */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}
export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Record<string, string>;
  uid?: string;
  resourceVersion?: string;
  deletionTimestamp?: string;
  creationTimestamp?: string;
}

/** Labels on every object of the lab. */
export function labLabels(h: LabHandle): Labels {
  return { [MANAGED_BY_LABEL]: MANAGER, [INSTANCE_LABEL]: h.instanceId, [GENERATION_LABEL]: String(h.generation) };
}

function meta(c: BuildContext, name: string, extraLabels: Labels = {}) {
  return {
    name,
    namespace: c.handle.name,
    labels: { ...labLabels(c.handle), ...extraLabels },
    annotations: { [INSTANCE_ANNOTATION]: c.handle.instanceId },
  };
}

export function namespace(c: BuildContext): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: c.handle.name,
      labels: {
        ...labLabels(c.handle),
        'pod-security.kubernetes.io/enforce': 'baseline',
        'pod-security.kubernetes.io/enforce-version': 'latest',
        'pod-security.kubernetes.io/warn': 'baseline',
      },
      annotations: {
        [INSTANCE_ANNOTATION]: c.handle.instanceId,
        [LAB_ANNOTATION]: `${c.spec.labId}@${c.spec.labVersion}`,
        [NETWORK_ANNOTATION]: String(c.spec.network.internetEgress),
        [SPEC_ANNOTATION]: JSON.stringify(publicSpec(c.spec)),
      },
    },
  };
}

/** The spec as stored on the namespace: no credentials, no user data (they live in Secrets). */
export function publicSpec(spec: BackendLabSpec): BackendLabSpec {
  return { ...spec, machines: spec.machines.map(({ credentials: _c, userData: _u, ...m }) => m) };
}

/** Grants the tool's ServiceAccount the per-lab role in this namespace only. */
export function roleBinding(c: BuildContext): K8sObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(c, 'lab-orchestrator'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: LAB_CLUSTER_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: c.toolServiceAccount, namespace: c.toolNamespace }],
  };
}

function policy(c: BuildContext, name: string, spec: Record<string, unknown>): K8sObject {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta(c, name), spec };
}

const samePods = { podSelector: {} };

export function networkPolicies(c: BuildContext): K8sObject[] {
  const restricted = c.spec.machines.filter((m) => (m.ports ?? []).length > 0);
  const out: K8sObject[] = [
    policy(c, 'default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy(c, 'allow-same-namespace-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [samePods] }] }),
  ];
  if (restricted.length < c.spec.machines.length) {
    const podSelector =
      restricted.length === 0 ? {} : { matchExpressions: [{ key: MACHINE_LABEL, operator: 'NotIn', values: restricted.map((m) => m.name) }] };
    out.push(policy(c, 'allow-same-namespace-ingress', { podSelector, policyTypes: ['Ingress'], ingress: [{ from: [samePods] }] }));
  }
  for (const m of restricted) {
    out.push(
      policy(c, `allow-ingress-${m.name}`, {
        podSelector: { matchLabels: { [MACHINE_LABEL]: m.name } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [samePods], ports: (m.ports ?? []).map((port) => ({ protocol: 'TCP', port })) }],
      }),
    );
  }
  out.push(
    policy(c, 'allow-dns', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
              podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
            },
          ],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ],
    }),
  );
  if (c.spec.network.internetEgress) {
    const v4 = c.apiServerCidrs.filter((x) => !x.includes(':') && !coveredV4(x));
    const v6 = c.apiServerCidrs.filter((x) => x.includes(':') && !PRIVATE_V6.includes(x as (typeof PRIVATE_V6)[number]));
    out.push(
      policy(c, 'allow-internet', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              { ipBlock: { cidr: '0.0.0.0/0', except: [...PRIVATE_V4, ...v4] } },
              { ipBlock: { cidr: '::/0', except: [...PRIVATE_V6, ...v6] } },
            ],
          },
        ],
      }),
    );
  }
  return out;
}

/** True when an IPv4 CIDR lies inside one of the always-excluded private ranges. */
function coveredV4(cidr: string): boolean {
  const [ip, bitsRaw] = cidr.split('/');
  const bits = Number(bitsRaw ?? '32');
  const n = v4ToInt(ip ?? '');
  return PRIVATE_V4.some((p) => {
    const [pip, pbitsRaw] = p.split('/');
    const pbits = Number(pbitsRaw);
    if (bits < pbits) return false;
    const mask = pbits === 0 ? 0 : (~0 << (32 - pbits)) >>> 0;
    return ((n & mask) >>> 0) === ((v4ToInt(pip ?? '') & mask) >>> 0);
  });
}
function v4ToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

/** Quantities in the API server's canonical form, so objects read back compare equal. */
function mem(mib: number): string {
  if (mib === 0) return '0';
  return mib % 1024 === 0 ? `${mib / 1024}Gi` : `${mib}Mi`;
}
function milli(m: number): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}
function podMemoryMiB(m: MachineSpec): number {
  return m.memoryMiB + (m.kind === 'vm' ? VM_OVERHEAD_MIB : 0);
}
/** A VM whose serial console KubeVirt logs (virtualMachine: logSerialConsole). */
function logsConsole(m: MachineSpec): boolean {
  return m.kind === 'vm' && m.channels.includes('console');
}
const consoleLog = (m: MachineSpec, k: keyof typeof CONSOLE_LOG_CONTAINER): number => (logsConsole(m) ? CONSOLE_LOG_CONTAINER[k] : 0);

/**
 * Hard limits: the sum of the machines (plus VM overhead); pods ×2 so a reset can overlap a
 * terminating pod; one PVC per VM and their disk sizes (disks.ts: storageQuota). Running VMs are
 * bounded through their virt-launcher pods; no object-count quota on kubevirt.io kinds, which
 * would refuse VM creates until the quota controller has discovered the CRD ("status unknown for
 * quota").
 */
export function resourceQuota(c: BuildContext): K8sObject {
  const ms = c.spec.machines;
  const sum = (f: (m: MachineSpec) => number) => ms.reduce((a, m) => a + f(m), 0);
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: meta(c, 'lab'),
    spec: {
      hard: {
        'requests.cpu': milli(sum((m) => m.cpus * CPU_REQUEST_MILLI_PER_CPU + consoleLog(m, 'requestMilliCpu'))),
        'limits.cpu': milli(sum((m) => m.cpus * 1000 + consoleLog(m, 'limitMilliCpu'))),
        'requests.memory': mem(sum((m) => podMemoryMiB(m) + consoleLog(m, 'requestMiB'))),
        'limits.memory': mem(sum((m) => podMemoryMiB(m) + consoleLog(m, 'limitMiB'))),
        pods: String(ms.length * 2),
        ...storageQuota(ms.filter((m) => m.kind === 'vm'), c.disks),
        services: '1',
        'services.loadbalancers': '0',
        'services.nodeports': '0',
      },
    },
  };
}

/** Defaults for anything created without resources, and a per-container ceiling (the largest machine). */
export function limitRange(c: BuildContext): K8sObject {
  const maxCpu = Math.max(1, ...c.spec.machines.map((m) => m.cpus));
  const maxMem = Math.max(256, ...c.spec.machines.map(podMemoryMiB));
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: meta(c, 'lab'),
    spec: {
      limits: [
        {
          type: 'Container',
          default: { cpu: '500m', memory: '256Mi' },
          defaultRequest: { cpu: '100m', memory: '128Mi' },
          max: { cpu: String(maxCpu), memory: mem(maxMem) },
        },
      ],
    },
  };
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** Default cloud-init when the lab gives none: the machine's credentials, password login on. */
export function defaultUserData(m: MachineSpec): string {
  const lines = ['#cloud-config', `hostname: ${m.name}`];
  if (m.credentials) {
    lines.push(
      `user: ${JSON.stringify(m.credentials.username)}`,
      `password: ${JSON.stringify(m.credentials.password)}`,
      'chpasswd: { expire: false }',
      'ssh_pwauth: true',
    );
  }
  return `${lines.join('\n')}\n`;
}

export function secretName(m: MachineSpec): string {
  return `machine-${m.name}`;
}

/** Credentials and cloud-init user data of one machine (KubeVirt reads the `userdata` key). */
export function machineSecret(c: BuildContext, m: MachineSpec): K8sObject {
  const data: Record<string, string> = { userdata: b64(m.userData ?? defaultUserData(m)) };
  if (m.credentials) {
    data.username = b64(m.credentials.username);
    data.password = b64(m.credentials.password);
  }
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta(c, secretName(m), { [MACHINE_LABEL]: m.name }), type: 'Opaque', data };
}

export function headlessService(c: BuildContext): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(c, SUBDOMAIN),
    spec: { clusterIP: 'None', selector: { [INSTANCE_LABEL]: c.handle.instanceId }, publishNotReadyAddresses: true },
  };
}

export type RunStrategy = 'Always' | 'Halted' | 'Manual' | 'RerunOnFailure';

/** kubevirt.io/v1 VirtualMachine, only the fields we set. */
export interface VirtualMachine extends K8sObject {
  apiVersion: 'kubevirt.io/v1';
  kind: 'VirtualMachine';
  metadata: { name: string; namespace: string; labels: Labels; annotations: Record<string, string> };
  spec: {
    runStrategy: RunStrategy;
    dataVolumeTemplates?: Array<Record<string, unknown>>;
    template: { metadata: { labels: Labels }; spec: Record<string, unknown> };
  };
}

/**
 * A VM machine; created (running) only once quota and policies exist. Its root disk is its
 * own DataVolume cloned from the image's golden disk (disks.ts), kept while the VM is halted.
 */
export function virtualMachine(c: BuildContext, m: MachineSpec, runStrategy: RunStrategy = 'Halted'): VirtualMachine {
  const labels = { ...labLabels(c.handle), [MACHINE_LABEL]: m.name };
  const resources = {
    requests: { cpu: milli(m.cpus * CPU_REQUEST_MILLI_PER_CPU), memory: mem(m.memoryMiB) },
    limits: { cpu: String(m.cpus), memory: mem(m.memoryMiB) },
  };
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: meta(c, m.name, { [MACHINE_LABEL]: m.name }),
    spec: {
      runStrategy,
      dataVolumeTemplates: [rootDataVolumeTemplate(m, labels, c.disks)],
      template: {
        metadata: { labels },
        spec: {
          hostname: m.name,
          subdomain: SUBDOMAIN,
          terminationGracePeriodSeconds: 5,
          // Ready once cloud-init has started the check agent, not merely when the domain runs
          readinessProbe: { tcpSocket: { port: AGENT_TCP_PORT }, periodSeconds: 2 },
          domain: {
            cpu: { cores: m.cpus },
            resources,
            devices: {
              autoattachGraphicsDevice: m.channels.includes('vnc'),
              autoattachSerialConsole: m.channels.includes('console'),
              // KubeVirt ≥ 1.1 keeps what the console prints (a guest-console-log container): the
              // history a new console starts with (consoleLog.ts); overrides a cluster-wide disableSerialConsoleLog
              ...(logsConsole(m) ? { logSerialConsole: true } : {}),
              disks: [
                { name: 'root', disk: { bus: 'virtio' } },
                { name: 'cloudinit', disk: { bus: 'virtio' } },
              ],
              interfaces: [{ name: 'default', masquerade: {} }],
            },
          },
          networks: [{ name: 'default', pod: {} }],
          volumes: [
            { name: 'root', dataVolume: { name: rootDiskName(m) } },
            { name: 'cloudinit', cloudInitNoCloud: { secretRef: { name: secretName(m) } } },
          ],
        },
      },
    },
  };
}

/** A container machine: one long-running shell container, no service-account token, terminal via exec. */
export function containerPod(c: BuildContext, m: MachineSpec): K8sObject {
  const memory = mem(m.memoryMiB);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta(c, m.name, { [MACHINE_LABEL]: m.name }),
    spec: {
      hostname: m.name,
      subdomain: SUBDOMAIN,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 5,
      restartPolicy: 'Always',
      containers: [
        {
          name: 'main',
          image: m.image,
          stdin: true,
          tty: true,
          resources: {
            requests: { cpu: milli(m.cpus * CPU_REQUEST_MILLI_PER_CPU), memory },
            limits: { cpu: String(m.cpus), memory },
          },
          securityContext: { allowPrivilegeEscalation: false },
        },
      ],
    },
  };
}

/** Everything that must exist before any machine runs, in creation order groups. */
export function guardObjects(c: BuildContext): K8sObject[] {
  return [...networkPolicies(c), resourceQuota(c), limitRange(c)];
}

/**
 * The whole lab, grouped by when it may be created:
 * 1. the namespace, 2. the RoleBinding that lets the tool act in it, 3. (in parallel) policies,
 * quota, limit range, secrets and service, 4. (once the policies and quota exist) the VMs, created
 * running, and the container pods.
 */
export interface LabPlan {
  namespace: K8sObject;
  roleBinding: K8sObject;
  guards: K8sObject[];
  setup: K8sObject[];
  vms: VirtualMachine[];
  pods: K8sObject[];
}

export function planLab(c: BuildContext): LabPlan {
  const vmMachines = c.spec.machines.filter((m) => m.kind === 'vm');
  return {
    namespace: namespace(c),
    roleBinding: roleBinding(c),
    guards: guardObjects(c),
    setup: [...vmMachines.map((m) => machineSecret(c, m)), headlessService(c)],
    vms: vmMachines.map((m) => virtualMachine(c, m, 'Always')),
    pods: c.spec.machines.filter((m) => m.kind === 'container').map((m) => containerPod(c, m)),
  };
}
