/**
 * Reading the lab's disks from the API server: the golden disks a lab needs (checked before
 * anything is created, so a missing image leaves nothing behind), the per-VM clones while a lab
 * provisions (a clone that cannot succeed fails the lab with its reason), and the bytes the labs
 * store, by lab state, for the metrics.
 */
import { BackendFailure } from '../../errors.js';
import type { MachineSpec } from '../types.js';
import type { KubeClient } from './client.js';
import { CDI_API, dataVolumeState, goldenName, rootDiskName, type DataVolumeStatus } from './disks.js';
import { STOPPED_ANNOTATION, type K8sObject } from './manifests.js';

interface DataSource extends K8sObject {
  spec?: { source?: { pvc?: { name: string; namespace?: string } } };
  status?: { conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}
interface Vm extends K8sObject {
  status?: { printableStatus?: string; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}
interface Pvc extends K8sObject {
  spec?: { resources?: { requests?: { storage?: string } } };
  status?: { phase?: string; capacity?: { storage?: string } };
}

/** How long a golden disk found ready is not asked for again. */
const GOLDEN_CACHE_MS = 30_000;
const dsPath = (ns: string, name: string) => `/apis/${CDI_API}/namespaces/${ns}/datasources/${name}`;

/** Golden disks found ready a moment ago, and the reads in flight (a class launching at once asks once). */
export class GoldenSeen {
  readonly readyUntil = new Map<string, number>();
  readonly asking = new Map<string, Promise<void>>();
}

/**
 * Every VM's golden DataSource exists and is Ready; otherwise a BackendFailure naming the image,
 * the DataSource and how an administrator provides it.
 */
export async function checkGoldenImages(client: KubeClient, vms: MachineSpec[], imageNamespace: string, signal?: AbortSignal, seen?: GoldenSeen): Promise<void> {
  const images = [...new Set(vms.map((m) => m.image))];
  await Promise.all(
    images.map(async (image) => {
      const name = goldenName(image);
      if ((seen?.readyUntil.get(name) ?? 0) > Date.now()) return;
      if (!seen) return checkGolden(client, image, name, imageNamespace, signal);
      signal?.throwIfAborted();
      let asking = seen.asking.get(name);
      if (!asking) {
        // shared by every caller until it answers: not bound to the first caller's signal
        asking = checkGolden(client, image, name, imageNamespace).then(
          () => { seen.readyUntil.set(name, Date.now() + GOLDEN_CACHE_MS); },
        ).finally(() => seen.asking.delete(name));
        seen.asking.set(name, asking);
      }
      await asking;
    }),
  );
}

async function checkGolden(client: KubeClient, image: string, name: string, imageNamespace: string, signal?: AbortSignal): Promise<void> {
  const ds = await client.get<DataSource>(dsPath(imageNamespace, name), signal);
  const where = `DataSource ${imageNamespace}/${name}`;
  if (!ds) {
    throw new BackendFailure(`image ${image}: no golden disk (${where} not found)`, {
      publicMessage: `Image ${image} is not available on this cluster: its golden disk (${where}) is missing. An administrator imports it (README, "Golden images").`,
    });
  }
  const ready = ds.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready && ready.status !== 'True') {
    throw new BackendFailure(`image ${image}: golden disk ${where} not ready (${ready.reason ?? ''} ${ready.message ?? ''})`, {
      publicMessage: `Image ${image} is not ready on this cluster: its golden disk (${where}) is not ready${ready.message ? ` (${ready.message})` : ''}.`,
    });
  }
}

export interface DiskProgress {
  ready: number;
  total: number;
}

/**
 * The clones of a provisioning lab: how many are ready, or a BackendFailure when one cannot
 * succeed (exceeded quota, failed clone, or KubeVirt refusing to create it, e.g. not authorised to
 * clone from the image namespace).
 */
export async function checkClones(client: KubeClient, ns: string, vms: MachineSpec[], signal?: AbortSignal): Promise<DiskProgress> {
  const [dvs, vmObjs] = await Promise.all([
    client.request<{ items: DataVolumeStatus[] }>('GET', `/apis/${CDI_API}/namespaces/${ns}/datavolumes`, { signal }),
    client.request<{ items: Vm[] }>('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`, { signal }),
  ]);
  let ready = 0;
  for (const m of vms) {
    const dv = dvs.items.find((d) => d.metadata.name === rootDiskName(m));
    if (dv) {
      const st = dataVolumeState(dv, m.name);
      if (st.state === 'failed') throw new BackendFailure(`${ns}/${dv.metadata.name}: ${st.reason}`, { publicMessage: `Machine ${m.name} cannot start: ${st.reason}.` });
      if (st.state === 'ready') ready++;
      continue;
    }
    const failure = vmObjs.items.find((v) => v.metadata.name === m.name)?.status?.conditions?.find((c) => c.type === 'Failure' && c.status === 'True');
    if (failure) {
      const why = failure.message ?? failure.reason ?? 'KubeVirt could not create it';
      throw new BackendFailure(`${ns}/${m.name}: disk not created: ${why}`, { publicMessage: `Machine ${m.name} cannot start: its disk could not be created (${why}).` });
    }
  }
  return { ready, total: vms.length };
}

/** Bytes of "1Gi"-style quantities (binary and decimal suffixes). */
export function quantityBytes(q: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec((q ?? '').trim());
  if (!m) return 0;
  const mult: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
  return Math.round(Number(m[1]) * (m[2] ? (mult[m[2]] ?? 1) : 1));
}

/**
 * Bytes held by lab disks, by the lab's state ('running' or 'stopped'), from the managed PVCs
 * (capacity when bound, else the request) and the namespaces' stopped annotation.
 */
export async function storedBytesByState(client: KubeClient, selector: string, namespaces: K8sObject[]): Promise<Record<'running' | 'stopped', number>> {
  const pvcs = await client.request<{ items: Pvc[] }>('GET', '/api/v1/persistentvolumeclaims', { query: { labelSelector: selector } });
  const stopped = new Set(namespaces.filter((n) => n.metadata.annotations?.[STOPPED_ANNOTATION] === 'true').map((n) => n.metadata.name));
  const out = { running: 0, stopped: 0 };
  for (const p of pvcs.items) {
    const bytes = quantityBytes(p.status?.capacity?.storage ?? p.spec?.resources?.requests?.storage);
    out[stopped.has(p.metadata.namespace ?? '') ? 'stopped' : 'running'] += bytes;
  }
  return out;
}
