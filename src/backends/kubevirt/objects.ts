/** Reading KubeVirt and core objects as the API server returns them: status mapping, ownership, copies. */
import type { LabHandle, MachineStatus } from '../types.js';
import { GENERATION_LABEL, INSTANCE_ANNOTATION, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, type K8sObject } from './manifests.js';

export interface Vmi extends K8sObject {
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    reason?: string;
    interfaces?: Array<{ name?: string; ipAddress?: string; ipAddresses?: string[] }>;
    nodeName?: string;
  };
}
export interface Vm extends K8sObject {
  spec: { runStrategy?: string; running?: boolean; dataVolumeTemplates?: unknown[] };
}
export interface Pod extends K8sObject {
  status?: { phase?: string; containerStatuses?: Array<{ ready?: boolean; state?: { waiting?: { reason?: string; message?: string } } }> };
}

/** The handle of a managed, live namespace (labels and annotation agree); undefined otherwise. */
export function handleOf(ns: K8sObject): LabHandle | undefined {
  const l = ns.metadata.labels ?? {};
  const id = l[INSTANCE_LABEL];
  const gen = Number(l[GENERATION_LABEL]);
  if (!id || !Number.isInteger(gen) || ns.metadata.deletionTimestamp || l[MANAGED_BY_LABEL] !== MANAGER) return undefined;
  if (ns.metadata.annotations?.[INSTANCE_ANNOTATION] !== id) return undefined;
  return { instanceId: id, backend: 'kubevirt', name: ns.metadata.name, generation: gen };
}

/** JSON with sorted keys: the API server returns fields in its own order. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function cleanForCreate<T extends K8sObject>(obj: T): T {
  const { uid: _u, resourceVersion: _r, creationTimestamp: _c, deletionTimestamp: _d, ...metadata } = obj.metadata as K8sObject['metadata'] & Record<string, unknown>;
  const m = { ...metadata } as Record<string, unknown>;
  delete m.managedFields;
  delete m.generation;
  delete m.finalizers;
  delete m.ownerReferences;
  delete m.deletionGracePeriodSeconds;
  const { status: _s, ...rest } = obj as T & { status?: unknown };
  const out = { ...rest, metadata: m } as unknown as K8sObject;
  if (obj.kind === 'Pod') {
    const spec = { ...(out.spec as Record<string, unknown>) };
    delete spec.nodeName;
    out.spec = spec;
  }
  return out as T;
}

export function vmiStatus(vmi: Vmi | undefined): MachineStatus {
  if (!vmi) return { phase: 'pending' };
  const phase = vmi.status?.phase ?? 'Pending';
  const cond = (t: string) => vmi.status?.conditions?.find((c) => c.type === t)?.status === 'True';
  if (phase === 'Failed') return { phase: 'failed', reason: vmi.status?.reason ?? vmi.status?.conditions?.find((c) => c.message)?.message ?? 'the VM failed' };
  if (phase === 'Succeeded') return { phase: 'stopped' };
  if (phase === 'Running') return cond('Paused') ? { phase: 'paused' } : cond('Ready') ? { phase: 'running' } : { phase: 'booting' };
  if (phase === 'Scheduled' || phase === 'Scheduling') return { phase: 'booting' };
  return { phase: 'pending' };
}

export function podStatus(p: Pod): MachineStatus {
  const phase = p.status?.phase ?? 'Pending';
  const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
  if (waiting && /ErrImagePull|ImagePullBackOff|InvalidImageName|CrashLoopBackOff/.test(waiting.reason ?? '')) return { phase: 'failed', reason: `${waiting.reason}: ${waiting.message ?? ''}`.trim() };
  if (phase === 'Running') return p.status?.containerStatuses?.every((c) => c.ready) ? { phase: 'running' } : { phase: 'booting' };
  if (phase === 'Failed') return { phase: 'failed', reason: 'the container stopped' };
  if (phase === 'Succeeded') return { phase: 'stopped' };
  return { phase: 'pending' };
}

/** The address of a running VMI's first interface (IPv4 preferred), as KubeVirt reports it. */
export function vmiAddress(vmi: Vmi | undefined): string | undefined {
  if (vmi?.status?.phase !== 'Running') return undefined;
  const iface = vmi.status.interfaces?.[0];
  const all = [iface?.ipAddress, ...(iface?.ipAddresses ?? [])].filter((x): x is string => !!x);
  return all.find((a) => !a.includes(':')) ?? all[0];
}
