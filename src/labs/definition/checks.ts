/**
 * A lab version's automatic checks as the check runner needs them: machines filled in for
 * one-machine labs, scripts replaced by their content, steps in the order of the instructions.
 * Each check is a shell program run with `sh` on its machine. Hints are templated with an
 * instance's variables; commands get them as environment variables (checks/checkProgram.ts);
 * script files are used as they are. Pure.
 */
import type { LabChecks, ResolvedCheck, StepChecks } from '../contracts.js';
import { fillText } from './prepare.js';
import { checkProgram } from '../checks/checkProgram.js';
import type { LabYaml } from './schema.js';

export function resolveChecks(def: LabYaml, stepOrder: string[], file: (path: string) => Buffer | undefined): LabChecks {
  const only = def.machines.length === 1 ? def.machines[0]?.name : undefined;
  const ids = [...new Set([...stepOrder, ...Object.keys(def.grading.steps)])];
  const steps: StepChecks[] = [];
  for (const stepId of ids) {
    const g = def.grading.steps[stepId];
    if (!g?.checks.length) continue;
    steps.push({
      stepId,
      checks: g.checks.map((c, index): ResolvedCheck => {
        const machine = c.machine ?? only;
        // validation guarantees both of these; a stored version that breaks them is a bug, not a student's problem
        if (!machine) throw new Error(`check ${stepId}[${index}] has no machine`);
        const body = c.script !== undefined ? file(c.script) : undefined;
        if (c.script !== undefined && !body) throw new Error(`check ${stepId}[${index}]: script ${c.script} is not stored`);
        return {
          index,
          machine,
          command: body ? body.toString('utf8') : (c.command ?? 'false'),
          ...(c.script !== undefined ? { script: c.script } : {}),
          timeoutSeconds: c.timeoutSeconds,
          ...(c.hint !== undefined ? { hint: c.hint } : {}),
          weight: c.weight,
        };
      }),
    });
  }
  return {
    title: def.title,
    mode: def.grading.mode,
    maxScore: def.grading.maxScore,
    ...(def.grading.checkEverySeconds !== undefined ? { checkEverySeconds: def.grading.checkEverySeconds } : {}),
    steps,
  };
}

/** The checks for one instance: programs as checkProgram makes them (values in `env`, never in the command), hints filled in. */
export function fillChecks(lc: LabChecks, vars: Record<string, string | undefined>): LabChecks {
  return {
    ...lc,
    steps: lc.steps.map((s) => ({
      ...s,
      checks: s.checks.map((c) => ({ ...c, ...checkProgram(c, vars), ...(c.hint !== undefined ? { hint: fillText(c.hint, vars) } : {}) })),
    })),
  };
}
