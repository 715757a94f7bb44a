import assert from 'node:assert/strict';
import path from 'node:path';
import { validateDir } from '../../src/labs/definition/readLabs.js';
import { fillChecks, resolveChecks } from '../../src/labs/definition/checks.js';
import { checkProgram } from '../../src/labs/checks/checkProgram.js';
import { agsScore as scoreForChecks, checkScore, checkWeights } from '../../src/labs/score.js';
import { RateLimiter } from '../../src/labs/checks/RateLimiter.js';
import { cutBytes, outputExcerpt } from '../../src/labs/checks/CheckRunner.js';
import { TooManyRequests, httpStatusFor } from '../../src/errors.js';
import type { LabChecks } from '../../src/labs/contracts.js';

const lab = (steps: Array<{ id: string; checks: number[] }>, maxScore = 100): Pick<LabChecks, 'steps' | 'maxScore'> => ({
  maxScore,
  steps: steps.map((s) => ({
    stepId: s.id,
    checks: s.checks.map((w, index) => ({ index, machine: 'box', command: 'true', timeoutSeconds: 5, weight: w })),
  })),
});

describe('checks: score from passed checks', () => {
  it('weighs each check by its own weight (a step is worth its checks)', () => {
    const w = checkWeights(lab([{ id: 'a', checks: [1] }, { id: 'b', checks: [0.5, 1.5] }]));
    assert.deepEqual([...w], [['a/0', 1], ['b/0', 0.5], ['b/1', 1.5]]);
  });

  it('is the sum of passed weights over the maximum, on the lab scale, complete only when all pass', () => {
    const l = lab([{ id: 'a', checks: [1] }, { id: 'b', checks: [0.5, 1.5] }], 10);
    assert.deepEqual(checkScore(l, new Set()), { passed: 0, total: 3, weight: 0, maxWeight: 3, scoreGiven: 0, scoreMaximum: 10, complete: false });
    const some = checkScore(l, new Set(['a/0', 'b/1']));
    assert.equal(some.scoreGiven, 8.333);
    assert.equal(some.complete, false);
    assert.deepEqual(scoreForChecks(some), { scoreGiven: 8.333, scoreMaximum: 10, activityProgress: 'InProgress', gradingProgress: 'FullyGraded' });
    const all = checkScore(l, new Set(['a/0', 'b/0', 'b/1', 'zz/9']));
    assert.equal(all.scoreGiven, 10);
    assert.deepEqual(scoreForChecks(all), { scoreGiven: 10, scoreMaximum: 10, activityProgress: 'Completed', gradingProgress: 'FullyGraded' });
  });

  it('counts checks equally when every weight is zero', () => {
    const l = lab([{ id: 'a', checks: [0] }, { id: 'b', checks: [0] }]);
    assert.equal(checkScore(l, new Set(['a/0'])).scoreGiven, 50);
  });
});

describe('checks: output limits', () => {
  it('cuts at a byte limit without splitting a character', () => {
    assert.deepEqual(cutBytes('abc', 3), { text: 'abc', cut: false });
    assert.deepEqual(cutBytes('aé', 2), { text: 'a', cut: true });
    assert.equal(Buffer.byteLength(cutBytes('x'.repeat(5_000_000), 65536).text), 65536);
  });

  it('keeps stdout then stderr for the teacher, notes a cut and a timeout', () => {
    assert.equal(outputExcerpt({ stdout: 'out', stderr: 'err', truncated: false, timedOut: false }, 100, 5), 'out\n[stderr]\nerr');
    assert.equal(outputExcerpt({ stdout: 'y\n'.repeat(100), stderr: '', truncated: true, timedOut: false }, 10, 5), `${'y\n'.repeat(5)}\n[output cut]`);
    assert.equal(outputExcerpt({ stdout: '', stderr: '', truncated: false, timedOut: true }, 10, 7), 'timed out after 7 s\n');
  });
});

describe('checks: per-user rate limit', () => {
  it('allows max runs per window and then refuses with 429 and the seconds to wait', () => {
    let t = 0;
    const rl = new RateLimiter(2, 60_000, () => t);
    rl.take('u1');
    t = 10_000;
    rl.take('u1');
    rl.take('u2');
    t = 20_000;
    assert.throws(() => rl.take('u1'), (e: unknown) => {
      assert.ok(e instanceof TooManyRequests);
      assert.equal(httpStatusFor(e), 429);
      assert.equal(e.retryAfterSeconds, 40);
      assert.equal(e.publicMessage, 'Too many checks: at most 2 per 60 s. Try again in 40 s.');
      return true;
    });
    t = 60_001;
    rl.take('u1');
  });
});

describe('checks: from the lab definition', () => {
  it('resolves the linux-basics example: one machine filled in, scripts replaced by their content, steps in instruction order', async () => {
    const r = await validateDir(path.resolve('templates'), 'templates');
    const l = r.labs.find((x) => x.id === 'linux-basics');
    assert.ok(l);
    const lc = resolveChecks(l.def, l.steps.map((s) => s.id), (p) => l.files.get(p));
    assert.equal(lc.mode, 'checks');
    assert.deepEqual(lc.steps.map((s) => s.stepId), l.steps.map((s) => s.id));
    for (const s of lc.steps) for (const c of s.checks) assert.equal(c.machine, 'box');
    const running = lc.steps.find((s) => s.stepId === 'start-process')?.checks[0];
    assert.equal(running?.script, 'checks/sleeper-running.sh');
    assert.match(running?.command ?? '', /^#!\/bin\/sh\n/);
    assert.equal(running?.timeoutSeconds, 30);
  });

  it('fills in hints for one instance, passes values to commands as environment variables, and leaves scripts as they are', async () => {
    const r = await validateDir(path.resolve('templates'), 'templates');
    const l = r.labs.find((x) => x.id === 'two-host-network');
    assert.ok(l);
    const lc = fillChecks(resolveChecks(l.def, l.steps.map((s) => s.id), (p) => l.files.get(p)), { 'machines.beta.ip': '10.10.0.12' });
    const find = lc.steps.find((s) => s.stepId === 'find-address')?.checks[0];
    assert.equal(find?.machine, 'alpha');
    assert.match(find?.command ?? '', /grep -qx "\$\{LAB_MACHINES_BETA_IP\}" \/tmp\/beta-address/);
    assert.equal(find?.env?.LAB_MACHINES_BETA_IP, '10.10.0.12');
    assert.deepEqual(checkProgram({ command: 'echo {{x}}', script: 'checks/a.sh' }, { x: 'y' }), { command: 'echo {{x}}', env: { LAB_X: 'y' } });
});
});
