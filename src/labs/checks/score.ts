/**
 * The score of a lab graded by checks, always computed on the server from stored results: the
 * weights of the passed checks over the sum of all check weights, on the lab's scale
 * (0..maxScore). A step is worth the weights of its checks (templates/README.md).
 */
import type { LabChecks } from '../contracts.js';
import type { ScoreInput } from '../../lti/grades/types.js';
import { agsScore, weightedScore } from '../weightedScore.js';

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

/** The weight of each check (key `${stepId}/${index}`). */
export function checkWeights(lc: Pick<LabChecks, 'steps'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of lc.steps) for (const c of s.checks) out.set(checkKey(s.stepId, c.index), Number.isFinite(c.weight) && c.weight > 0 ? c.weight : 0);
  return out;
}

/** passed: keys `${stepId}/${index}` of the checks that have passed (ever). */
export function checkScore(lc: Pick<LabChecks, 'steps' | 'maxScore'>, passed: ReadonlySet<string>): CheckScore {
  const w = weightedScore([...checkWeights(lc)].map(([k, weight]) => ({ weight, done: passed.has(k) })), lc.maxScore);
  return { passed: w.done, total: w.total, weight: w.weight, maxWeight: w.maxWeight, scoreGiven: w.scoreGiven, scoreMaximum: w.scoreMaximum, complete: w.complete };
}

/** The AGS score: InProgress/Pending until every check has passed, then Completed/FullyGraded (as in steps mode). */
export const scoreForChecks: (s: CheckScore) => ScoreInput = agsScore;
