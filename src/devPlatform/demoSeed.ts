/**
 * Demo start-up: one activity per catalog lab in the demo course, so "Launch as student" works on
 * the first click (a teacher can still add more through deep linking). Idempotent: the resource
 * link id is derived from the lab id, and an existing activity is left as it is.
 */
import type { LabSummary } from '../labs/contracts.js';
import { DevPlatformActivity } from './models.js';
import type { DevPlatform } from './context.js';

export async function seedDemoCourse(dp: DevPlatform, clientId: string, labs: LabSummary[]): Promise<string[]> {
  const created: string[] = [];
  for (const lab of labs) {
    const id = `demo-${lab.id}`.slice(0, 64);
    if (await DevPlatformActivity.exists({ _id: id })) continue;
    await dp.createActivity({
      id,
      clientId,
      title: lab.title,
      custom: { lab_id: lab.id, time_limit_minutes: String(lab.lifetime.maxMinutes), max_score: String(lab.grading.maxScore) },
      lineItem: { label: lab.title, scoreMaximum: lab.grading.maxScore, resourceId: lab.id, tag: 'lab' },
    });
    created.push(id);
  }
  return created;
}
