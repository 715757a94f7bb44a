/**
 * The score of a lab graded by steps, always computed on the server from the instance's stored
 * ticks and the lab definition's weights — never from a number the browser sends.
 */
import type { RenderedInstructions } from './contracts.js';
import type { ScoreInput } from '../lti/grades/types.js';

export interface StepScore {
  /** Steps of the lab that are ticked. */
  ticked: number;
  total: number;
  /** Sum of ticked weights and of all weights. */
  weight: number;
  maxWeight: number;
  /** On the lab's grading scale (0..maxScore). */
  scoreGiven: number;
  scoreMaximum: number;
  complete: boolean;
}

export function stepScore(grading: RenderedInstructions['grading'], steps: RenderedInstructions['steps'], ticks: Record<string, unknown>): StepScore {
  let weight = 0;
  let maxWeight = 0;
  let ticked = 0;
  for (const s of steps) {
    const w = Number.isFinite(s.weight) && s.weight > 0 ? s.weight : 0;
    maxWeight += w;
    if (ticks[s.id] !== undefined && ticks[s.id] !== null) {
      ticked++;
      weight += w;
    }
  }
  const scoreMaximum = grading.maxScore > 0 ? grading.maxScore : 1;
  // no weights at all: every step counts the same
  const fraction = maxWeight > 0 ? weight / maxWeight : steps.length ? ticked / steps.length : 0;
  const scoreGiven = Math.round(fraction * scoreMaximum * 1000) / 1000;
  return { ticked, total: steps.length, weight, maxWeight, scoreGiven, scoreMaximum, complete: steps.length > 0 && ticked === steps.length };
}

/** The AGS score for a step state: InProgress/Pending until the last step, then Completed/FullyGraded. */
export function scoreForSteps(s: StepScore): ScoreInput {
  return s.complete
    ? { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: 'Completed', gradingProgress: 'FullyGraded' }
    : { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: 'InProgress', gradingProgress: 'Pending' };
}
