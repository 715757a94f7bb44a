/**
 * A verified resource-link launch → our user, the activity, the user's lab instance → a session
 * and a redirect: learners to `/lab/<instanceId>#session=…`, instructors and administrators to
 * `/course/<contextKey>#session=…`. The session token travels in the URL fragment (never sent to
 * a server, never logged).
 */
import type { Logger } from '../logger.js';
import type { SessionTokens } from '../auth/session.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import { Conflict, NotFound } from '../errors.js';
import { upsertUser } from '../store/User.js';
import { upsertActivity, GRADING_MODES, type ActivitySettings, type GradingMode } from '../store/Activity.js';
import { CLAIM, mapRoles, obj, str } from './claims.js';
import type { VerifiedLaunch } from './verifyIdToken.js';
import type { UserAndPlatformLimit } from '../rateLimits.js';

export interface LaunchDeps {
  labs: LabDefinitions;
  runtime: LabRuntime;
  sessions: SessionTokens;
  log: Logger;
  /** Launches per user and per platform (counted before anything is written). */
  limit?: UserAndPlatformLimit;
}

function positiveNumber(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : null;
}

/** Activity settings from the custom parameters deep linking put on the link. */
export function settingsFrom(custom: Record<string, unknown>): ActivitySettings {
  const mode = str(custom.grading_mode);
  return {
    timeLimitMinutes: positiveNumber(custom.time_limit_minutes),
    maxScore: positiveNumber(custom.max_score),
    gradingMode: (GRADING_MODES as readonly string[]).includes(mode) ? (mode as GradingMode) : null,
  };
}

export function displayName(c: Record<string, unknown>): string {
  return str(c.name) || [str(c.given_name), str(c.family_name)].filter(Boolean).join(' ') || 'Unnamed user';
}

/** Handle the launch; returns the URL to redirect to. */
export async function launch(v: VerifiedLaunch, d: LaunchDeps): Promise<string> {
  const c = v.claims;
  d.limit?.take(v.sub, v.platform._id);
  const role = mapRoles(c[CLAIM.roles]);
  const user = await upsertUser({ issuer: v.platform.issuer, sub: v.sub, name: displayName(c), email: str(c.email) || null, role });
  const link = obj(c[CLAIM.resourceLink]);
  const context = obj(c[CLAIM.context]);
  const custom = obj(c[CLAIM.custom]);
  const ags = obj(c[CLAIM.ags]);
  const nrps = obj(c[CLAIM.nrps]);
  const resourceLinkId = str(link.id);
  const activity = await upsertActivity(
    { issuer: v.platform.issuer, clientId: v.platform.clientId, deploymentId: v.deploymentId, contextId: str(context.id) || `link:${resourceLinkId}`, resourceLinkId },
    {
      contextTitle: str(context.title) || str(context.label),
      title: str(link.title),
      labId: str(custom.lab_id) || null,
      settings: settingsFrom(custom),
      lineItemUrl: str(ags.lineitem) || null,
      lineItemsUrl: str(ags.lineitems) || null,
      agsScopes: Array.isArray(ags.scope) ? ags.scope.filter((s): s is string => typeof s === 'string') : [],
      membershipsUrl: str(nrps.context_memberships_url) || null,
    },
  );
  const log = d.log.child({ activity: activity._id, user: user._id, role });
  const base = { userId: user._id, role, contextId: activity.contextKey, activityId: activity._id, name: user.name, platformId: v.platform._id };
  if (role !== 'learner') {
    log.info('lti.launch_instructor');
    return `/course/${encodeURIComponent(activity.contextKey)}#session=${await d.sessions.issue(base)}`;
  }
  if (!activity.labId) {
    throw new Conflict('activity without lab_id', { publicMessage: 'This activity has no lab selected yet. Ask your teacher to choose one (activity settings → Select content).' });
  }
  const lab = await d.labs.latest(activity.labId);
  if (!lab) throw new NotFound(`lab ${activity.labId} not found`, { publicMessage: `The lab "${activity.labId}" of this activity is no longer available. Ask your teacher.` });
  const inst = await d.runtime.ensureInstance({
    activityId: activity._id, userId: user._id, contextId: activity.contextKey, labId: lab.id, labVersion: lab.version,
    timeLimitMinutes: activity.settings?.timeLimitMinutes ?? null,
  });
  await d.runtime.start(inst._id);
  log.info({ instance: inst._id, lab: lab.id, version: inst.labVersion }, 'lti.launch');
  return `/lab/${encodeURIComponent(inst._id)}#session=${await d.sessions.issue({ ...base, instanceId: inst._id })}`;
}
