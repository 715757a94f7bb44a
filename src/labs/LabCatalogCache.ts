/**
 * Per lab version: the machines with their channels, and the steps with the grading, of what an
 * instance runs (they do not depend on the instance, so each version is read once per process).
 */
import type { ChannelKind } from '../backends/types.js';
import type { LabInstanceDoc } from '../store/LabInstance.js';
import type { LabDefinitions, RenderedInstructions } from './contracts.js';

export class LabCatalogCache {
  private readonly machineCache = new Map<string, Promise<Array<{ name: string; channels: ChannelKind[] }>>>();
  private readonly stepCache = new Map<string, Promise<Pick<RenderedInstructions, 'steps' | 'grading'>>>();
  constructor(private readonly labs: LabDefinitions) {}

  machines(inst: Pick<LabInstanceDoc, 'labId' | 'labVersion' | 'machines'>): Promise<Array<{ name: string; channels: ChannelKind[] }>> {
    return cached(this.machineCache, `${inst.labId}@${inst.labVersion}`, async () => {
      const p = await this.labs.prepare(inst.labId, inst.labVersion, inst.machines ?? {});
      return p.spec.machines.map((m) => ({ name: m.name, channels: m.channels }));
    });
  }

  steps(inst: Pick<LabInstanceDoc, 'labId' | 'labVersion'>): Promise<Pick<RenderedInstructions, 'steps' | 'grading'>> {
    return cached(this.stepCache, `${inst.labId}@${inst.labVersion}`, async () => {
      const ri = await this.labs.instructions(inst.labId, inst.labVersion, { user: { name: '' }, machines: {}, lab: { expires: '' } });
      return { steps: ri.steps, grading: ri.grading };
    });
  }
}

function cached<T>(m: Map<string, Promise<T>>, key: string, f: () => Promise<T>): Promise<T> {
  let p = m.get(key);
  if (!p) {
    p = f();
    m.set(key, p);
    p.catch(() => m.delete(key));
  }
  return p;
}
