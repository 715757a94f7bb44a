/**
 * A course's roster for teacher views: the NRPS memberships URL stored from the course's launches,
 * read with our token for that platform, each member matched to our user id when they have launched.
 */
import { NotFound } from '../errors.js';
import { Activity } from '../store/Activity.js';
import { User } from '../store/User.js';
import type { AccessTokens } from './grades/AccessTokens.js';
import { readRoster, type RosterMember } from './nrps.js';

export interface CourseRoster {
  context: { id: string; label?: string; title?: string } | undefined;
  members: Array<RosterMember & { /** Our user id, or null if they never launched the tool. */ ourUserId: string | null }>;
}

/** The roster of course `contextKey` (our course key). NotFound when no launch of it carried an NRPS claim. */
export async function courseRoster(contextKey: string, tokens: AccessTokens): Promise<CourseRoster> {
  const activity = await Activity.findOne({ contextKey, membershipsUrl: { $ne: null } }).sort({ updatedAt: -1 }).lean();
  if (!activity?.membershipsUrl) throw new NotFound(`no NRPS service known for course ${contextKey}`, { publicMessage: 'The LMS did not offer the course roster for this course.' });
  const roster = await readRoster({ platform: { issuer: activity.issuer, clientId: activity.clientId }, membershipsUrl: activity.membershipsUrl, tokens });
  const users = await User.find({ issuer: activity.issuer, sub: { $in: roster.members.map((m) => m.userId) } }, { sub: 1 }).lean();
  const bySub = new Map(users.map((u) => [u.sub, u._id]));
  return { context: roster.context, members: roster.members.map((m) => ({ ...m, ourUserId: bySub.get(m.userId) ?? null })) };
}

/** A learner of a course as teacher views list them. */
export interface CourseLearner {
  /** Our user id, or null if they never launched the tool. */
  userId: string | null;
  name: string;
}

const ROSTER_TTL_MS = 10 * 60_000;

/**
 * The learners of each course from NRPS, cached per course (in this process) so the teacher's
 * overview does not call the platform on every refresh; a teacher's launch refreshes it. No NRPS
 * for the course, or the platform failing: null, and the overview lists only labs started.
 */
export class CourseRosterCache {
  private readonly cache = new Map<string, { at: number; learners: Promise<CourseLearner[] | null> }>();

  constructor(private readonly tokens: AccessTokens, private readonly now: () => number = Date.now) {}

  /** The course's learners, from the cache while it is fresh. */
  learners(contextKey: string): Promise<CourseLearner[] | null> {
    const hit = this.cache.get(contextKey);
    if (hit && this.now() - hit.at < ROSTER_TTL_MS) return hit.learners;
    return this.refresh(contextKey);
  }

  /** Read the roster again now (a teacher launched). */
  refresh(contextKey: string): Promise<CourseLearner[] | null> {
    const learners = courseRoster(contextKey, this.tokens).then(
      (r) => r.members.filter((m) => m.role === 'learner' && m.status !== 'Inactive' && m.status !== 'Deleted').map((m) => ({ userId: m.ourUserId, name: m.name || [m.givenName, m.familyName].filter(Boolean).join(' ') || m.userId })),
      () => null,
    );
    this.cache.set(contextKey, { at: this.now(), learners });
    return learners;
  }
}
