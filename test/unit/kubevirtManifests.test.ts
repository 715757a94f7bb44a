import assert from 'node:assert/strict';
import {
  containerPod,
  defaultUserData,
  limitRange,
  machineSecret,
  namespace,
  networkPolicies,
  planLab,
  resourceQuota,
  roleBinding,
  virtualMachine,
  headlessService,
  type BuildContext,
} from '../../src/backends/kubevirt/manifests.js';
import type { MachineSpec } from '../../src/backends/types.js';
import { dataVolumeState, goldenName } from '../../src/backends/kubevirt/disks.js';

const web: MachineSpec = {
  name: 'web',
  kind: 'vm',
  image: 'quay.io/containerdisks/debian:12',
  cpus: 2,
  memoryMiB: 1024,
  channels: ['vnc', 'console'],
  credentials: { username: 'student', password: 'p4ss"word' },
};
const db: MachineSpec = { name: 'db', kind: 'vm', image: 'https://images.example.edu/db.qcow2', cpus: 1, memoryMiB: 512, diskGiB: 4, channels: ['console'], ports: [5432] };
const shell: MachineSpec = { name: 'shell', kind: 'container', image: 'docker.io/library/alpine:3.20', cpus: 1, memoryMiB: 256, channels: ['console'] };

function ctx(machines: MachineSpec[], internetEgress = false, apiServerCidrs: string[] = []): BuildContext {
  return {
    handle: { instanceId: 'abcdefghijklmnop', backend: 'kubevirt', name: 'lab-abcdefghijklmnop-g3', generation: 3 },
    spec: { labId: 'net-101', labVersion: '2', machines, network: { internetEgress } },
    toolNamespace: 'lab-orchestrator',
    toolServiceAccount: 'lab-orchestrator',
    apiServerCidrs,
    disks: { imageNamespace: 'lab-images' },
  };
}

const labels = { 'app.kubernetes.io/managed-by': 'lab-orchestrator', 'lab-orchestrator/instance': 'abcdefghijklmnop', 'lab-orchestrator/generation': '3' };
const annotations = { 'lab-orchestrator/instance-id': 'abcdefghijklmnop' };
const ns = 'lab-abcdefghijklmnop-g3';
const m = (name: string, extra: Record<string, string> = {}) => ({ name, namespace: ns, labels: { ...labels, ...extra }, annotations });
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('KubeVirt manifests', () => {
  it('builds the lab namespace with management labels, the instance annotation and Pod Security baseline', () => {
    assert.deepStrictEqual(namespace(ctx([web])), {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: ns,
        labels: {
          ...labels,
          'pod-security.kubernetes.io/enforce': 'baseline',
          'pod-security.kubernetes.io/enforce-version': 'latest',
          'pod-security.kubernetes.io/warn': 'baseline',
        },
        annotations: {
          ...annotations,
          'lab-orchestrator/lab': 'net-101@2',
          'lab-orchestrator/internet-egress': 'false',
          'lab-orchestrator/spec': JSON.stringify({
            labId: 'net-101',
            labVersion: '2',
            machines: [{ name: 'web', kind: 'vm', image: 'quay.io/containerdisks/debian:12', cpus: 2, memoryMiB: 1024, channels: ['vnc', 'console'] }],
            network: { internetEgress: false },
          }),
        },
      },
    });
  });

  it('binds only the per-lab ClusterRole to the tool service account in the lab namespace', () => {
    assert.deepStrictEqual(roleBinding(ctx([web])), {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: m('lab-orchestrator'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'lab-orchestrator-lab' },
      subjects: [{ kind: 'ServiceAccount', name: 'lab-orchestrator', namespace: 'lab-orchestrator' }],
    });
  });

  it('denies all traffic by default and allows the same namespace and DNS, without internet egress', () => {
    assert.deepStrictEqual(networkPolicies(ctx([web, shell])), [
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: m('default-deny'), spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: m('allow-same-namespace-egress'),
        spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: {} }] }] },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: m('allow-same-namespace-ingress'),
        spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {} }] }] },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: m('allow-dns'),
        spec: {
          podSelector: {},
          policyTypes: ['Egress'],
          egress: [
            {
              to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
              ports: [
                { protocol: 'UDP', port: 53 },
                { protocol: 'TCP', port: 53 },
              ],
            },
          ],
        },
      },
    ]);
  });

  it('restricts ingress to the listed ports of a machine that declares ports', () => {
    const pols = networkPolicies(ctx([web, db]));
    assert.deepStrictEqual(
      pols.map((p) => p.metadata.name),
      ['default-deny', 'allow-same-namespace-egress', 'allow-same-namespace-ingress', 'allow-ingress-db', 'allow-dns'],
    );
    assert.deepStrictEqual(pols[2]?.spec, {
      podSelector: { matchExpressions: [{ key: 'lab-orchestrator/machine', operator: 'NotIn', values: ['db'] }] },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: {} }] }],
    });
    assert.deepStrictEqual(pols[3], {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: m('allow-ingress-db'),
      spec: {
        podSelector: { matchLabels: { 'lab-orchestrator/machine': 'db' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: 5432 }] }],
      },
    });
  });

  it('allows internet egress, when the lab asks, except private, link-local, CGNAT, loopback and API server addresses', () => {
    const pols = networkPolicies(ctx([web], true, ['203.0.113.10/32', '10.96.0.1/32', '2001:db8::1/128']));
    assert.deepStrictEqual(pols.at(-1), {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: m('allow-internet'),
      spec: {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              { ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '127.0.0.0/8', '203.0.113.10/32'] } },
              { ipBlock: { cidr: '::/0', except: ['fc00::/7', 'fe80::/10', '::1/128', '2001:db8::1/128'] } },
            ],
          },
        ],
      },
    });
  });

  it('sizes the quota from the machines, with VM overhead and one disk per VM plus CDI overhead, and allows no load balancers or node ports', () => {
    assert.deepStrictEqual(resourceQuota(ctx([web, db, shell])), {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: m('lab'),
      spec: {
        hard: {
          // web and db log their serial console: KubeVirt's guest-console-log container each (5m/34Mi, 15m/58Mi)
          'requests.cpu': `${1000 + 2 * 5}m`,
          'limits.cpu': `${4000 + 2 * 15}m`,
          'requests.memory': `${1024 + 384 + 512 + 384 + 256 + 2 * 34}Mi`,
          'limits.memory': `${1024 + 384 + 512 + 384 + 256 + 2 * 58}Mi`,
          pods: '6',
          persistentvolumeclaims: '2',
          // web 10 GiB (default) + db 4 GiB, plus 10 % for CDI's filesystem overhead
          'requests.storage': `${Math.ceil(14 * 1024 * 1.1)}Mi`,
          services: '1',
          'services.loadbalancers': '0',
          'services.nodeports': '0',
        },
      },
    });
  });

  it('logs the serial console only of a VM that has one, and counts its log container only then', () => {
    const desktop: MachineSpec = { ...web, name: 'desk', channels: ['vnc'] };
    const devices = (virtualMachine(ctx([desktop]), desktop).spec.template.spec as { domain: { devices: Record<string, unknown> } }).domain.devices;
    assert.equal(devices.autoattachSerialConsole, false);
    assert.equal('logSerialConsole' in devices, false);
    const hard = (resourceQuota(ctx([desktop])).spec as { hard: Record<string, string> }).hard;
    assert.deepEqual([hard['requests.cpu'], hard['limits.cpu'], hard['requests.memory'], hard['limits.memory']], ['500m', '2', `${1024 + 384}Mi`, `${1024 + 384}Mi`]);
  });

  it('caps each container at the largest machine in the limit range', () => {
    assert.deepStrictEqual(limitRange(ctx([web, shell])), {
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: m('lab'),
      spec: {
        limits: [{ type: 'Container', default: { cpu: '500m', memory: '256Mi' }, defaultRequest: { cpu: '100m', memory: '128Mi' }, max: { cpu: '2', memory: '1408Mi' } }],
      },
    });
  });

  it('puts the credentials and cloud-init user data of a VM in its secret', () => {
    const userdata = '#cloud-config\nhostname: web\nuser: "student"\npassword: "p4ss\\"word"\nchpasswd: { expire: false }\nssh_pwauth: true\n';
    assert.equal(defaultUserData(web), userdata);
    assert.deepStrictEqual(machineSecret(ctx([web]), web), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: m('machine-web', { 'lab-orchestrator/machine': 'web' }),
      type: 'Opaque',
      data: { userdata: b64(userdata), username: b64('student'), password: b64('p4ss"word') },
    });
    assert.deepStrictEqual(machineSecret(ctx([db]), { ...db, userData: '#cloud-config\n{}\n' }).data, { userdata: b64('#cloud-config\n{}\n') });
  });

  it('caps the storage quota at the operator maximum per lab', () => {
    const c = { ...ctx([web, db]), disks: { imageNamespace: 'lab-images', maxLabStorageGiB: 8 } };
    const hard = (resourceQuota(c).spec as { hard: Record<string, string> }).hard;
    assert.equal(hard['requests.storage'], '8Gi');
    assert.equal(hard.persistentvolumeclaims, '2');
  });

  it('builds a halted VM booting its own disk cloned from the golden image, with cloud-init from its secret and no host or service-account volumes', () => {
    const vmLabels = { ...labels, 'lab-orchestrator/machine': 'web' };
    assert.deepStrictEqual(virtualMachine(ctx([web]), web), {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: m('web', { 'lab-orchestrator/machine': 'web' }),
      spec: {
        runStrategy: 'Halted',
        dataVolumeTemplates: [
          {
            metadata: { name: 'web-root', labels: vmLabels },
            spec: {
              sourceRef: { kind: 'DataSource', name: 'debian-12', namespace: 'lab-images' },
              storage: { resources: { requests: { storage: '10Gi' } } },
            },
          },
        ],
        template: {
          metadata: { labels: vmLabels },
          spec: {
            hostname: 'web',
            subdomain: 'lab',
            terminationGracePeriodSeconds: 5,
            readinessProbe: { tcpSocket: { port: 1022 }, periodSeconds: 2 },
            domain: {
              cpu: { cores: 2 },
              resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '1Gi' } },
              devices: {
                autoattachGraphicsDevice: true,
                autoattachSerialConsole: true,
                logSerialConsole: true,
                disks: [
                  { name: 'root', disk: { bus: 'virtio' } },
                  { name: 'cloudinit', disk: { bus: 'virtio' } },
                ],
                interfaces: [{ name: 'default', masquerade: {} }],
              },
            },
            networks: [{ name: 'default', pod: {} }],
            volumes: [
              { name: 'root', dataVolume: { name: 'web-root' } },
              { name: 'cloudinit', cloudInitNoCloud: { secretRef: { name: 'machine-web' } } },
            ],
          },
        },
      },
    });
  });

  it('clones an http image from its golden DataSource too, sized from the machine disk, in the configured storage class', () => {
    const vm = virtualMachine({ ...ctx([db]), disks: { imageNamespace: 'golden', storageClass: 'ceph-rbd' } }, db, 'Always');
    assert.equal(vm.spec.runStrategy, 'Always');
    assert.deepStrictEqual(vm.spec.dataVolumeTemplates, [
      {
        metadata: { name: 'db-root', labels: { ...labels, 'lab-orchestrator/machine': 'db' } },
        spec: { sourceRef: { kind: 'DataSource', name: goldenName(db.image), namespace: 'golden' }, storage: { storageClassName: 'ceph-rbd', resources: { requests: { storage: '4Gi' } } } },
      },
    ]);
    assert.match(goldenName(db.image), /^db-[0-9a-f]{8}$/);
    assert.deepStrictEqual((vm.spec.template.spec.volumes as unknown[])[0], { name: 'root', dataVolume: { name: 'db-root' } });
    assert.equal((vm.spec.template.spec.domain as { devices: { autoattachGraphicsDevice: boolean } }).devices.autoattachGraphicsDevice, false);
  });

  it('runs a container machine without a service-account token, as an interactive shell', () => {
    assert.deepStrictEqual(containerPod(ctx([shell]), shell), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: m('shell', { 'lab-orchestrator/machine': 'shell' }),
      spec: {
        hostname: 'shell',
        subdomain: 'lab',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: 5,
        restartPolicy: 'Always',
        containers: [
          {
            name: 'main',
            image: 'docker.io/library/alpine:3.20',
            stdin: true,
            tty: true,
            resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '256Mi' } },
            securityContext: { allowPrivilegeEscalation: false },
          },
        ],
      },
    });
  });

  it('resolves machines by name through a headless service', () => {
    assert.deepStrictEqual(headlessService(ctx([web])), {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: m('lab'),
      spec: { clusterIP: 'None', selector: { 'lab-orchestrator/instance': 'abcdefghijklmnop' }, publishNotReadyAddresses: true },
    });
  });

  it('plans a lab as namespace, binding, guards, setup, VMs created running and pods', () => {
    const plan = planLab(ctx([web, shell]));
    assert.equal(plan.namespace.metadata.name, ns);
    assert.deepStrictEqual(plan.guards.map((o) => `${o.kind}/${o.metadata.name}`), [
      'NetworkPolicy/default-deny',
      'NetworkPolicy/allow-same-namespace-egress',
      'NetworkPolicy/allow-same-namespace-ingress',
      'NetworkPolicy/allow-dns',
      'ResourceQuota/lab',
      'LimitRange/lab',
    ]);
    assert.deepStrictEqual(plan.setup.map((o) => `${o.kind}/${o.metadata.name}`), ['Secret/machine-web', 'Service/lab']);
    assert.deepStrictEqual(plan.vms.map((v) => [v.metadata.name, v.spec.runStrategy]), [['web', 'Always']]);
    assert.deepStrictEqual(plan.pods.map((p) => p.metadata.name), ['shell']);
  });

  it('names one golden disk per image version, DNS-safe and at most 63 characters', () => {
    assert.equal(goldenName('quay.io/containerdisks/debian:12'), 'debian-12');
    assert.equal(goldenName('registry.example.edu/labs/debian-12:3f9c2a1b'), 'debian-12-3f9c2a1b');
    assert.equal(goldenName('lab-tiny'), 'lab-tiny');
    assert.equal(goldenName('r.example/x/Img_Name@sha256:0123456789abcdef0123'), 'img-name-0123456789ab');
    const long = goldenName(`r.example/${'x'.repeat(80)}:v1`);
    assert.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), long);
    assert.notEqual(goldenName(`r.example/${'x'.repeat(80)}:v1`), goldenName(`r.example/${'x'.repeat(80)}:v2`));
  });

  it('reads a clone over quota, a failed clone and a finished one as KubeVirt does', () => {
    const dv = (status: object) => ({ metadata: { name: 'web-root' }, status });
    const quota = dataVolumeState(dv({ phase: 'Pending', conditions: [{ type: 'Bound', status: 'Unknown', reason: 'ErrExceededQuota', message: 'exceeded quota: lab, requested: requests.storage=11Gi' }] }), 'web');
    assert.equal(quota.state, 'failed');
    assert.match((quota as { reason: string }).reason, /storage quota.*exceeded quota: lab/);
    const failed = dataVolumeState(dv({ phase: 'Failed', conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'target resources requests storage size is smaller than the source' }] }), 'web');
    assert.match((failed as { reason: string }).reason, /could not be cloned \(target resources/);
    assert.deepEqual(dataVolumeState(dv({ phase: 'CloneInProgress' }), 'web'), { state: 'pending' });
    assert.deepEqual(dataVolumeState(dv({ phase: 'Succeeded' }), 'web'), { state: 'ready' });
  });
});
