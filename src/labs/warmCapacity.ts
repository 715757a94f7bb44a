/** How many labs of one kind a backend can hold, and whether one more fits now (for warm sessions). */
import type { BackendCapacity } from '../backends/types.js';
import type { LabSummary } from './contracts.js';

type LabSize = Pick<LabSummary, 'machines'>;

function size(lab: LabSize): { vms: number; memoryMiB: number } {
  const vms = lab.machines.filter((m) => m.kind === 'vm').length;
  return { vms, memoryMiB: lab.machines.reduce((a, m) => a + m.memoryMiB, 0) };
}

/** The most labs of this kind the backend could run at once (Infinity when it sets no limit). */
export function labsAtMost(cap: BackendCapacity, lab: LabSize): number {
  const s = size(lab);
  let n = Infinity;
  if (cap.maxVms !== undefined && s.vms > 0) n = Math.min(n, Math.floor(cap.maxVms / s.vms));
  if (cap.maxMemoryMiB !== undefined && s.memoryMiB > 0) n = Math.min(n, Math.floor(cap.maxMemoryMiB / s.memoryMiB));
  return n;
}

/** How many more labs of this kind fit in what is free now (Infinity when the backend sets no limit). */
export function labsFitNow(cap: BackendCapacity, lab: LabSize): number {
  const s = size(lab);
  let n = Infinity;
  if (cap.maxVms !== undefined && s.vms > 0) n = Math.min(n, Math.floor((cap.maxVms - cap.usedVms) / s.vms));
  if (cap.maxMemoryMiB !== undefined && s.memoryMiB > 0) n = Math.min(n, Math.floor((cap.maxMemoryMiB - cap.usedMemoryMiB) / s.memoryMiB));
  return Math.max(0, n);
}
