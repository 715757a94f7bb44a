/**
 * A lab version's automatic checks as the check runner needs them: machines filled in for
 * one-machine labs, scripts replaced by their content, steps in the order of the instructions.
 * Each check is a shell program run with `sh` on its machine. Commands and hints are templated
 * with an instance's variables (fillChecks); script files are used as they are. Pure.
 */
import type { LabChecks, ResolvedCheck, StepChecks } from '../contracts.js';
import { fillText } from './prepare.js';
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

/** The environment variable a lab variable reaches a check command as: user.name → LAB_USER_NAME. */
export function envName(variable: string): string {
  return `LAB_${variable.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/**
 * A check command for one instance. Each `{{name}}` becomes a reference to an environment variable
 * holding the value, written for the quoting it stands in (bare: "${V}"; inside "…": ${V}; inside
 * '…': '"${V}"'), and the values travel beside the command: the guest shell expands them as data
 * and never parses them as code. Unknown names stay as they are (validation rejects them). A
 * script file is used as it is and gets the same variables.
 */
export function checkProgram(c: ResolvedCheck, vars: Record<string, string | undefined>): { command: string; env: Record<string, string> } {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env[envName(k)] = v;
  if (c.script !== undefined) return { command: c.command, env };
  return { command: templateCommand(c.command, vars), env };
}

function templateCommand(text: string, vars: Record<string, string | undefined>): string {
  let out = '';
  let quote: '' | "'" | '"' = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '{' && text[i + 1] === '{') {
      const m = /^\{\{\s*([^{}]*?)\s*\}\}/.exec(text.slice(i));
      if (m && vars[m[1] ?? ''] !== undefined) {
        const ref = `\${${envName(m[1]!)}}`;
        out += quote === '"' ? ref : quote === "'" ? `'"${ref}"'` : `"${ref}"`;
        i += m[0].length - 1;
        continue;
      }
    }
    out += ch;
    if (ch === '\\' && quote !== "'" && i + 1 < text.length) out += text[++i];
    else if ((ch === "'" || ch === '"') && (quote === '' || quote === ch)) quote = quote ? '' : ch;
  }
  return out;
}

/** The checks with commands and hints filled in for one instance, to read (what runs is checkProgram's). */
export function fillChecks(lc: LabChecks, vars: Record<string, string | undefined>): LabChecks {
  return {
    ...lc,
    steps: lc.steps.map((s) => ({
      ...s,
      checks: s.checks.map((c) => ({ ...c, command: c.script !== undefined ? c.command : fillText(c.command, vars), ...(c.hint !== undefined ? { hint: fillText(c.hint, vars) } : {}) })),
    })),
  };
}
