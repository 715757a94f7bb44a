/**
 * A lab version's automatic checks resolved for one instance, ready for the check runner
 * (issue 10): each is a shell program to run with `sh -c` on a named machine. Commands and hints
 * are templated with the instance's variables; script files are used as they are.
 */
import type { LabYaml } from './schema.js';
import { fillText } from './prepare.js';

export interface ResolvedCheck {
  stepId: string;
  /** Position in the step's list, for storing results. */
  index: number;
  machine: string;
  /** The program for `sh -c` (a `command:`, or the contents of a `script:` file). */
  program: string;
  timeoutSeconds: number;
  hint?: string;
  weight: number;
}

export function resolveChecks(def: LabYaml, file: (path: string) => string, vars: Record<string, string | undefined>): ResolvedCheck[] {
  const only = def.machines.length === 1 ? def.machines[0]!.name : undefined;
  return Object.entries(def.grading.steps).flatMap(([stepId, step]) =>
    step.checks.map((c, index) => ({
      stepId,
      index,
      machine: c.machine ?? only ?? '',
      program: c.script !== undefined ? file(c.script) : fillText(c.command ?? 'false', vars),
      timeoutSeconds: c.timeoutSeconds,
      ...(c.hint !== undefined ? { hint: fillText(c.hint, vars) } : {}),
      weight: c.weight,
    })),
  );
}
