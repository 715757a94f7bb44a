/**
 * What the teacher's overview shows of each running lab at a glance: the last console lines and
 * which machine a screen thumbnail is taken of. The machine is the one whose desktop or console the
 * student last opened on this replica, else the lab's first machine with that channel. A lab whose
 * student last opened a console shows that console's lines rather than a screen.
 */
import type { ChannelKind } from '../../backends/types.js';
import type { LabCatalogCache } from '../../labs/LabCatalogCache.js';
import type { LabRuntime } from '../../labs/contracts.js';
import type { LabInstanceDoc } from '../../store/LabInstance.js';
import { lastLines } from '../../proxy/consoleText.js';

/** How much of a console log is read for its last lines. */
const CONSOLE_TAIL_BYTES = 4096;
export const CONSOLE_TAIL_LINES = 6;

export interface GlanceDeps {
  catalog: Pick<LabCatalogCache, 'machines'>;
  /** The shared consoles open on this replica (their history costs nothing). */
  openConsoles?: (instanceIds: readonly string[]) => Map<string, { machine: string; lines: string[] }>;
  /** The machine and channel last opened (not view-only) per lab on this replica. */
  lastUsed?: (instanceId: string) => { machine: string; channel: ChannelKind } | undefined;
  runtime?: Pick<LabRuntime, 'consoleHistory'>;
}

export type ConsoleTail = { machine: string; lines: string[] };

/** The machine of a lab to show `channel` of, or undefined when none has it. */
export async function glanceMachine(d: GlanceDeps, inst: Pick<LabInstanceDoc, '_id' | 'labId' | 'labVersion' | 'machines'>, channel: ChannelKind): Promise<string | undefined> {
  const machines = await d.catalog.machines(inst);
  const last = d.lastUsed?.(inst._id)?.machine;
  const used = machines.find((m) => m.name === last && m.channels.includes(channel));
  return (used ?? machines.find((m) => m.channels.includes(channel)))?.name;
}

/**
 * The last console lines per lab: from a console open on this replica, else (running or paused labs)
 * from the console history the backend keeps (QEMU: the guest's console log). Nothing is dialed.
 */
export async function consoleTails(d: GlanceDeps, docs: readonly LabInstanceDoc[]): Promise<Map<string, ConsoleTail>> {
  const out = d.openConsoles?.(docs.map((x) => x._id)) ?? new Map<string, ConsoleTail>();
  const history = d.runtime?.consoleHistory?.bind(d.runtime);
  if (!history) return out;
  await Promise.all(docs.filter((x) => !out.has(x._id) && (x.state === 'running' || x.state === 'paused')).map(async (inst) => {
    try {
      const machine = await glanceMachine(d, inst, 'console');
      const bytes = machine ? await history(inst._id, machine, CONSOLE_TAIL_BYTES) : null;
      const lines = bytes ? lastLines(bytes, CONSOLE_TAIL_LINES) : [];
      if (machine && lines.length) out.set(inst._id, { machine, lines });
    } catch { /* a lab that went away meanwhile: no tail */ }
  }));
  return out;
}

/** Whether the card shows the console's lines rather than a screen: the student works in a console. */
export function prefersConsole(d: GlanceDeps, instanceId: string, tail: ConsoleTail | undefined): boolean {
  const last = d.lastUsed?.(instanceId);
  return !!tail && last?.channel === 'console';
}
