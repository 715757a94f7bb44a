/**
 * The one scoring rule for both grading modes, always computed on the server from stored state
 * (ticked steps, or passed checks) and the lab definition's weights — never from a number the
 * browser sends: the weights of the items done over the sum of all weights, on the lab's scale
 * (0..maxScore), rounded to 3 decimals. No weights at all: every item counts the same.
 * This module owns the score type the grade outbox publishes (ScoreInput).
 */

/** What steps mode scores: the lab's steps with their weights, and its scale. */
export interface StepsToScore {
  grading: { maxScore: number };
  steps: ReadonlyArray<{ id: string; weight: number }>;
}

/** What checks mode scores: each step's checks with their weights, and the lab's scale. */
export interface ChecksToScore {
  maxScore: number;
  steps: ReadonlyArray<{ stepId: string; checks: ReadonlyArray<{ index: number; weight: number }> }>;
}

export const ACTIVITY_PROGRESS = ['Initialized', 'Started', 'InProgress', 'Submitted', 'Completed'] as const;
export const GRADING_PROGRESS = ['FullyGraded', 'Pending', 'PendingManual', 'Failed', 'NotReady'] as const;

/** An AGS score as the tool publishes it; the outbox adds userId and timestamp. */
export interface ScoreInput {
  scoreGiven?: number;
  scoreMaximum?: number;
  activityProgress: (typeof ACTIVITY_PROGRESS)[number];
  gradingProgress: (typeof GRADING_PROGRESS)[number];
  comment?: string;
}

/** Where scores go (the grade outbox): labs publish through this port and never know about LTI. */
export interface ScorePublisher {
  publish(instanceId: string, score: ScoreInput): Promise<unknown>;
}

export interface WeightedScore {
  /** Items done, and all items. */
  done: number;
  total: number;
  weight: number;
  maxWeight: number;
  /** On the lab's grading scale (0..maxScore). */
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

/**
 * The AGS score: every score stands as given (`FullyGraded`), with `activityProgress` InProgress
 * until every item is done, then Completed. Platforms such as Moodle store no grade for any other
 * gradingProgress, so a partial score sent as Pending would show as "-" in the gradebook.
 */
export function agsScore(s: Pick<WeightedScore, 'scoreGiven' | 'scoreMaximum' | 'complete'>): ScoreInput {
  return { scoreGiven: s.scoreGiven, scoreMaximum: s.scoreMaximum, activityProgress: s.complete ? 'Completed' : 'InProgress', gradingProgress: 'FullyGraded' };
}

// --- grading mode "steps" ------------------------------------------------------------------------

/** A weighted score whose items are the lab's steps (`ticked` of `total`). */
export type StepScore = Omit<WeightedScore, 'done'> & { ticked: number };

export function stepScore(grading: StepsToScore['grading'], steps: StepsToScore['steps'], ticks: Record<string, unknown>): StepScore {
  const w = weightedScore(steps.map((st) => ({ weight: st.weight, done: ticks[st.id] !== undefined && ticks[st.id] !== null })), grading.maxScore);
  return { ticked: w.done, total: w.total, weight: w.weight, maxWeight: w.maxWeight, scoreGiven: w.scoreGiven, scoreMaximum: w.scoreMaximum, complete: w.complete };
}

// --- grading mode "checks": a step is worth the weights of its checks -----------------------------

/** A weighted score whose items are the lab's checks (`passed` of `total`). */
export type CheckScore = Omit<WeightedScore, 'done'> & { passed: number };

export const checkKey = (stepId: string, index: number): string => `${stepId}/${index}`;

/** The weight of each check (key `${stepId}/${index}`). */
export function checkWeights(lc: Pick<ChecksToScore, 'steps'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of lc.steps) for (const c of s.checks) out.set(checkKey(s.stepId, c.index), Number.isFinite(c.weight) && c.weight > 0 ? c.weight : 0);
  return out;
}

/** passed: keys `${stepId}/${index}` of the checks that have passed (ever). */
export function checkScore(lc: ChecksToScore, passed: ReadonlySet<string>): CheckScore {
  const w = weightedScore([...checkWeights(lc)].map(([k, weight]) => ({ weight, done: passed.has(k) })), lc.maxScore);
  return { passed: w.done, total: w.total, weight: w.weight, maxWeight: w.maxWeight, scoreGiven: w.scoreGiven, scoreMaximum: w.scoreMaximum, complete: w.complete };
}
