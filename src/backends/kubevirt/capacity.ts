/**
 * Capacity of the KubeVirt backend. The limits are the operator's (KUBEVIRT_MAX_VMS,
 * KUBEVIRT_MAX_MEMORY_MIB: what the cluster grants the tool); usage comes from the lab namespaces
 * the tool manages (the namespace informer and each namespace's stored spec), counted the way each
 * lab's ResourceQuota counts it: guest memory plus virt-launcher overhead for a VM, the container's
 * memory for a container. A stopped lab holds nothing. A lab admitted by this process holds its
 * share from the check until its provision ends, so two provisions never both take the last place.
 */
import { CapacityExhausted } from '../../errors.js';
import type { BackendCapacity, BackendLabSpec } from '../types.js';
import { VM_OVERHEAD_MIB } from './manifests.js';

export interface KubeVirtLimits {
  maxVms?: number;
  maxMemoryMiB?: number;
}

/** One lab namespace as the informer knows it. */
export interface LabUsage {
  name: string;
  spec: BackendLabSpec | undefined;
  stopped: boolean;
}

interface Footprint {
  vms: number;
  memoryMiB: number;
}

export function footprint(spec: BackendLabSpec): Footprint {
  return {
    vms: spec.machines.filter((m) => m.kind === 'vm').length,
    memoryMiB: spec.machines.reduce((n, m) => n + m.memoryMiB + (m.kind === 'vm' ? VM_OVERHEAD_MIB : 0), 0),
  };
}

export class CapacityLedger {
  private readonly admitted = new Map<string, Footprint>();

  constructor(private readonly limits: KubeVirtLimits, private readonly labs: () => LabUsage[]) {}

  /** In use now, leaving out the lab named `except` (a lab being admitted or started again). */
  current(except?: string): BackendCapacity {
    let usedVms = 0;
    let usedMemoryMiB = 0;
    const seen = new Set<string>();
    const add = (f: Footprint) => { usedVms += f.vms; usedMemoryMiB += f.memoryMiB; };
    for (const l of this.labs()) {
      seen.add(l.name);
      if (l.name === except) continue;
      const mine = this.admitted.get(l.name);
      if (mine) add(mine);
      else if (!l.stopped && l.spec) add(footprint(l.spec));
    }
    for (const [name, f] of this.admitted) if (!seen.has(name) && name !== except) add(f);
    return { ...this.limits, usedVms, usedMemoryMiB };
  }

  /** Throws CapacityExhausted when the lab would not fit beside the others; else holds its share until release(). */
  admit(name: string, spec: BackendLabSpec): void {
    const c = this.current(name);
    const f = footprint(spec);
    const overVms = c.maxVms !== undefined && c.usedVms + f.vms > c.maxVms;
    const overMemory = c.maxMemoryMiB !== undefined && c.usedMemoryMiB + f.memoryMiB > c.maxMemoryMiB;
    if (overVms || overMemory) {
      throw new CapacityExhausted(
        `capacity reached for ${spec.labId}: needs ${f.vms} VM(s) and ${f.memoryMiB} MiB, in use ${c.usedVms}/${c.maxVms ?? '∞'} VMs and ${c.usedMemoryMiB}/${c.maxMemoryMiB ?? '∞'} MiB`,
        { publicMessage: 'Capacity reached: all lab machines of this site are in use. Please try again in a few minutes.' },
      );
    }
    this.admitted.set(name, f);
  }

  release(name: string): void {
    this.admitted.delete(name);
  }
}
