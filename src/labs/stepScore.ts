/**
 * The score of a lab graded by steps, always computed on the server from the instance's stored
 * ticks and the lab definition's weights — never from a number the browser sends.
 */
import type { RenderedInstructions } from './contracts.js';
import type { ScoreInput } from '../lti/grades/types.js';
import { agsScore, weightedScore } from './weightedScore.js';

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
  const w = weightedScore(steps.map((st) => ({ weight: st.weight, done: ticks[st.id] !== undefined && ticks[st.id] !== null })), grading.maxScore);
  return { ticked: w.done, total: w.total, weight: w.weight, maxWeight: w.maxWeight, scoreGiven: w.scoreGiven, scoreMaximum: w.scoreMaximum, complete: w.complete };
}

/** The AGS score for a step state: InProgress/Pending until the last step, then Completed/FullyGraded. */
export const scoreForSteps: (s: StepScore) => ScoreInput = agsScore;
