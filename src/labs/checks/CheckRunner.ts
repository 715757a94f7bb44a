/**
 * Runs a lab's automatic checks on its machines through LabRuntime.exec (out of band: never on
 * the student's console) and turns the results into a grade.
 *
 * - On demand: a student presses "Check" on a step → run(). Rate-limited per user; concurrent
 *   presses for the same step join the run in progress; runs of one instance never overlap (a
 *   second step waits for the first).
 * - In the background, every `grading.checkEverySeconds` for running labs that ask for it: the
 *   steps not passed yet, skipped while the instance is busy.
 * - Each check: its timeout (a guard timer fires a little later in case the backend does not
 *   honour it), output capped at maxOutputBytes; a timeout is a failure reported as "timed out".
 * - Results go to CheckResult (latest run + first pass), are pushed as LabEvent 'check', counted
 *   in lab_check_runs_total{result}, and in grading mode `checks` a changed score is published
 *   through the grade outbox.
 */
import { AppError, Conflict, NotFound } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { ExecResult } from '../../backends/types.js';
import type { ScorePublisher } from '../score.js';
import { CheckResult, checkResultId, type CheckResultDoc } from '../../store/CheckResult.js';
import { LabInstance, type LabInstanceDoc } from '../../store/LabInstance.js';
import { KeyedMutex } from '../../KeyedMutex.js';
import { releaseCheckRunLock, takeCheckRunLock } from '../../store/CheckRunLock.js';
import { randomBytes } from 'node:crypto';
import type { CheckOutcome, LabChecks, LabDefinitions, LabRuntime, ResolvedCheck, StepChecks } from '../contracts.js';
import { fillText, flatVariables } from '../definition/prepare.js';
import { checkProgram } from './checkProgram.js';
import { SharedRateLimiter } from './RateLimiter.js';
import type { RateLimit } from '../../rateLimits.js';
import { agsScore, checkKey, checkScore, type CheckScore } from '../score.js';
import { LabCatalogCache } from '../LabCatalogCache.js';

export interface CheckRunnerDeps {
  runtime: LabRuntime;
  labs: LabDefinitions;
  /** Where scores go (GradeService); absent = checks are run and stored but not graded. */
  grades?: ScorePublisher;
  log: Logger;
  metrics?: Metrics;
  /** Per stream (stdout, stderr) cap asked of the backend. */
  maxOutputBytes?: number;
  /** Output kept for the teacher per check. */
  excerptBytes?: number;
  /** On-demand runs per user per minute. */
  ratePerMinute?: number;
  /** "Check" presses of one platform's students, together (background checks do not count). */
  platformLimit?: RateLimit;
  /** How often the background scheduler looks for labs that are due. */
  backgroundTickMs?: number;
  /** Extra time past a check's timeout before the runner gives up on the backend. */
  guardMs?: number;
  /** Background runs only where this is true (with several replicas: the lease holder). Default: always. */
  isLeader?: () => boolean;
  now?: () => number;
}

export interface StepRun {
  stepId: string;
  passed: boolean;
  at: string;
  checks: CheckOutcome[];
  score?: { given: number; max: number; complete: boolean };
}

/** A check's stored result as the teacher sees it (with output and where the check came from). */
export interface TeacherCheckView extends CheckOutcome {
  stepId: string;
  exitCode: number | null;
  output: string;
  runs: number;
}

export interface CheckOverview {
  mode: LabChecks['mode'];
  passed: number;
  total: number;
  score: number;
  maxScore: number;
  complete: boolean;
  /** Passed checks, first pass first. */
  list: Array<{ stepId: string; index: number; passedAt: string }>;
}

export const TIMED_OUT = 'timed out';

/** Cut a string to at most `max` UTF-8 bytes without splitting a character. */
export function cutBytes(s: string, max: number): { text: string; cut: boolean } {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return { text: s, cut: false };
  let end = max;
  while (end > 0 && ((b[end] ?? 0) & 0xc0) === 0x80) end--; // back off a continuation byte
  return { text: b.subarray(0, end).toString('utf8'), cut: true };
}

/** The teacher's excerpt: stdout, then stderr, cut to `max` bytes with a note. */
export function outputExcerpt(r: Pick<ExecResult, 'stdout' | 'stderr' | 'truncated' | 'timedOut'>, max: number, timeoutSeconds: number): string {
  let s = r.stdout;
  if (r.stderr) s += `${s && !s.endsWith('\n') ? '\n' : ''}[stderr]\n${r.stderr}`;
  const c = cutBytes(s, max);
  let out = c.text;
  if (c.cut || r.truncated) out += `\n[output cut]`;
  if (r.timedOut) out = `${TIMED_OUT} after ${timeoutSeconds} s\n${out}`;
  return out;
}

export class CheckRunner {
  private readonly mutex = new KeyedMutex();
  /** Runs queued or in progress, by `${instanceId}/${stepId}`: a second press joins the first. */
  private readonly pending = new Map<string, Promise<StepRun>>();
  /** Instances with a run queued or in progress. */
  private readonly busy = new Map<string, number>();
  private readonly lastBackground = new Map<string, number>();
  /** Per user, across replicas. */
  private readonly limiter: SharedRateLimiter;
  private readonly maxOutput: number;
  private readonly excerpt: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly d: CheckRunnerDeps) {
    this.steps = new LabCatalogCache(d.labs);
    this.limiter = new SharedRateLimiter(d.ratePerMinute ?? 10, 60_000, this.nowFn);
    this.maxOutput = d.maxOutputBytes ?? 64 * 1024;
    this.excerpt = d.excerptBytes ?? 4096;
  }

  private readonly nowFn = (): number => this.d.now?.() ?? Date.now();
  /** Each lab version's steps, to tick a passed one. */
  private readonly steps: LabCatalogCache;
  private readonly processId = randomBytes(6).toString('hex');
  private runSeq = 0;

  private async labChecks(inst: Pick<LabInstanceDoc, 'labId' | 'labVersion'>): Promise<LabChecks> {
    if (!this.d.labs.checks) throw new Conflict('catalog has no checks', { publicMessage: 'Automatic checks are not available here.' });
    return this.d.labs.checks(inst.labId, inst.labVersion);
  }

  /**
   * A student's "Check" on a step of their own lab (the caller has verified ownership). Throws
   * NotFound (no such step / no checks), Conflict (lab not running), TooManyRequests.
   */
  async run(instanceId: string, stepId: string, by: { userId: string; userName?: string; platformId?: string }): Promise<StepRun> {
    const inst = await this.d.runtime.get(instanceId);
    if (!inst) throw new NotFound(`instance ${instanceId} not found`, { publicMessage: 'This lab does not exist.' });
    const lc = await this.labChecks(inst);
    const step = lc.steps.find((s) => s.stepId === stepId);
    if (!step) throw new NotFound(`no checks for step ${stepId}`, { publicMessage: 'This step has no automatic check.' });
    if (inst.state !== 'running') throw new Conflict(`instance ${instanceId} is ${inst.state}`, { publicMessage: `The lab is not running (it is ${inst.state}); start it to check your work.` });
    const key = `${instanceId}/${stepId}`;
    const joined = this.pending.get(key);
    if (joined) return joined;
    // presses arriving while this one is counted (a database round trip) join it and count nothing
    const admitted = (async () => {
      await this.limiter.take(by.userId);
      if (by.platformId) await this.d.platformLimit?.take(by.platformId);
      return this.schedule(instanceId, key, () => this.execute(instanceId, lc, step, by.userName, 'user'));
    })();
    this.pending.set(key, admitted);
    admitted.catch(() => undefined).finally(() => { if (this.pending.get(key) === admitted) this.pending.delete(key); });
    return admitted;
  }

  private schedule(instanceId: string, key: string, fn: () => Promise<StepRun>): Promise<StepRun> {
    this.busy.set(instanceId, (this.busy.get(instanceId) ?? 0) + 1);
    const p = this.mutex.run(instanceId, fn).finally(() => {
      this.pending.delete(key);
      const n = (this.busy.get(instanceId) ?? 1) - 1;
      if (n > 0) this.busy.set(instanceId, n);
      else this.busy.delete(instanceId);
    });
    this.pending.set(key, p);
    return p;
  }

  /** Run every check of one step now (inside the instance's mutex) and record, push and grade the results. */
  private async execute(instanceId: string, lc: LabChecks, step: StepChecks, userName: string | undefined, trigger: 'user' | 'background'): Promise<StepRun> {
    const inst = await this.d.runtime.get(instanceId);
    if (!inst || inst.state !== 'running') throw new Conflict(`instance ${instanceId} is ${inst?.state ?? 'gone'}`, { publicMessage: 'The lab is not running any more.' });
    // across replicas too: the lock outlives the longest this run can take, in case this process dies holding it
    const owner = `${this.processId}:${++this.runSeq}`;
    const maxMs = step.checks.reduce((n, c) => n + c.timeoutSeconds * 1000 + (this.d.guardMs ?? 5000), 0) + 30_000;
    if (!(await takeCheckRunLock(instanceId, owner, new Date(this.nowFn() + maxMs), new Date(this.nowFn())))) {
      throw new Conflict(`check run lock for ${instanceId} is held`, { publicMessage: 'A check is already running for this lab; try again in a moment.' });
    }
    try {
      return await this.executeLocked(inst, lc, step, userName, trigger);
    } finally {
      await releaseCheckRunLock(instanceId, owner).catch((err: unknown) => this.d.log.warn({ err, instance: instanceId }, 'check.lock_release_failed'));
    }
  }

  private async executeLocked(inst: LabInstanceDoc, lc: LabChecks, step: StepChecks, userName: string | undefined, trigger: 'user' | 'background'): Promise<StepRun> {
    const instanceId = inst._id;
    const vars = flatVariables({ user: { name: userName ?? '' }, lab: { title: lc.title }, machines: inst.machines ?? {} });
    const before = new Map((await CheckResult.find({ instanceId }).lean()).map((r) => [checkKey(r.stepId, r.index), r as CheckResultDoc]));
    const log = this.d.log.child({ instance: instanceId, step: step.stepId, trigger });
    const outcomes: CheckOutcome[] = [];
    let newlyPassed = false;
    for (const c of step.checks) {
      const started = this.nowFn();
      const r = await this.execOne(instanceId, c, vars);
      const at = new Date(this.nowFn());
      const prev = before.get(checkKey(step.stepId, c.index));
      const passedAt = prev?.passedAt ?? (r.passed ? at : null);
      if (r.passed && !prev?.passedAt) newlyPassed = true;
      const hint = !r.passed && c.hint ? fillText(c.hint, vars) : null;
      const doc: Omit<CheckResultDoc, '_id' | 'runs'> = {
        instanceId, stepId: step.stepId, index: c.index, machine: c.machine, at, passed: r.passed, timedOut: r.timedOut,
        exitCode: r.exitCode, output: r.output, hint, passedAt, durationMs: this.nowFn() - started,
      };
      await CheckResult.updateOne({ _id: checkResultId(instanceId, step.stepId, c.index) }, { $set: { ...doc, runs: (prev?.runs ?? 0) + 1 } }, { upsert: true });
      this.d.metrics?.checkRuns.inc({ result: r.result });
      log.info({ check: c.index, machine: c.machine, result: r.result, exitCode: r.exitCode, ms: doc.durationMs }, 'check.ran');
      outcomes.push({
        index: c.index, machine: c.machine, passed: r.passed, timedOut: r.timedOut, at: at.toISOString(),
        ...(hint !== null ? { hint } : {}), ...(passedAt ? { passedAt: new Date(passedAt).toISOString() } : {}),
      });
    }
    const passed = outcomes.every((o) => o.passed);
    const at = new Date(this.nowFn()).toISOString();
    const passedKeys = new Set([...before.entries()].filter(([, r]) => r.passedAt).map(([k]) => k));
    for (const o of outcomes) if (o.passedAt) passedKeys.add(checkKey(step.stepId, o.index));
    const score = checkScore(lc, passedKeys);
    if (lc.mode === 'checks' && newlyPassed) await this.publish(instanceId, score, log);
    // a step whose checks all pass is done: ticked here, so it shows ticked even when no page was open
    if (passed) await this.tickPassed(inst, step.stepId, log);
    const firstHint = outcomes.find((o) => !o.passed && o.hint)?.hint;
    const scoreView = lc.mode === 'checks' ? { given: score.scoreGiven, max: score.scoreMaximum, complete: score.complete } : undefined;
    this.d.runtime.emit({
      type: 'check', instanceId, stepId: step.stepId, passed, at, checks: outcomes,
      ...(firstHint ? { hint: firstHint } : {}), ...(scoreView ? { score: scoreView } : {}),
    });
    return { stepId: step.stepId, passed, at, checks: outcomes, ...(scoreView ? { score: scoreView } : {}) };
  }

  private async tickPassed(inst: LabInstanceDoc, stepId: string, log: Logger): Promise<void> {
    if (inst.steps?.[stepId]) return;
    try {
      const lab = await this.steps.steps(inst);
      if (lab.steps.some((s) => s.id === stepId)) await this.d.runtime.tickStep(inst._id, stepId, true, lab);
    } catch (err) {
      // the check result stands; the box is ticked by the page, or by the next pass
      log.warn({ err }, 'check.tick_failed');
    }
  }

  private async publish(instanceId: string, score: CheckScore, log: Logger): Promise<void> {
    if (!this.d.grades) return;
    try {
      await this.d.grades.publish(instanceId, agsScore(score));
      log.info({ score: score.scoreGiven, max: score.scoreMaximum, complete: score.complete }, 'check.grade_queued');
    } catch (err) {
      // the results are kept; a lab launched without a line item simply has no grade to send
      log.info({ err: (err as Error).message }, 'check.grade_not_published');
    }
  }

  /** One check through runtime.exec, never throwing for what happens inside the machine. */
  private async execOne(instanceId: string, c: ResolvedCheck, vars: Record<string, string | undefined>): Promise<{ passed: boolean; timedOut: boolean; exitCode: number | null; output: string; result: 'passed' | 'failed' | 'timed_out' | 'error' }> {
    const exec = this.d.runtime.exec?.bind(this.d.runtime);
    if (!exec) throw new Conflict('runtime has no exec', { publicMessage: 'Automatic checks are not available on this backend.' });
    const timeoutMs = c.timeoutSeconds * 1000;
    let guard: NodeJS.Timeout | undefined;
    const guardFired = new Promise<'guard'>((resolve) => {
      guard = setTimeout(() => resolve('guard'), timeoutMs + (this.d.guardMs ?? 5000));
    });
    try {
      const program = checkProgram(c, vars);
      const r = await Promise.race([exec(instanceId, c.machine, program.command, { timeoutMs, maxOutputBytes: this.maxOutput, env: program.env }), guardFired]);
      if (r === 'guard') return { passed: false, timedOut: true, exitCode: null, output: `${TIMED_OUT} after ${c.timeoutSeconds} s`, result: 'timed_out' };
      // a backend that does not honour the cap still cannot flood the database
      const stdout = cutBytes(r.stdout, this.maxOutput);
      const stderr = cutBytes(r.stderr, this.maxOutput);
      const output = outputExcerpt({ stdout: stdout.text, stderr: stderr.text, truncated: r.truncated || stdout.cut || stderr.cut, timedOut: r.timedOut }, this.excerpt, c.timeoutSeconds);
      if (r.timedOut) return { passed: false, timedOut: true, exitCode: r.exitCode, output, result: 'timed_out' };
      const passed = r.exitCode === 0;
      return { passed, timedOut: false, exitCode: r.exitCode, output, result: passed ? 'passed' : 'failed' };
    } catch (err) {
      // the lab stopped under us, or exec is unavailable: the student sees why, nothing is recorded
      if (err instanceof Conflict) throw err;
      const msg = err instanceof AppError ? err.publicMessage : (err as Error).message;
      this.d.log.warn({ err, instance: instanceId, machine: c.machine }, 'check.exec_failed');
      return { passed: false, timedOut: false, exitCode: null, output: `could not run the check: ${msg}`, result: 'error' };
    } finally {
      clearTimeout(guard);
    }
  }

  /** Results of an instance for the lab page (no output) or the teacher (with output). */
  async results(inst: Pick<LabInstanceDoc, '_id' | 'labId' | 'labVersion'>, o: { teacher?: boolean } = {}): Promise<{
    mode: LabChecks['mode'];
    steps: Record<string, { passed: boolean; at: string | null; checks: Array<CheckOutcome | TeacherCheckView> }>;
    score: { given: number; max: number; complete: boolean; passed: number; total: number };
  }> {
    const lc = await this.labChecks(inst);
    const rows = new Map((await CheckResult.find({ instanceId: inst._id }).lean()).map((r) => [checkKey(r.stepId, r.index), r as CheckResultDoc]));
    const steps: Record<string, { passed: boolean; at: string | null; checks: Array<CheckOutcome | TeacherCheckView> }> = {};
    const passedKeys = new Set<string>();
    for (const s of lc.steps) {
      const checks = s.checks.map((c) => {
        const r = rows.get(checkKey(s.stepId, c.index));
        if (r?.passedAt) passedKeys.add(checkKey(s.stepId, c.index));
        const base: CheckOutcome = {
          index: c.index, machine: c.machine, passed: r?.passed ?? false, timedOut: r?.timedOut ?? false, at: r ? new Date(r.at).toISOString() : '',
          ...(r?.hint && !r.passed ? { hint: r.hint } : {}), ...(r?.passedAt ? { passedAt: new Date(r.passedAt).toISOString() } : {}),
        };
        return o.teacher ? { ...base, stepId: s.stepId, exitCode: r?.exitCode ?? null, output: r?.output ?? '', runs: r?.runs ?? 0 } : base;
      });
      const ran = checks.filter((c) => c.at);
      steps[s.stepId] = {
        passed: ran.length === checks.length && checks.every((c) => c.passed),
        at: ran.length ? ran.map((c) => c.at).sort().at(-1) ?? null : null,
        checks,
      };
    }
    const sc = checkScore(lc, passedKeys);
    return { mode: lc.mode, steps, score: { given: sc.scoreGiven, max: sc.scoreMaximum, complete: sc.complete, passed: sc.passed, total: sc.total } };
  }

  /** For the teacher's overview: per instance, which checks passed and when. */
  async passedByInstance(instanceIds: string[]): Promise<Map<string, Array<{ stepId: string; index: number; passedAt: string }>>> {
    const out = new Map<string, Array<{ stepId: string; index: number; passedAt: string }>>();
    if (!instanceIds.length) return out;
    const rows = await CheckResult.find({ instanceId: { $in: instanceIds }, passedAt: { $ne: null } }, { instanceId: 1, stepId: 1, index: 1, passedAt: 1 }).lean();
    for (const r of rows) {
      if (!r.passedAt) continue;
      const list = out.get(r.instanceId) ?? [];
      list.push({ stepId: r.stepId, index: r.index, passedAt: new Date(r.passedAt).toISOString() });
      out.set(r.instanceId, list);
    }
    return out;
  }

  /** For the teacher's course overview: per instance, score from checks and which passed when (one query for all). */
  async overview(insts: Array<Pick<LabInstanceDoc, '_id' | 'labId' | 'labVersion'>>): Promise<Map<string, CheckOverview>> {
    const out = new Map<string, CheckOverview>();
    const passed = await this.passedByInstance(insts.map((i) => i._id));
    for (const inst of insts) {
      const lc = await this.labChecks(inst).catch(() => undefined);
      if (!lc?.steps.length) continue;
      const list = (passed.get(inst._id) ?? []).filter((p) => lc.steps.some((s) => s.stepId === p.stepId && s.checks.some((c) => c.index === p.index)));
      const sc = checkScore(lc, new Set(list.map((p) => checkKey(p.stepId, p.index))));
      out.set(inst._id, { mode: lc.mode, passed: sc.passed, total: sc.total, score: sc.scoreGiven, maxScore: sc.scoreMaximum, complete: sc.complete, list: list.sort((a, b) => a.passedAt.localeCompare(b.passedAt)) });
    }
    return out;
  }

  // --- background -------------------------------------------------------------------------------

  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().catch((err: unknown) => this.d.log.warn({ err }, 'check.background_failed')).finally(() => { this.ticking = undefined; });
    }, this.d.backgroundTickMs ?? 5000);
    this.timer.unref();
  }

  /** One pass of the background scheduler (exported for tests): runs the not-yet-passed steps of every running lab that is due. */
  async tick(): Promise<void> {
    if (this.d.isLeader && !this.d.isLeader()) return;
    // a prepared lab of a warm session has no student yet: its checks start once it is handed out
    const running = (await LabInstance.find({ state: 'running', warmSession: null }, { labId: 1, labVersion: 1 }).lean()) as Array<Pick<LabInstanceDoc, '_id' | 'labId' | 'labVersion'>>;
    const seen = new Set<string>();
    for (const inst of running) {
      if (this.closed) return;
      seen.add(inst._id);
      const lc = await this.labChecks(inst).catch(() => undefined);
      if (!lc?.checkEverySeconds || this.busy.has(inst._id)) continue;
      const last = this.lastBackground.get(inst._id);
      const now = this.nowFn();
      if (last === undefined) {
        // first sight: wait one period, so a lab that just booted is not checked at once
        this.lastBackground.set(inst._id, now);
        continue;
      }
      if (now - last < lc.checkEverySeconds * 1000) continue;
      this.lastBackground.set(inst._id, now);
      const passed = new Set((await CheckResult.find({ instanceId: inst._id, passedAt: { $ne: null } }, { stepId: 1, index: 1 }).lean()).map((r) => checkKey(r.stepId, r.index)));
      for (const step of lc.steps) {
        if (this.closed) return;
        if (step.checks.every((c) => passed.has(checkKey(step.stepId, c.index)))) continue;
        const key = `${inst._id}/${step.stepId}`;
        if (this.pending.has(key)) continue;
        try {
          await this.schedule(inst._id, key, () => this.execute(inst._id, lc, step, undefined, 'background'));
        } catch (err) {
          if (!(err instanceof Conflict)) this.d.log.warn({ err, instance: inst._id, step: step.stepId }, 'check.background_run_failed');
          break; // the lab stopped: the rest waits for the next period
        }
      }
    }
    for (const id of this.lastBackground.keys()) if (!seen.has(id)) this.lastBackground.delete(id);
  }

  /** Stop the background scheduler and wait for runs in progress. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.allSettled([...this.pending.values()]);
  }
}
