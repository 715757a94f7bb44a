/**
 * One scoring rule for both grading modes, always computed on the server: the weights of the items
 * done (ticked steps, or passed checks) over the sum of all weights, on the lab's scale
 * (0..maxScore), rounded to 3 decimals. No weights at all: every item counts the same.
 */
import type { ScoreInput } from '../lti/grades/types.js';

export interface WeightedScore {
  /** Items done, and all items. */
  done: number;
  total: number;
  weight: number;
  maxWeight: number;
  scoreGiven: number;
  scoreMaximum: number;
  complete: boolean;
}

export function weightedScore(items: Iterable<{ weight: number; done: boolean }>, maxScore: number): WeightedScore {
  let weight = 0;
  let maxWeight = 0;
  let done = 0;
  let total = 0;
  for (const it of items) {
    const w = Number.isFinite(it.weight) && it.weight > 0 ? it.weight : 0;
    total++;
    maxWeight += w;
    if (it.done) {
      done++;
      weight += w;
    }
  }
  const scoreMaximum = maxScore > 0 ? maxScore : 1;
  const fraction = maxWeight > 0 ? weight / maxWeight : total ? done / total : 0;
  return { done, total, weight, maxWeight, scoreGiven: Math.round(fraction * scoreMaximum * 1000) / 1000, scoreMaximum, complete: total > 0 && done === total };
}

/** The AGS score: InProgress/Pending until every item is done, then Completed/FullyGraded. */
export function agsScore(s: Pick<WeightedScore, 'scoreGiven' | 'scoreMaximum' | 'complete'>): ScoreInput {
  return s.complete
    ? { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: 'Completed', gradingProgress: 'FullyGraded' }
    : { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: 'InProgress', gradingProgress: 'Pending' };
}
