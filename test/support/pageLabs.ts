/**
 * LabDefinitions with real-looking instructions (two pages, weighted steps, a code block that may
 * be sent to a machine) for the lab page and API tests; the real catalog is tested on its own.
 */
import type { InstanceMachines, InstructionVariables, LabDefinitions, LabSummary, PreparedLab, RenderedInstructions } from '../../src/labs/contracts.js';
import type { ChannelKind } from '../../src/backends/types.js';
import { NotFound } from '../../src/errors.js';

export const PAGE_LAB_STEPS = [
  { id: 'login', pageId: 'p1', title: 'Log in', weight: 1, hasChecks: false },
  { id: 'hostname', pageId: 'p1', title: 'Find the host name', weight: 1, hasChecks: false },
  { id: 'file', pageId: 'p2', title: 'Create a file', weight: 2, hasChecks: false },
];

export class PageLabs implements LabDefinitions {
  constructor(private readonly machines: Array<{ name: string; channels: ChannelKind[] }> = [{ name: 'web', channels: ['vnc', 'console'] }], private readonly mode: 'steps' | 'checks' = 'steps') {}

  private summary(id: string): LabSummary {
    if (id !== 'demo-lab') throw new NotFound(`lab ${id} not found`);
    return {
      id, version: '1', title: 'Linux basics', description: '', tags: [], durationMinutes: 30,
      machines: this.machines.map((m) => ({ name: m.name, kind: 'vm', cpus: 1, memoryMiB: 256, consoles: m.channels })),
      resources: { cpus: 1, memoryMiB: 256 }, grading: { mode: this.mode, maxScore: 10 },
      lifetime: { maxMinutes: 60, idleMinutes: 30, pausable: true, warnBeforeMinutes: 5 },
    };
  }

  async list(): Promise<LabSummary[]> {
    return [this.summary('demo-lab')];
  }
  async latest(id: string): Promise<LabSummary | undefined> {
    return id === 'demo-lab' ? this.summary(id) : undefined;
  }
  async prepare(labId: string, version: string, existing: InstanceMachines): Promise<PreparedLab> {
    const s = this.summary(labId);
    return {
      spec: {
        labId, labVersion: version, network: { internetEgress: false },
        machines: this.machines.map((m) => ({ name: m.name, kind: 'vm', image: 'tiny', cpus: 1, memoryMiB: 256, channels: m.channels })),
      },
      lifetime: s.lifetime,
      machines: existing,
    };
  }
  async instructions(labId: string, version: string, vars: InstructionVariables): Promise<RenderedInstructions> {
    this.summary(labId);
    const m = this.machines[0]!.name;
    return {
      labId, version, title: 'Linux basics',
      pages: [
        {
          id: 'p1', title: 'Getting started',
          html: `<h1>Getting started</h1><p>Hello ${vars.user.name || 'student'}.</p>
<aside class="knowledge"><p><strong>Good to know:</strong> the console is the machine's serial line.</p></aside>
<div data-step-id="login"><p>Log in to <code>${m}</code>.</p></div>
<div data-step-id="hostname"><p>Print the host name:</p><pre data-machine="${m}"><code>echo sent-$((6*7))</code></pre></div>`,
        },
        { id: 'p2', title: 'Files', html: `<h1>Files</h1><div data-step-id="file"><p>Create a file:</p><pre><code>touch hello.txt</code></pre></div>` },
      ],
      steps: PAGE_LAB_STEPS,
      grading: { mode: this.mode, maxScore: 10 },
    };
  }
}
