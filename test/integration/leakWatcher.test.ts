/**
 * The suite's own guard (test/support/hooks.ts): a run whose last test leaves a timer holding the
 * process is failed — exit code 1 and one more failure in the results file scripts/test.sh counts —
 * and the timer is named by where it was made. A run that leaves nothing ends on its own with 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

interface Run { code: number | null; stderr: string; results: { passed: number; failed: number; failures: Array<{ title: string; error: string }> } }

async function mochaOn(body: string): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-leak-'));
  try {
    const spec = path.join(dir, 'fixture.test.ts');
    fs.writeFileSync(spec, `describe('fixture', () => { it('passes', () => { ${body} }); });\n`);
    const results = path.join(dir, 'results.json');
    const child = spawn(process.execPath, [path.resolve('node_modules/mocha/bin/mocha.js'), spec], {
      cwd: process.cwd(),
      env: { ...process.env, LAB_TEST_RESULTS: results, LAB_TEST_LEAK_GRACE_MS: '1500' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.stdout.resume();
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    return { code, stderr, results: JSON.parse(fs.readFileSync(results, 'utf8')) as Run['results'] };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the test run fails when something keeps it alive after its last test', function () {
  this.timeout(90_000);

  it('a leaked interval: exit 1, one more failure in the results, and the place it was made', async () => {
    const r = await mochaOn('setInterval(() => undefined, 500);');
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.results.passed, 1);
    assert.equal(r.results.failed, 1);
    assert.equal(r.results.failures[0]!.title, 'the run ends by itself');
    assert.match(r.stderr, /did not end 1\.5 s after its last test/);
    assert.match(r.stderr, /a timer made at\n.*fixture\.test\.ts/);
  });

  it('nothing left: the run ends by itself with 0 and no failure', async () => {
    const r = await mochaOn('const t = setTimeout(() => undefined, 100); clearTimeout(t);');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.results.passed, r.results.failed], [1, 0]);
    assert.doesNotMatch(r.stderr, /did not end/);
  });
});
