/**
 * Persistent root disks on KubeVirt: every VM of a lab boots from its own DataVolume, cloned by
 * CDI from a golden disk of its image.
 *
 * Golden disks: one CDI `DataSource` per image version in the image namespace
 * (KUBEVIRT_IMAGE_NAMESPACE, default `lab-images`), named by goldenName(image) and pointing at a
 * PVC an administrator imported once (k8s/images/). Each VM's `dataVolumeTemplates` entry clones
 * it (`sourceRef` → DataSource): CDI picks a CSI clone or a snapshot clone where the storage class
 * allows (copy-on-write on most CSI drivers), a host-assisted copy otherwise — never a fresh
 * import per lab.
 *
 * Life cycle: the DataVolume belongs to its VirtualMachine (KubeVirt sets the owner reference), so
 * it survives stop (runStrategy Halted) and start, and goes with the VM when the lab namespace is
 * deleted (destroy, expiry). A reset deletes and recreates the VM: a fresh clone.
 *
 * Storage bounds: the lab namespace's ResourceQuota allows one PVC per VM and the sum of the VMs'
 * disk sizes plus CDI's filesystem overhead (CDI inflates a Filesystem-mode PVC by its overhead,
 * 5.5 % by default), capped by the operator's per-lab maximum.
 */
import { createHash } from 'node:crypto';
import { DEFAULT_DISK_GIB, type MachineSpec } from '../types.js';

export const CDI_API = 'cdi.kubevirt.io/v1beta1';
/** Head room over the requested sizes for CDI's filesystem overhead (its default is 0.055). */
export const FS_OVERHEAD = 0.1;

export interface DiskOptions {
  /** Namespace of the golden DataSources. */
  imageNamespace: string;
  /** Storage class of the per-VM disks; unset = the cluster's default. */
  storageClass?: string;
  /** Operator's ceiling for one lab's disks (GiB); unset = no ceiling. */
  maxLabStorageGiB?: number;
}

export function diskGiB(m: MachineSpec): number {
  return m.diskGiB ?? DEFAULT_DISK_GIB;
}

export function rootDiskName(m: MachineSpec): string {
  return `${m.name}-root`;
}

const dns = (s: string): string =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');

/**
 * The golden DataSource of an image version: `<name>-<tag>` from a container image reference
 * (`quay.io/containerdisks/debian:12` → `debian-12`, a digest gives its first 12 hex digits), the
 * file name plus a hash for a URL, the name itself otherwise (`lab-tiny`). DNS-1123, ≤ 63 chars.
 */
export function goldenName(image: string): string {
  const url = /^https?:\/\//.test(image);
  const last = (url ? new URL(image).pathname : image).split('/').filter(Boolean).pop() ?? 'image';
  let base: string;
  if (url) base = `${last.replace(/\.(qcow2|img|raw|iso)(\.(gz|xz))?$/i, '')}-${createHash('sha256').update(image).digest('hex').slice(0, 8)}`;
  else {
    const [name, digest] = last.split('@') as [string, string | undefined];
    const [repo, tag] = name.split(':') as [string, string | undefined];
    const version = digest ? digest.replace(/^sha256:/, '').slice(0, 12) : tag;
    base = version ? `${repo}-${version}` : repo;
  }
  const out = dns(base) || 'image';
  if (out.length <= 63) return out;
  return `${out.slice(0, 54).replace(/-$/, '')}-${createHash('sha256').update(image).digest('hex').slice(0, 8)}`;
}

/** Quantity in the API server's canonical form (Gi when whole, else Mi). */
export function mibQuantity(mib: number): string {
  if (mib === 0) return '0';
  return mib % 1024 === 0 ? `${mib / 1024}Gi` : `${mib}Mi`;
}

/** The per-VM DataVolume template: a clone of the image's golden DataSource. */
export function rootDataVolumeTemplate(m: MachineSpec, labels: Record<string, string>, o: DiskOptions): Record<string, unknown> {
  return {
    metadata: { name: rootDiskName(m), labels },
    spec: {
      sourceRef: { kind: 'DataSource', name: goldenName(m.image), namespace: o.imageNamespace },
      storage: {
        ...(o.storageClass ? { storageClassName: o.storageClass } : {}),
        resources: { requests: { storage: mibQuantity(1024 * diskGiB(m)) } },
      },
    },
  };
}

/** The lab namespace's storage quota: one PVC per VM and their sizes with CDI's overhead, capped by the operator's maximum. */
export function storageQuota(vms: MachineSpec[], o: DiskOptions): { persistentvolumeclaims: string; 'requests.storage': string } {
  const wantGiB = vms.reduce((a, m) => a + diskGiB(m), 0);
  const withOverheadMiB = Math.ceil(wantGiB * 1024 * (1 + FS_OVERHEAD));
  const capMiB = o.maxLabStorageGiB !== undefined ? o.maxLabStorageGiB * 1024 : Infinity;
  return { persistentvolumeclaims: String(vms.length), 'requests.storage': mibQuantity(Math.min(withOverheadMiB, capMiB)) };
}

/** A DataVolume as CDI reports it (only what the backend reads). */
export interface DataVolumeStatus {
  metadata: { name: string; namespace?: string };
  status?: { phase?: string; progress?: string; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}

/**
 * What a DataVolume means for the lab: 'ready' (Succeeded), 'pending' (still cloning), or a
 * failure with a reason for the student and the operator. Read as KubeVirt's VM controller reads
 * it: exceeded quota is a Bound condition (not True) with reason ErrExceededQuota; a failed clone
 * is phase Failed or a Running condition False with reason Error.
 */
export function dataVolumeState(dv: DataVolumeStatus, machine: string): { state: 'ready' | 'pending' } | { state: 'failed'; reason: string } {
  const st = dv.status ?? {};
  const cond = (t: string) => st.conditions?.find((c) => c.type === t);
  const bound = cond('Bound');
  if (bound && bound.status !== 'True' && bound.reason === 'ErrExceededQuota') {
    return { state: 'failed', reason: `the disk of machine ${machine} does not fit the lab's storage quota (${bound.message ?? 'exceeded quota'})` };
  }
  const running = cond('Running');
  if (st.phase === 'Failed' || (running?.status === 'False' && running.reason === 'Error')) {
    const why = running?.message || cond('Ready')?.message || bound?.message || 'the clone failed';
    return { state: 'failed', reason: `the disk of machine ${machine} could not be cloned (${why})` };
  }
  return st.phase === 'Succeeded' ? { state: 'ready' } : { state: 'pending' };
}
