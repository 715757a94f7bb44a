/**
 * The score of a lab graded by checks, always computed on the server from stored results. Each
 * step is worth its step weight, shared among its checks by their own weights; the score is the
 * sum of the weights of passed checks over the sum of all, on the lab's scale (0..maxScore).
 */
import type { LabChecks } from '../contracts.js';
import type { ScoreInput } from '../../lti/grades/types.js';

export interface CheckScore {
  passed: number;
  total: number;
  weight: number;
  maxWeight: number;
  /** On the lab's grading scale (0..maxScore), rounded to 3 decimals. */
  scoreGiven: number;
  scoreMaximum: number;
  complete: boolean;
}

export const checkKey = (stepId: string, index: number): string => `${stepId}/${index}`;

/** Effective weight of each check (key `${stepId}/${index}`). */
export function checkWeights(lc: Pick<LabChecks, 'steps'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of lc.steps) {
    const stepWeight = Number.isFinite(s.weight) && s.weight > 0 ? s.weight : 0;
    const own = s.checks.reduce((n, c) => n + (c.weight > 0 ? c.weight : 0), 0);
    for (const c of s.checks) {
      // all checks of a step weighted 0: they share the step equally
      const share = own > 0 ? (c.weight > 0 ? c.weight : 0) / own : 1 / s.checks.length;
      out.set(checkKey(s.stepId, c.index), stepWeight * share);
    }
  }
  return out;
}

/** passed: keys `${stepId}/${index}` of the checks that have passed (ever). */
export function checkScore(lc: Pick<LabChecks, 'steps' | 'maxScore'>, passed: ReadonlySet<string>): CheckScore {
  const weights = checkWeights(lc);
  let weight = 0;
  let maxWeight = 0;
  let n = 0;
  for (const [k, w] of weights) {
    maxWeight += w;
    if (passed.has(k)) {
      weight += w;
      n++;
    }
  }
  const total = weights.size;
  const scoreMaximum = lc.maxScore > 0 ? lc.maxScore : 1;
  const fraction = maxWeight > 0 ? weight / maxWeight : total ? n / total : 0;
  return {
    passed: n, total, weight, maxWeight,
    scoreGiven: Math.round(fraction * scoreMaximum * 1000) / 1000,
    scoreMaximum,
    complete: total > 0 && n === total,
  };
}

/** The AGS score: InProgress/Pending until every check has passed, then Completed/FullyGraded (as in steps mode). */
export function scoreForChecks(s: CheckScore): ScoreInput {
  return s.complete
    ? { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: 'Completed', gradingProgress: 'FullyGraded' }
    : { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: 'InProgress', gradingProgress: 'Pending' };
}
