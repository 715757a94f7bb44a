import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkProgram, envName, templateCommand } from '../../src/labs/checks/checkProgram.js';

const HOSTILE = [
  'x" ; id > INJ ; echo "',
  "x' ; id > INJ ; echo '",
  'x`id > INJ`',
  'x$(id > INJ)',
  '$HOME ${PATH} * ?',
  'two\nlines ; id > INJ',
  '\\" ; id > INJ ; \\',
  "O'Brien \"Bob\" Ünïcode",
];

/** Run a program the way the backends do (sh -c, the values in the environment) in a fresh folder. */
function run(dir: string, p: { command: string; env: Record<string, string> }): { code: number; out: string } {
  try {
    const out = execFileSync('sh', ['-c', p.command], { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...p.env }, encoding: 'utf8' });
    return { code: 0, out };
  } catch (e) {
    const err = e as { status: number; stdout: string };
    return { code: err.status, out: err.stdout };
  }
}

describe('check programs: values are data', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-program-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('names environment variables after the template variables', () => {
    assert.equal(envName('user.name'), 'LAB_USER_NAME');
    assert.equal(envName('machines.web-1.password'), 'LAB_MACHINES_WEB_1_PASSWORD');
  });

  it('never puts a value into the command text', () => {
    for (const name of HOSTILE) {
      const p = templateCommand('test "{{user.name}}" = x && grep -q {{user.name}} f', { 'user.name': name });
      assert.equal(p.command, 'test "${LAB_USER_NAME}" = x && grep -q "${LAB_USER_NAME}" f');
      assert.deepEqual(p.env, { LAB_USER_NAME: name });
    }
  });

  for (const [where, template] of [
    ['unquoted', 'printf %s {{user.name}}'],
    ['in double quotes', 'printf %s "{{user.name}}"'],
    ['in single quotes', "printf %s '{{user.name}}'"],
    ['inside a double-quoted sentence', 'printf %s "name: {{user.name}}!"'],
    ['after an escaped quote', 'printf %s \\"; printf %s {{user.name}}'],
  ] as const) {
    it(`a hostile name ${where} is printed exactly and runs nothing`, () => {
      for (const name of HOSTILE) {
        const r = run(dir, templateCommand(template, { 'user.name': name }));
        assert.equal(r.code, 0, `${template} with ${JSON.stringify(name)}`);
        const expected = where === 'inside a double-quoted sentence' ? `name: ${name}!` : where === 'after an escaped quote' ? `"${name}` : name;
        assert.equal(r.out, expected, `${template} with ${JSON.stringify(name)}`);
        assert.equal(fs.existsSync(path.join(dir, 'INJ')), false, `${template} with ${JSON.stringify(name)} ran code`);
      }
    });
  }

  it('a check comparing the name cannot be faked by the name', () => {
    fs.writeFileSync(path.join(dir, 'owner'), 'alice\n');
    const check = 'grep -qx "{{user.name}}" owner';
    assert.equal(run(dir, templateCommand(check, { 'user.name': 'alice' })).code, 0);
    assert.notEqual(run(dir, templateCommand(check, { 'user.name': 'x" owner; true; echo "' })).code, 0);
  });

  it('leaves unknown and unset variables as written, and gives scripts the variables in their environment', () => {
    assert.deepEqual(templateCommand('echo {{nope}} {{lab.title}}', { 'lab.title': undefined }), { command: 'echo {{nope}} {{lab.title}}', env: {} });
    const p = checkProgram({ command: '#!/bin/sh\nprintf %s "$LAB_USER_NAME"\n', script: 'checks/a.sh' }, { 'user.name': 'x"; id > INJ' });
    assert.equal(run(dir, p).out, 'x"; id > INJ');
    assert.equal(fs.existsSync(path.join(dir, 'INJ')), false);
  });
});
