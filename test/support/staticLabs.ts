/**
 * LabDefinitions over labs given in code, for runtime tests that do not exercise lab.yaml parsing
 * (the real catalog is tested on its own). Generates a password per machine like the real one.
 */
import { randomBytes } from 'node:crypto';
import type { InstanceMachines, LabChecks, LabDefinitions, LabLifetime, LabSummary, PreparedLab, RenderedInstructions } from '../../src/labs/contracts.js';
import type { MachineSpec } from '../../src/backends/types.js';
import { NotFound } from '../../src/errors.js';

export interface StaticLab {
  id: string;
  version?: string;
  machines: Array<Partial<MachineSpec> & { name: string }>;
  lifetime?: Partial<LabLifetime>;
  internetEgress?: boolean;
  /** Automatic checks (title defaults to the id). */
  checks?: Omit<LabChecks, 'title'>;
}

export class StaticLabs implements LabDefinitions {
  constructor(private readonly labs: StaticLab[]) {}

  private find(id: string): StaticLab {
    const lab = this.labs.find((l) => l.id === id);
    if (!lab) throw new NotFound(`lab ${id} not found`);
    return lab;
  }

  private lifetime(lab: StaticLab): LabLifetime {
    return { maxMinutes: 60, idleMinutes: 30, pausable: true, warnBeforeMinutes: 5, ...lab.lifetime };
  }

  private machines(lab: StaticLab): MachineSpec[] {
    return lab.machines.map((m) => ({ kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console', 'vnc'], ...m }));
  }

  async list(): Promise<LabSummary[]> {
    return this.labs.map((l) => this.summary(l));
  }

  private summary(l: StaticLab): LabSummary {
    const ms = this.machines(l);
    return {
      id: l.id, version: l.version ?? '1', title: l.id, description: '', tags: [], durationMinutes: 30,
      machines: ms.map((m) => ({ name: m.name, kind: m.kind, cpus: m.cpus, memoryMiB: m.memoryMiB, consoles: m.channels })),
      resources: { cpus: ms.reduce((a, m) => a + m.cpus, 0), memoryMiB: ms.reduce((a, m) => a + m.memoryMiB, 0) },
      grading: { mode: 'steps', maxScore: 10 }, lifetime: this.lifetime(l),
    };
  }

  async latest(labId: string): Promise<LabSummary | undefined> {
    const l = this.labs.find((x) => x.id === labId);
    return l && this.summary(l);
  }

  async prepare(labId: string, version: string, existing: InstanceMachines): Promise<PreparedLab> {
    const lab = this.find(labId);
    const machines: InstanceMachines = {};
    const specs = this.machines(lab).map((m) => {
      const creds = { username: existing[m.name]?.username ?? 'student', password: existing[m.name]?.password ?? randomBytes(6).toString('hex') };
      machines[m.name] = creds;
      return { ...m, credentials: { username: creds.username, password: creds.password } };
    });
    return { spec: { labId, labVersion: version, machines: specs, network: { internetEgress: lab.internetEgress ?? false } }, lifetime: this.lifetime(lab), machines };
  }

  async checks(labId: string): Promise<LabChecks> {
    const lab = this.find(labId);
    return { title: lab.id, ...(lab.checks ?? { mode: 'steps', maxScore: 10, steps: [] }) };
  }

  async instructions(labId: string, version: string): Promise<RenderedInstructions> {
    const lab = this.find(labId);
    // one step per step with checks (the checks' grading), else none
    const steps = (lab.checks?.steps ?? []).map((s) => ({ id: s.stepId, pageId: 'p1', title: s.stepId, weight: 1, hasChecks: true }));
    return { labId, version, title: labId, pages: [], steps, grading: lab.checks ? { mode: lab.checks.mode, maxScore: lab.checks.maxScore } : { mode: 'steps', maxScore: 10 } };
  }
}
