/**
 * The VirtualMachine controller's disk part, as KubeVirt's virt-controller does it: each
 * `dataVolumeTemplates` entry becomes a DataVolume owned by the VM (labels and annotations from
 * the template), created only after the clone is authorised — the VM's ServiceAccount (`default`
 * unless the template names one) must be allowed `create datavolumes/source` in the source
 * namespace (a SubjectAccessReview against the real API server). The VMI is created only once
 * every DataVolume has Succeeded; a DataVolume over quota or failed keeps it from starting and is
 * reported on the VM (condition Failure, printableStatus DataVolumeError).
 */
import { createHash } from 'node:crypto';
import type { KubeClient } from './kube.js';
import { CDI, dvPath, FILE_ANNOTATION, IMAGE_ANNOTATION, pvcPath, type DataVolume, type Pvc } from './cdi.js';
import type { Vm } from './controller.js';

interface DvTemplate { metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec: DataVolume['spec'] }

export type DisksState = { state: 'ready' } | { state: 'waiting' } | { state: 'error'; reason: string; message: string };

/** Create missing DataVolumes of the VM; 'ready' once all have Succeeded. */
export async function ensureVmDataVolumes(kube: KubeClient, vm: Vm): Promise<DisksState> {
  const templates = ((vm.spec as { dataVolumeTemplates?: DvTemplate[] }).dataVolumeTemplates ?? []);
  const { namespace: ns, name: vmName, uid } = vm.metadata;
  let ready = true;
  for (const t of templates) {
    const dv = await kube.get<DataVolume>(dvPath(ns, t.metadata.name));
    if (!dv) {
      ready = false;
      const denied = await cloneDenied(kube, ns, t.spec, vm);
      if (denied) return { state: 'error', reason: 'FailedCreate', message: `Error creating DataVolume ${t.metadata.name}: ${denied}` };
      const r = await kube.request('POST', dvPath(ns), {
        apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume',
        metadata: {
          name: t.metadata.name, namespace: ns, labels: t.metadata.labels ?? {}, annotations: t.metadata.annotations ?? {},
          ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: vmName, uid, controller: true, blockOwnerDeletion: true }],
        },
        spec: t.spec,
      });
      if (r.status !== 201 && r.status !== 409) return { state: 'error', reason: 'FailedCreate', message: `Error creating DataVolume ${t.metadata.name}: ${r.text.slice(0, 300)}` };
      continue;
    }
    if (dv.status?.phase === 'Failed') return { state: 'error', reason: 'DataVolumeError', message: `DataVolume ${dv.metadata.name} is in Failed phase` };
    const bound = dv.status?.conditions?.find((c) => c.type === 'Bound');
    if (bound && bound.status !== 'True' && bound.reason === 'ErrExceededQuota') {
      return { state: 'error', reason: 'DataVolumeError', message: `DataVolume ${dv.metadata.name} importer is not running due to an error: ${bound.message ?? ''}` };
    }
    if (dv.status?.phase !== 'Succeeded') ready = false;
  }
  return ready ? { state: 'ready' } : { state: 'waiting' };
}

/** KubeVirt's clone authorisation for the VM's ServiceAccount; a reason when denied. */
async function cloneDenied(kube: KubeClient, ns: string, spec: DataVolume['spec'], vm: Vm): Promise<string | undefined> {
  const ref = spec.sourceRef;
  if (ref?.kind !== 'DataSource') return undefined;
  const srcNs = ref.namespace ?? ns;
  const ds = await kube.get<{ spec: { source: { pvc?: { name: string; namespace?: string } } } }>(`${CDI}/namespaces/${srcNs}/datasources/${ref.name}`);
  const pvc = ds?.spec.source.pvc;
  if (!pvc) return undefined; // nothing to authorise yet; CDI waits for the DataSource
  const sa = (vm.spec.template.spec as { serviceAccountName?: string }).serviceAccountName || 'default';
  const sar = await kube.must<{ status: { allowed?: boolean; reason?: string } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: {
      user: `system:serviceaccount:${ns}:${sa}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
      resourceAttributes: { namespace: pvc.namespace ?? srcNs, verb: 'create', group: 'cdi.kubevirt.io', resource: 'datavolumes', subresource: 'source', name: pvc.name },
    },
  });
  if (sar.status.allowed) return undefined;
  return `not authorized to create DataVolume: User system:serviceaccount:${ns}:${sa} cannot create datavolumes/source in namespace ${pvc.namespace ?? srcNs}`;
}

/** The backing file and guest image of a VMI's DataVolume (its PVC, bound by the stand-in's CDI). */
export async function dataVolumeDisk(kube: KubeClient, ns: string, dvName: string): Promise<{ file: string; imageDir: string } | undefined> {
  const pvc = await kube.get<Pvc>(pvcPath(ns, dvName));
  const file = pvc?.metadata.annotations?.[FILE_ANNOTATION];
  const imageDir = pvc?.metadata.annotations?.[IMAGE_ANNOTATION];
  return file && imageDir ? { file, imageDir } : undefined;
}

/** KubeVirt's stable firmware UUID of a VM (SHA-1 name-based UUID of its name in KubeVirt's namespace UUID). */
export function firmwareUuid(vmName: string): string {
  const ns = Buffer.from('6a1a24a140614607 8bf4a3963d0c5895'.replace(/\s/g, ''), 'hex');
  const h = createHash('sha1').update(Buffer.concat([ns, Buffer.from(vmName)])).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
