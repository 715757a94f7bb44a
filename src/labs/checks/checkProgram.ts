/**
 * A check's program for one instance. Values (the student's name from the LMS, the lab title,
 * machine credentials and addresses) are data, never code: every `{{variable}}` in a check's
 * command becomes a reference to an environment variable, and the values travel beside the command
 * (ExecOptions.env), so the guest shell never parses them. A student named
 * `x" ; id > /tmp/inj ; echo "` is compared as exactly that string.
 *
 * The reference is quoted for where it stands in the command, so a value is always one word:
 *   grep -qx {{machines.beta.ip}} f     →  grep -qx "${LAB_MACHINES_BETA_IP}" f
 *   grep -q "hello {{user.name}}" f     →  grep -q "hello ${LAB_USER_NAME}" f
 *   echo '{{user.name}}'                →  echo ''"${LAB_USER_NAME}"''
 * A command gets the variables it refers to; scripts (checks/*.sh) are run as they are and get
 * every variable in their environment.
 */
import { VARIABLE } from '../definition/scanInstructions.js';

export interface CheckProgram {
  command: string;
  env: Record<string, string>;
}

/** The environment variable holding `{{name}}`: LAB_ and the name in capitals, other characters as `_`. */
export function envName(variable: string): string {
  return `LAB_${variable.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** Every defined variable as environment variables (values with a NUL byte are left out: no shell can hold them). */
export function variablesEnv(vars: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) if (v !== undefined && !v.includes('\0')) env[envName(k)] = v;
  return env;
}

type Quoting = 'none' | 'single' | 'double';

/** The quoting state of POSIX sh after reading `text` from `state` (backslash escapes, '…' and "…"). */
function advance(text: string, state: Quoting): Quoting {
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (state === 'single') {
      if (ch === "'") state = 'none';
    } else if (ch === '\\') {
      i++;
    } else if (state === 'double') {
      if (ch === '"') state = 'none';
    } else if (ch === "'") {
      state = 'single';
    } else if (ch === '"') {
      state = 'double';
    }
  }
  return state;
}

function reference(name: string, state: Quoting): string {
  if (state === 'double') return `\${${name}}`;
  if (state === 'single') return `'"\${${name}}"'`;
  return `"\${${name}}"`;
}

/** A templated command with each known `{{variable}}` replaced by a quoted reference to its environment variable. */
export function templateCommand(command: string, vars: Record<string, string | undefined>): CheckProgram {
  const all = variablesEnv(vars);
  const env: Record<string, string> = {};
  let out = '';
  let state: Quoting = 'none';
  let last = 0;
  for (const m of command.matchAll(VARIABLE)) {
    const at = m.index ?? 0;
    const before = command.slice(last, at);
    state = advance(before, state);
    out += before;
    const name = envName(m[1] ?? '');
    // unknown or unset variables stay as written (validation refuses unknown ones)
    const value = all[name];
    if (value === undefined) out += m[0];
    else {
      env[name] = value;
      out += reference(name, state);
    }
    last = at + m[0].length;
  }
  return { command: out + command.slice(last), env };
}

/** What runs for one check of one instance: a command templated as above, a script as it is; the variables in the environment. */
export function checkProgram(c: { command: string; script?: string }, vars: Record<string, string | undefined>): CheckProgram {
  return c.script !== undefined ? { command: c.command, env: variablesEnv(vars) } : templateCommand(c.command, vars);
}
