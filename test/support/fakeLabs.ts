/**
 * A small test implementation of LabDefinitions + LabRuntime for the LTI tests: a fixed catalog,
 * instances stored with the real ensureInstanceRecord (so uniqueness is the real index's), and
 * start() counted instead of provisioning anything.
 */
import type { LabDefinitions, LabRuntime, LabSummary } from '../../src/labs/contracts.js';
import { placeholderLabs, placeholderRuntime, PLACEHOLDER_LAB } from './placeholderLabs.js';

export const NET_LAB: LabSummary = {
  ...PLACEHOLDER_LAB,
  id: 'net-101',
  version: '3',
  title: 'Subnetting 101',
  description: 'Two machines on one network; find the gateway.',
  durationMinutes: 45,
  machines: [
    { name: 'router', kind: 'vm', cpus: 1, memoryMiB: 256, consoles: ['console'] },
    { name: 'client', kind: 'container', cpus: 1, memoryMiB: 128, consoles: ['console'] },
  ],
  resources: { cpus: 2, memoryMiB: 384 },
  grading: { mode: 'checks', maxScore: 20 },
  lifetime: { maxMinutes: 90, idleMinutes: 20, pausable: true, warnBeforeMinutes: 5 },
};

export interface FakeLabs {
  labs: LabDefinitions;
  runtime: LabRuntime;
  /** Instance ids start() was called with, in order. */
  started: string[];
}

export function fakeLabs(catalog: LabSummary[] = [NET_LAB, PLACEHOLDER_LAB]): FakeLabs {
  const started: string[] = [];
  const base = placeholderRuntime();
  return {
    labs: placeholderLabs(catalog),
    runtime: { ...base, start: async (id, current) => { started.push(id); return base.start(id, current); } },
    started,
  };
}
