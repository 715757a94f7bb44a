/**
 * A platform's usage for its administrators and the operator: its courses (from the activities
 * its launches created), and per course the labs by state and the launches of the last
 * LAUNCH_LOG_DAYS days. Reads only the given platform's rows: who may ask for which platform is
 * decided by auth/tenancy.ts before.
 */
import { Activity } from './Activity.js';
import { LabInstance, type InstanceState } from './LabInstance.js';
import { LaunchLog } from './LaunchLog.js';

export interface CourseUsage {
  /** Our course key (what sessions and the course page use). */
  course: string;
  title: string;
  activities: number;
  /** Lab instances by state (running, paused, stopped, …). */
  labs: Partial<Record<InstanceState, number>>;
  launches: number;
}

export interface PlatformUsage {
  courses: CourseUsage[];
  totals: { activities: number; labs: Partial<Record<InstanceState, number>>; launches: number };
}

export async function platformUsage(p: { _id: string; issuer: string; clientId: string }): Promise<PlatformUsage> {
  const activities = await Activity.find({ issuer: p.issuer, clientId: p.clientId }, { _id: 1, contextKey: 1, contextTitle: 1 }).lean();
  const byCourse = new Map<string, CourseUsage>();
  for (const a of activities) {
    const c = byCourse.get(a.contextKey) ?? { course: a.contextKey, title: '', activities: 0, labs: {}, launches: 0 };
    c.activities++;
    c.title ||= a.contextTitle;
    byCourse.set(a.contextKey, c);
  }
  const activityIds = activities.map((a) => a._id);
  const [instances, launches] = await Promise.all([
    activityIds.length
      ? LabInstance.aggregate<{ _id: { course: string; state: InstanceState }; n: number }>([
        { $match: { activityId: { $in: activityIds } } },
        { $group: { _id: { course: '$contextId', state: '$state' }, n: { $sum: 1 } } },
      ])
      : Promise.resolve([]),
    LaunchLog.aggregate<{ _id: string; n: number }>([{ $match: { platformId: p._id } }, { $group: { _id: '$contextKey', n: { $sum: 1 } } }]),
  ]);
  for (const i of instances) {
    const c = byCourse.get(i._id.course);
    if (c) c.labs[i._id.state] = (c.labs[i._id.state] ?? 0) + i.n;
  }
  for (const l of launches) {
    const c = byCourse.get(l._id);
    if (c) c.launches += l.n;
  }
  const courses = [...byCourse.values()].sort((a, b) => a.title.localeCompare(b.title) || a.course.localeCompare(b.course));
  const totals = { activities: activities.length, labs: {} as Partial<Record<InstanceState, number>>, launches: courses.reduce((n, c) => n + c.launches, 0) };
  for (const c of courses) for (const [s, n] of Object.entries(c.labs) as Array<[InstanceState, number]>) totals.labs[s] = (totals.labs[s] ?? 0) + n;
  return { courses, totals };
}
