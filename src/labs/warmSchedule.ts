/**
 * Scheduling a warm session: a teacher of the course names an activity of that course, a start
 * time, how many students to expect (default: the course roster's learners) and how long the
 * session lasts. The number is capped by what the backend could ever run of that lab at once.
 */
import type { LabBackend } from '../backends/types.js';
import { BadRequest, NotFound } from '../errors.js';
import { Activity } from '../store/Activity.js';
import { createWarmSession, type WarmSessionDoc } from '../store/WarmSession.js';
import type { LabDefinitions } from './contracts.js';
import { labsAtMost } from './warmCapacity.js';

/** Never more labs for one session than this, whatever the capacity. */
export const MAX_EXPECTED = 500;
export const DEFAULT_DURATION_MINUTES = 90;

export interface ScheduleInput {
  contextId: string;
  activityId: string;
  createdBy: string;
  startsAt: unknown;
  expected?: unknown;
  durationMinutes?: unknown;
}

export interface ScheduleDeps {
  labs: LabDefinitions;
  backend: Pick<LabBackend, 'capacity'>;
  /** The course's learners (NRPS), or null when the platform offers no roster. */
  learners?: (contextId: string) => Promise<unknown[] | null>;
  now?: () => Date;
}

function wholeNumber(v: unknown, what: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new BadRequest(`${what} must be a whole number from ${min} to ${max}`);
  return n;
}

export async function scheduleWarmSession(i: ScheduleInput, d: ScheduleDeps): Promise<WarmSessionDoc & { requested: number }> {
  const activity = await Activity.findById(i.activityId).lean();
  if (!activity || activity.contextKey !== i.contextId) throw new NotFound(`activity ${i.activityId} not in course ${i.contextId}`, { publicMessage: 'This activity is not part of this course.' });
  if (!activity.labId) throw new BadRequest('activity without lab', { publicMessage: 'This activity has no lab selected yet.' });
  const lab = await d.labs.latest(activity.labId);
  if (!lab) throw new NotFound(`lab ${activity.labId} not found`, { publicMessage: `The lab "${activity.labId}" of this activity is no longer available.` });
  const startsAt = typeof i.startsAt === 'string' ? new Date(i.startsAt) : undefined;
  if (!startsAt || Number.isNaN(startsAt.getTime())) throw new BadRequest('startsAt must be a date and time (ISO 8601)');
  const duration = wholeNumber(i.durationMinutes, 'durationMinutes', 5, 24 * 60) ?? DEFAULT_DURATION_MINUTES;
  const endsAt = new Date(startsAt.getTime() + duration * 60_000);
  if (endsAt.getTime() <= (d.now?.() ?? new Date()).getTime()) throw new BadRequest('the session is already over', { publicMessage: 'This session would already be over: choose a later start.' });
  let requested = wholeNumber(i.expected, 'expected', 1, MAX_EXPECTED);
  if (requested === undefined) {
    const roster = d.learners ? await d.learners(i.contextId).catch(() => null) : null;
    if (!roster?.length) throw new BadRequest('no roster', { publicMessage: 'The course roster is not available: say how many students to expect.' });
    requested = Math.min(roster.length, MAX_EXPECTED);
  }
  const expected = Math.min(requested, labsAtMost(d.backend.capacity(), lab));
  if (expected < 1) throw new BadRequest('no capacity', { publicMessage: 'This server cannot run this lab at all (capacity).' });
  const doc = await createWarmSession({ contextId: i.contextId, activityId: activity._id, labId: lab.id, startsAt, endsAt, expected, createdBy: i.createdBy });
  return { ...doc, requested };
}
