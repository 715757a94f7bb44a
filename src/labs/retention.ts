/**
 * How long a lab keeps the student's work, and what that work costs in storage.
 *
 * Two clocks, never mixed:
 * - the **time limit** bounds one sitting: a lab that starts or continues may run for its
 *   `lifetime.maxMinutes` (or the activity's shorter time limit); then a lab that may pause is
 *   stopped (its work kept) and one that may not is ended;
 * - the **keep time** bounds a stopped lab: its machines keep their disks for the activity's keep
 *   days (deep-linking option), else the lab's `lifetime.keepDays`, never longer than the operator's
 *   maximum; then the supervisor deletes them. The student is warned some days before.
 *
 * Storage: a lab reserves the disks of its virtual machines (`disk:` in lab.yaml, else
 * DEFAULT_DISK_GIB each); the operator may bound the total kept by stopped labs, and a stop that
 * would pass it is refused with the numbers (the lab keeps running).
 */
import { DEFAULT_DISK_GIB, type MachineSpec } from '../backends/types.js';
import type { LabInstanceDoc } from '../store/LabInstance.js';

export const DEFAULT_KEEP_DAYS = 7;
export const DAY_MS = 86_400_000;

export interface RetentionPolicy {
  /** The operator's maximum keep time (days). */
  maxKeepDays: number;
  /** Warn the student this many days before a stopped lab's disks are deleted (at most half its keep time). */
  warnDays: number;
  /** The operator's total for the disks of stopped labs (GiB); unset = no total. */
  maxStoppedStorageGiB?: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { maxKeepDays: 30, warnDays: 2 };

/** Days a stopped lab keeps its disks: the activity's setting, else the lab's, capped by the operator. */
export function keepDaysOf(inst: Pick<LabInstanceDoc, 'keepDays' | 'lifetime'>, policy: RetentionPolicy): number {
  const wanted = inst.keepDays ?? inst.lifetime?.keepDays ?? DEFAULT_KEEP_DAYS;
  return Math.max(1, Math.min(Math.floor(wanted), policy.maxKeepDays));
}

/** When a lab stopped at `now` has its disks deleted. */
export function keptUntil(now: Date, inst: Pick<LabInstanceDoc, 'keepDays' | 'lifetime'>, policy: RetentionPolicy): Date {
  return new Date(now.getTime() + keepDaysOf(inst, policy) * DAY_MS);
}

/** How long before deletion a stopped lab's student is warned (ms). */
export function deletionWarningMs(inst: Pick<LabInstanceDoc, 'keepDays' | 'lifetime'>, policy: RetentionPolicy): number {
  return Math.min(policy.warnDays, keepDaysOf(inst, policy) / 2) * DAY_MS;
}

/** GiB a lab's virtual machines reserve for their disks. */
export function labStorageGiB(machines: readonly Pick<MachineSpec, 'kind' | 'diskGiB'>[]): number {
  return machines.filter((m) => m.kind !== 'container').reduce((a, m) => a + (m.diskGiB ?? DEFAULT_DISK_GIB), 0);
}

/** The refusal text when stopping would pass the operator's total, or null when it fits. */
export function storageRefusal(keptGiB: number, labGiB: number, policy: RetentionPolicy): string | null {
  const max = policy.maxStoppedStorageGiB;
  if (max === undefined || keptGiB + labGiB <= max) return null;
  return `Stopped labs on this server already keep ${keptGiB} GiB of the ${max} GiB allowed, and this lab needs ${labGiB} GiB. Keep it running and finish it, or ask your teacher.`;
}
