/**
 * A stand-in lab catalog and runtime for LTI tests that need launches but no machines: the catalog
 * has one demo lab; the runtime only stores the instance record (exactly one per activity and
 * user) and starts nothing.
 */
import { ensureInstanceRecord, LabInstance, type LabInstanceDoc } from '../../src/store/LabInstance.js';
import { BackendFailure, NotFound } from '../../src/errors.js';
import type { LabDefinitions, LabRuntime, LabSummary } from '../../src/labs/contracts.js';

export const PLACEHOLDER_LAB: LabSummary = {
  id: 'placeholder-demo',
  version: '1',
  title: 'Demo lab (placeholder)',
  description: 'Stands in for the real lab catalog until it is wired; starts no machines.',
  tags: ['demo'],
  durationMinutes: 30,
  machines: [{ name: 'box', kind: 'vm', cpus: 1, memoryMiB: 512, consoles: ['console'] }],
  resources: { cpus: 1, memoryMiB: 512 },
  grading: { mode: 'steps', maxScore: 10 },
  lifetime: { maxMinutes: 120, idleMinutes: 30, pausable: false, warnBeforeMinutes: 10 },
};

export function placeholderLabs(labs: LabSummary[] = [PLACEHOLDER_LAB]): LabDefinitions {
  return {
    list: async () => labs,
    latest: async (id) => labs.find((l) => l.id === id),
    prepare: async () => { throw new NotFound('placeholder catalog: labs cannot be prepared'); },
    instructions: async () => { throw new NotFound('placeholder catalog: no instructions'); },
  };
}

export function placeholderRuntime(): LabRuntime {
  const get = async (id: string) => (await LabInstance.findById(id).lean<LabInstanceDoc>()) ?? undefined;
  const must = async (id: string) => {
    const doc = await get(id);
    if (!doc) throw new NotFound(`no lab instance ${id}`);
    return doc;
  };
  const none = async () => { throw new BackendFailure('placeholder runtime: no lab backend is wired'); };
  return {
    ensureInstance: (key) => ensureInstanceRecord(key),
    start: async (id, current) => (current?._id === id ? current : must(id)),
    get,
    pause: async () => {},
    resume: async () => {},
    stop: async () => {},
    reset: async () => {},
    destroy: async () => {},
    status: async () => ({}),
    openChannel: none,
    noteActivity: () => {},
    subscribe: () => () => {},
    emit: () => {},
    tickStep: none,
  };
}
