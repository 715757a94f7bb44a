/**
 * The stand-in's CDI: what the containerized-data-importer controllers do for a DataVolume and a
 * DataSource, reduced to one node whose "storage" is qcow2 files under the stand-in's work dir.
 *
 * - Import (`source.registry.url`, how an administrator fills a golden disk): from a registry on
 *   this host's loopback the containerDisk image is pulled and the PVC is backed by the disk in
 *   its /disk (containerDisks.ts), its guest image (the kernel the stand-in boots) named by the
 *   image's title label; a pull that fails keeps the DataVolume importing, Running False with
 *   the reason, and is retried. Any other URL is not pulled: `docker://registry/x/debian-12:tag`
 *   maps to the local guest image `debian-12` (as the containerDisk mapping does, lab-tiny when
 *   there is none) and the PVC is backed by that image's disk.qcow2, read-only.
 * - Clone (`sourceRef` → DataSource → PVC): a PVC of the requested size (inflated by CDI's default
 *   filesystem overhead, as CDI does for `storage` requests) is created in the DataVolume's
 *   namespace — so the namespace's ResourceQuota really applies — and backed by a qcow2 overlay
 *   on the source's file: a copy-on-write clone, kept as long as the PVC exists.
 * - Exceeded quota: phase Pending, Bound and Ready conditions False with reason ErrExceededQuota
 *   and the API server's message, retried (as CDI does). A target smaller than the source fails
 *   with CDI's message. A missing source PVC: Pending with reason CloneWithoutSource.
 * - A deleted PVC (its DataVolume or namespace deleted) removes its overlay file.
 * - DataSource: the Ready condition follows its source PVC (Ready / NotFound).
 *
 * PVCs record their backing file and guest image dir in annotations (FILE_ANNOTATION,
 * IMAGE_ANNOTATION); the VMI controller boots from them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KubeError, type KubeClient, type ObjectMeta } from './kube.js';
import { quantityToMiB } from './guests.js';
import { pullable, type ContainerDiskPuller } from './containerDisks.js';

const run = promisify(execFile);
export const CDI = '/apis/cdi.kubevirt.io/v1beta1';
export const FILE_ANNOTATION = 'kubevirt-standin/file';
export const IMAGE_ANNOTATION = 'kubevirt-standin/image-dir';
/** CDI's default global filesystem overhead. */
const FS_OVERHEAD = 0.055;

interface Condition { type: string; status: 'True' | 'False' | 'Unknown'; reason?: string; message?: string; lastTransitionTime: string; lastHeartbeatTime: string }
export interface DataVolume {
  metadata: ObjectMeta;
  spec: {
    source?: { registry?: { url?: string } };
    sourceRef?: { kind: string; name: string; namespace?: string };
    storage?: { storageClassName?: string; resources?: { requests?: { storage?: string } } };
  };
  status?: { phase?: string; conditions?: Condition[]; claimName?: string };
}
interface DataSource { metadata: ObjectMeta; spec: { source: { pvc?: { name: string; namespace?: string } } }; status?: { conditions?: Condition[] } }
export interface Pvc { metadata: ObjectMeta; spec: { resources?: { requests?: { storage?: string } } }; status?: { phase?: string; capacity?: { storage?: string } } }

export const dvPath = (ns: string, name?: string): string => `${CDI}/namespaces/${ns}/datavolumes${name ? `/${name}` : ''}`;
export const pvcPath = (ns: string, name?: string): string => `/api/v1/namespaces/${ns}/persistentvolumeclaims${name ? `/${name}` : ''}`;
const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class StandInCdi {
  private informers: Array<k8s.Informer<k8s.KubernetesObject>> = [];
  private queue = new Map<string, boolean>();
  private stopped = false;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly kube: KubeClient,
    private readonly o: { workDir: string; imagesDir: string; log: Logger; onDataVolume: (dv: DataVolume) => void; puller?: ContainerDiskPuller },
  ) {}

  async start(): Promise<void> {
    const custom = this.kc.makeApiClient(k8s.CustomObjectsApi);
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    const watch = async (p: string, list: () => Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>, on: (type: string, o: k8s.KubernetesObject) => void) => {
      const inf = k8s.makeInformer(this.kc, p, list);
      for (const t of ['add', 'update', 'delete'] as const) inf.on(t, (o) => on(t, o));
      inf.on('error', () => {
        if (!this.stopped) setTimeout(() => { if (!this.stopped) void inf.start().catch(() => undefined); }, 1000);
      });
      await inf.start();
      this.informers.push(inf);
    };
    await watch(`${CDI}/datavolumes`, () => custom.listClusterCustomObject({ group: 'cdi.kubevirt.io', version: 'v1beta1', plural: 'datavolumes' }) as never, (_t, o) => {
      this.enqueue(`dv/${o.metadata?.namespace}/${o.metadata?.name}`);
      this.o.onDataVolume(o as unknown as DataVolume);
    });
    await watch(`${CDI}/datasources`, () => custom.listClusterCustomObject({ group: 'cdi.kubevirt.io', version: 'v1beta1', plural: 'datasources' }) as never, (_t, o) =>
      this.enqueue(`ds/${o.metadata?.namespace}/${o.metadata?.name}`));
    await watch('/api/v1/persistentvolumeclaims', () => core.listPersistentVolumeClaimForAllNamespaces() as never, (t, o) => {
      if (t === 'delete') this.removeBacking(o as unknown as Pvc);
      // DataSources of this namespace follow their PVCs
      void this.kube.get<{ items: DataSource[] }>(`${CDI}/namespaces/${o.metadata?.namespace}/datasources`).then((l) => {
        for (const ds of l?.items ?? []) this.enqueue(`ds/${ds.metadata.namespace}/${ds.metadata.name}`);
      }, () => undefined);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.race([Promise.all(this.informers.map((i) => i.stop())), new Promise((r) => setTimeout(r, 5000))]);
  }

  private enqueue(key: string): void {
    if (this.stopped) return;
    if (this.queue.has(key)) { this.queue.set(key, true); return; }
    this.queue.set(key, false);
    void (async () => {
      do {
        this.queue.set(key, false);
        const [kind, ns, name] = key.split('/') as [string, string, string];
        try {
          if (kind === 'dv') await this.reconcileDv(ns, name);
          else await this.reconcileDs(ns, name);
        } catch (err) {
          this.o.log.warn({ key, err: String(err) }, 'cdi.reconcile.failed; retrying');
          await new Promise((r) => setTimeout(r, 1000));
          if (!this.stopped) this.queue.set(key, true);
        }
      } while (this.queue.get(key) && !this.stopped);
      this.queue.delete(key);
    })();
  }

  private retryLater(key: string, ms: number): void {
    setTimeout(() => this.enqueue(key), ms).unref();
  }

  private async reconcileDs(ns: string, name: string): Promise<void> {
    const ds = await this.kube.get<DataSource>(`${CDI}/namespaces/${ns}/datasources/${name}`);
    const src = ds?.spec.source.pvc;
    if (!ds || !src) return;
    const pvc = await this.kube.get<Pvc>(pvcPath(src.namespace ?? ns, src.name));
    const ready = pvc?.status?.phase === 'Bound' && !!pvc.metadata.annotations?.[FILE_ANNOTATION];
    const cur = ds.status?.conditions?.find((c) => c.type === 'Ready');
    const want = ready ? { status: 'True' as const, reason: 'Ready', message: '' } : { status: 'False' as const, reason: 'NotFound', message: 'PVC not found' };
    if (cur?.status === want.status && cur.reason === want.reason) return;
    const t = now();
    await this.kube.mergePatch(`${CDI}/namespaces/${ns}/datasources/${name}/status`, {
      status: { conditions: [{ type: 'Ready', ...want, lastTransitionTime: t, lastHeartbeatTime: t }], source: { pvc: src } },
    }, [200, 404]);
  }

  private async reconcileDv(ns: string, name: string): Promise<void> {
    const dv = await this.kube.get<DataVolume>(dvPath(ns, name));
    if (!dv || dv.metadata.deletionTimestamp || dv.status?.phase === 'Succeeded' || dv.status?.phase === 'Failed') return;
    const existing = await this.kube.get<Pvc>(pvcPath(ns, name));
    if (existing?.metadata.annotations?.[FILE_ANNOTATION]) return this.setDv(dv, 'Succeeded', { bound: true });
    if (dv.spec.source?.registry?.url) return this.importRegistry(dv);
    if (dv.spec.sourceRef?.kind === 'DataSource') return this.cloneFromDataSource(dv, existing);
  }

  /** A golden disk: the local guest image the registry URL names, backing a PVC read-only. */
  private async importRegistry(dv: DataVolume): Promise<void> {
    const url = dv.spec.source?.registry?.url ?? '';
    const ref = url.replace(/^docker:\/\//, '');
    if (this.o.puller && pullable(ref)) return this.importPulled(dv, ref, this.o.puller);
    const wanted = (url.split('/').pop() ?? '').replace(/[:@].*$/, '').replace(/[^a-z0-9._-]/gi, '_');
    let dir = path.join(this.o.imagesDir, wanted);
    if (!wanted || !fs.existsSync(path.join(dir, 'disk.qcow2'))) {
      // as for containerDisks: an image the stand-in does not have is served by lab-tiny (logged)
      this.o.log.info({ url }, 'cdi.import.unknown-image; using lab-tiny');
      dir = path.join(this.o.imagesDir, 'lab-tiny');
    }
    if (!fs.existsSync(path.join(dir, 'disk.qcow2'))) {
      return this.setDv(dv, 'ImportInProgress', { running: { status: 'False', reason: 'ImagePullFailed', message: `image ${url} is not available to the stand-in (no guest image under ${this.o.imagesDir})` } });
    }
    const real = fs.realpathSync(dir);
    const virtualMiB = await virtualSizeMiB(path.join(real, 'disk.qcow2'));
    const size = Math.max(quantityToMiB(dv.spec.storage?.resources?.requests?.storage, virtualMiB), virtualMiB);
    await this.createPvc(dv, size, { [FILE_ANNOTATION]: path.join(real, 'disk.qcow2'), [IMAGE_ANNOTATION]: real });
    await this.setDv(dv, 'Succeeded', { bound: true });
  }

  /** A golden disk pulled from a registry: the PVC is backed by the image's disk, its kernel from the local image its title names. */
  private async importPulled(dv: DataVolume, ref: string, puller: ContainerDiskPuller): Promise<void> {
    const { namespace: ns, name } = dv.metadata;
    let disk;
    try {
      disk = await puller.disk(ref, { forQemu: false });
    } catch (err) {
      this.retryLater(`dv/${ns}/${name}`, 5000);
      return this.setDv(dv, 'ImportInProgress', { running: { status: 'False', reason: 'Error', message: String(err instanceof Error ? err.message : err) } });
    }
    const imageDir = path.join(this.o.imagesDir, disk.title ?? (ref.split('/').pop() ?? '').replace(/[:@].*$/, ''));
    if (!fs.existsSync(imageDir)) {
      return this.setDv(dv, 'Failed', { running: { status: 'False', reason: 'Error', message: `image ${ref}: the stand-in has no local image "${path.basename(imageDir)}" to take its kernel from` } });
    }
    const virtualMiB = await virtualSizeMiB(disk.file);
    const size = Math.max(quantityToMiB(dv.spec.storage?.resources?.requests?.storage, virtualMiB), virtualMiB);
    await this.createPvc(dv, size, { [FILE_ANNOTATION]: disk.file, [IMAGE_ANNOTATION]: fs.realpathSync(imageDir) });
    this.o.log.info({ dv: `${ns}/${name}`, ref, digest: disk.digest }, 'cdi.imported');
    await this.setDv(dv, 'Succeeded', { bound: true });
  }

  private async cloneFromDataSource(dv: DataVolume, existing: Pvc | undefined): Promise<void> {
    const { metadata: { namespace: ns, name } } = dv;
    const ref = dv.spec.sourceRef!;
    const ds = await this.kube.get<DataSource>(`${CDI}/namespaces/${ref.namespace ?? ns}/datasources/${ref.name}`);
    if (!ds?.spec.source.pvc) return; // CDI does nothing until the DataSource exists
    const srcRef = ds.spec.source.pvc;
    const src = await this.kube.get<Pvc>(pvcPath(srcRef.namespace ?? ds.metadata.namespace, srcRef.name));
    const srcFile = src?.metadata.annotations?.[FILE_ANNOTATION];
    if (!src || !srcFile) {
      this.retryLater(`dv/${ns}/${name}`, 2000);
      return this.setDv(dv, 'CloneScheduled', { bound: false, reason: 'CloneWithoutSource', message: `The source pvc ${srcRef.name} doesn't exist` });
    }
    const srcMiB = quantityToMiB(src.status?.capacity?.storage ?? src.spec.resources?.requests?.storage, 0);
    const wantMiB = quantityToMiB(dv.spec.storage?.resources?.requests?.storage, srcMiB);
    if (wantMiB < srcMiB) {
      return this.setDv(dv, 'Failed', { running: { status: 'False', reason: 'Error', message: `target resources requests storage size is smaller than the source ${wantMiB * 2 ** 20} < ${srcMiB * 2 ** 20}` } });
    }
    const sizeMiB = Math.ceil(wantMiB * (1 + FS_OVERHEAD));
    if (!existing) {
      try {
        await this.createPvc(dv, sizeMiB, {});
      } catch (err) {
        if (err instanceof KubeError && err.status === 403 && /exceeded quota/.test(err.message)) {
          this.retryLater(`dv/${ns}/${name}`, 5000);
          const message = /(persistentvolumeclaims .*?exceeded quota:[^"]*)/.exec(err.message)?.[1] ?? err.message;
          return this.setDv(dv, 'Pending', { bound: false, reason: 'ErrExceededQuota', message });
        }
        throw err;
      }
    }
    const dir = path.join(this.o.workDir, 'pv', ns);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name}.qcow2`);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', await diskFormat(srcFile), '-b', srcFile, file, `${sizeMiB}M`]);
    const pvc = await this.kube.get<Pvc>(pvcPath(ns, name));
    await this.kube.mergePatch(pvcPath(ns, name), { metadata: { annotations: { [FILE_ANNOTATION]: file, [IMAGE_ANNOTATION]: src.metadata.annotations?.[IMAGE_ANNOTATION] ?? '' }, resourceVersion: pvc?.metadata.resourceVersion } });
    this.o.log.info({ dv: `${ns}/${name}`, source: `${srcRef.namespace}/${srcRef.name}`, file }, 'cdi.cloned');
    await this.setDv(dv, 'Succeeded', { bound: true });
  }

  /** The DataVolume's PVC (owned by it, its labels, CDI's label), bound at once: the stand-in's storage needs no provisioner. */
  private async createPvc(dv: DataVolume, sizeMiB: number, annotations: Record<string, string>): Promise<void> {
    const { namespace: ns, name, uid } = dv.metadata;
    const r = await this.kube.request('POST', pvcPath(ns), {
      apiVersion: 'v1', kind: 'PersistentVolumeClaim',
      metadata: {
        name, namespace: ns,
        labels: { ...(dv.metadata.labels ?? {}), app: 'containerized-data-importer' },
        annotations: { 'cdi.kubevirt.io/storage.contentType': 'kubevirt', ...annotations },
        ownerReferences: [{ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', name, uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem',
        resources: { requests: { storage: `${sizeMiB}Mi` } },
        ...(dv.spec.storage?.storageClassName ? { storageClassName: dv.spec.storage.storageClassName } : {}),
      },
    });
    if (r.status !== 201 && r.status !== 409) throw new KubeError(r.status, `creating PVC ${ns}/${name}: ${r.status} ${r.text.slice(0, 400)}`);
    await this.kube.mergePatch(`${pvcPath(ns, name)}/status`, { status: { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: { storage: `${sizeMiB}Mi` } } });
  }

  private async setDv(dv: DataVolume, phase: string, o: { bound?: boolean; reason?: string; message?: string; running?: { status: 'True' | 'False'; reason: string; message: string } }): Promise<void> {
    const t = now();
    const old = dv.status?.conditions ?? [];
    const cond = (type: string, status: Condition['status'], reason?: string, message?: string): Condition => {
      const prev = old.find((c) => c.type === type);
      return { type, status, ...(reason ? { reason } : {}), ...(message ? { message } : {}), lastTransitionTime: prev?.status === status ? prev.lastTransitionTime : t, lastHeartbeatTime: t };
    };
    const ok = phase === 'Succeeded';
    const conditions = [
      cond('Bound', o.bound ? 'True' : 'False', o.bound ? 'Bound' : o.reason, o.bound ? `PVC ${dv.metadata.name} Bound` : o.message),
      cond('Ready', ok ? 'True' : 'False', o.reason, o.message),
      o.running ? cond('Running', o.running.status, o.running.reason, o.running.message) : cond('Running', 'False', ok ? 'Completed' : undefined),
    ];
    const same = dv.status?.phase === phase && conditions.every((c) => { const p = old.find((x) => x.type === c.type); return p && p.status === c.status && p.reason === c.reason && p.message === c.message; });
    if (same) return;
    await this.kube.mergePatch(`${dvPath(dv.metadata.namespace, dv.metadata.name)}/status`, {
      status: { phase, conditions, ...(ok ? { progress: '100.0%', claimName: dv.metadata.name } : {}) },
    }, [200, 404]);
  }

  private removeBacking(pvc: Pvc): void {
    const file = pvc.metadata.annotations?.[FILE_ANNOTATION];
    if (!file || !path.resolve(file).startsWith(path.join(path.resolve(this.o.workDir), 'pv') + path.sep)) return;
    fs.rm(file, { force: true }, () => undefined);
    this.o.log.info({ pvc: `${pvc.metadata.namespace}/${pvc.metadata.name}`, file }, 'cdi.pvc.deleted');
  }
}

/** qcow2, or raw for anything else (a pulled disk may be either). */
async function diskFormat(file: string): Promise<'qcow2' | 'raw'> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', '-U', file]);
  return (JSON.parse(stdout) as { format: string }).format === 'qcow2' ? 'qcow2' : 'raw';
}

async function virtualSizeMiB(file: string): Promise<number> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', '-U', file]);
  return Math.ceil((JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'] / 2 ** 20);
}
