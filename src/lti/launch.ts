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
import { upsertUser, type UserIds } from '../store/User.js';
import { upsertActivity, GRADING_MODES, type ActivityKey, type ActivitySettings, type GradingMode } from '../store/Activity.js';
import { findInstanceById, findInstanceRecord } from '../store/LabInstance.js';
import type { UserDoc } from '../store/User.js';
import type { ActivityDoc } from '../store/Activity.js';
import { recordLaunch } from '../store/LaunchLog.js';
import type { LaunchIds } from './LaunchIds.js';
import { CLAIM, mapRoles, obj, str } from './claims.js';
import type { LabInstanceDoc } from '../store/LabInstance.js';
import type { LoginStateDoc } from '../store/LtiLogin.js';
import type { VerifiedLaunch } from './verifyIdToken.js';
import type { UserAndPlatformLimit } from '../rateLimits.js';
import { isOperatorUser, mayUseLab } from '../auth/tenancy.js';

export interface LaunchDeps {
  labs: LabDefinitions;
  /** Our user ids, derived from (issuer, sub). */
  userIds: UserIds;
  runtime: LabRuntime;
  sessions: SessionTokens;
  log: Logger;
  /** Ids remembered from earlier launches (one per process). */
  ids?: LaunchIds;
  /** Each login key's last learner launch (its instance lookup key), for prefetchAtLogin (one per process). */
  logins?: LaunchIds;
  /** Launches per user and per platform (counted before anything is written). */
  limit?: UserAndPlatformLimit;
  /** OPERATOR_USERS (see auth/tenancy.ts). */
  operators?: ReadonlySet<string>;
  /** A teacher (or administrator) launched in this course: e.g. refresh its roster. */
  onInstructorLaunch?: (contextKey: string) => void;
  /** Runs `task` once the answer is sent (the route's response closed); default: on the next turn of the event loop. */
  afterAnswer?: (task: () => void) => void;
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
    keepDays: positiveNumber(custom.keep_days),
    gradingMode: (GRADING_MODES as readonly string[]).includes(mode) ? (mode as GradingMode) : null,
  };
}

export function displayName(c: Record<string, unknown>): string {
  return str(c.name) || [str(c.given_name), str(c.family_name)].filter(Boolean).join(' ') || 'Unnamed user';
}

/** The user's language from a launch: launch_presentation.locale, else the OIDC `locale` claim. */
export function launchLocale(c: Record<string, unknown>): string | undefined {
  const l = str(obj(c[CLAIM.launchPresentation]).locale) || str(c.locale);
  return l && l.length <= 35 ? l : undefined;
}

const userKey = (issuer: string, sub: string) => `u\n${issuer}\n${sub}`;
const activityKey = (k: ActivityKey) => `a\n${k.issuer}\n${k.clientId}\n${k.deploymentId}\n${k.contextId}\n${k.resourceLinkId}`;
const instanceKey = (activityId: string, userId: string) => `i\n${activityId}\n${userId}`;
/** An instance read's key: the records it was read for (the instance id '' while unknown). */
const lookupKey = (activityId: string, userId: string, instanceId: string | undefined) => `${activityId}\n${userId}\n${instanceId ?? ''}`;
const instanceOfLookup = (key: string): string | undefined => key.split('\n')[2] || undefined;

/** The record remembered as written with these fields, else the write (remembered once done). */
function writeOnce<T>(ids: LaunchIds | undefined, key: string, fields: object, write: () => Promise<T>): Promise<T> {
  const f = JSON.stringify(fields);
  const known = ids?.recent<T>(key, f);
  if (known) return Promise.resolve(known);
  return write().then((doc) => {
    ids?.wrote(key, f, doc);
    return doc;
  });
}

/** What names a launch's records: the platform registration, the deployment and the claims. */
interface LaunchSource {
  issuer: string;
  clientId: string;
  deploymentId: string;
  claims: Record<string, unknown>;
}

/** The user's instance read a launch will wait on, keyed by the records it was read for. */
export interface InstanceLookup {
  key: string;
  found: Promise<LabInstanceDoc | null>;
}

function activityKeyOf(s: LaunchSource): ActivityKey {
  const resourceLinkId = str(obj(s.claims[CLAIM.resourceLink]).id);
  return { issuer: s.issuer, clientId: s.clientId, deploymentId: s.deploymentId, contextId: str(obj(s.claims[CLAIM.context]).id) || `link:${resourceLinkId}`, resourceLinkId };
}

/**
 * The instance read of a learner's launch whose user and activity ids this process remembers, or
 * null (nothing to read before the records are written). `read` false: only the key.
 */
function instanceLookup(s: LaunchSource, ids: LaunchIds | undefined, read: boolean): InstanceLookup | null {
  if (!ids || mapRoles(s.claims[CLAIM.roles]) !== 'learner' || !str(obj(s.claims[CLAIM.custom]).lab_id)) return null;
  const user = ids.get(userKey(s.issuer, str(s.claims.sub)));
  const activity = ids.get(activityKey(activityKeyOf(s)));
  if (!user || !activity) return null;
  const instance = ids.get(instanceKey(activity, user));
  const key = lookupKey(activity, user, instance);
  if (!read) return { key, found: Promise.resolve(null) };
  const found: Promise<LabInstanceDoc | null> = instance ? findInstanceById(instance) : findInstanceRecord(activity, user);
  found.catch(() => undefined); // awaited by the launch that uses it; one that fails first never does
  return { key, found };
}

/** What a login started for its launch: the key the login is known by, and the instance read it named. */
export interface LoginPrefetch {
  loginKey: string;
  instance: InstanceLookup | null;
}

/** What a launch has read ahead: its instance read, and its login's key (to remember the launch by). */
export interface LaunchPrefetch {
  instance: InstanceLookup | null;
  loginKey: string | null;
}

/**
 * A login's key: its platform, deployment, user hint and target. Not lti_message_hint, which
 * Moodle makes new for every launch (it carries a launch id).
 */
function loginKeyOf(login: LoginStateDoc, loginHint: string): string {
  return `l\n${login.issuer}\n${login.clientId ?? ''}\n${login.deploymentId ?? ''}\n${loginHint}\n${login.targetLinkUri}`;
}

/**
 * At a login: the read of the instance that the last learner launch through a login like this one
 * led to (a student clicking the same activity again), started now so that it is done while the
 * platform answers the login. Its result is the record as it was then (at most a few seconds
 * before the launch, see RecentLogins): start() changes a record only by its generation and state,
 * so a record that moved on meanwhile is read again there.
 */
export function prefetchAtLogin(login: LoginStateDoc, loginHint: string, logins: LaunchIds | undefined): LoginPrefetch | undefined {
  if (!logins || !loginHint) return undefined;
  const loginKey = loginKeyOf(login, loginHint);
  const key = logins.get(loginKey);
  const instance = key === undefined ? undefined : instanceOfLookup(key);
  if (!key || !instance) return { loginKey, instance: null };
  const found = findInstanceById(instance);
  found.catch(() => undefined); // awaited by the launch that uses it, if one does
  return { loginKey, instance: { key, found } };
}

/**
 * The instance read, from an id_token's claims while its signature is still being checked (a read,
 * by ids this process remembers): the login's, when it names the same records, else started now.
 * launch() uses it only when the verified launch names the same records, which it does whenever the
 * signature holds, since the claims are the same bytes.
 */
export function prefetchInstance(issuer: string, clientId: string, claims: Record<string, unknown>, ids: LaunchIds | undefined, atLogin?: LoginPrefetch): LaunchPrefetch {
  const source = { issuer, clientId, deploymentId: str(claims[CLAIM.deploymentId]), claims };
  const early = atLogin?.instance;
  const instance = early && early.key === instanceLookup(source, ids, false)?.key ? early : instanceLookup(source, ids, true);
  return { instance, loginKey: atLogin?.loginKey ?? null };
}

/**
 * Handle the launch; returns the URL to redirect to. The user, the activity, the lab and (when
 * their ids are known from an earlier launch) the user's instance are written and read side by
 * side in one round trip, beside the nonce record (the once-only gate, awaited before anything else);
 * the instance record read there is the one start() works from (`prefetched`: the same read,
 * started at the login or while the id_token was verified). A user or activity record this process
 * wrote with the same fields in the last minute is not written again (LaunchIds).
 */
export async function launch(v: VerifiedLaunch, nonceRecorded: Promise<void>, d: LaunchDeps, prefetched?: LaunchPrefetch | null): Promise<string> {
  const c = v.claims;
  await d.limit?.take(v.sub, v.platform._id);
  const role = mapRoles(c[CLAIM.roles]);
  const link = obj(c[CLAIM.resourceLink]);
  const context = obj(c[CLAIM.context]);
  const custom = obj(c[CLAIM.custom]);
  const ags = obj(c[CLAIM.ags]);
  const nrps = obj(c[CLAIM.nrps]);
  // the activity's lab is the custom lab_id of this very launch (the upsert below sets it)
  const labId = str(custom.lab_id) || null;
  const learnerLab = role === 'learner' && labId ? labId : null;
  const source: LaunchSource = { issuer: v.platform.issuer, clientId: v.platform.clientId, deploymentId: v.deploymentId, claims: c };
  const key = activityKeyOf(source);
  const pre = prefetched?.instance;
  const lookup = pre && pre.key === instanceLookup(source, d.ids, false)?.key ? pre : instanceLookup(source, d.ids, true);
  const userFields = { issuer: v.platform.issuer, sub: v.sub, name: displayName(c), email: str(c.email) || null, role };
  const activityFields = {
    contextTitle: str(context.title) || str(context.label),
    title: str(link.title),
    labId,
    settings: settingsFrom(custom),
    lineItemUrl: str(ags.lineitem) || null,
    lineItemsUrl: str(ags.lineitems) || null,
    agsScopes: Array.isArray(ags.scope) ? ags.scope.filter((s): s is string => typeof s === 'string') : [],
    membershipsUrl: str(nrps.context_memberships_url) || null,
  };
  const [user, activity, labFound, found] = await Promise.all([
    writeOnce<UserDoc>(d.ids, userKey(v.platform.issuer, v.sub), userFields, () => upsertUser(userFields, d.userIds)),
    writeOnce<ActivityDoc>(d.ids, activityKey(key), activityFields, () => upsertActivity(key, activityFields)),
    learnerLab ? d.labs.latest(learnerLab) : Promise.resolve(undefined),
    lookup ? lookup.found : Promise.resolve(null),
    // a second post of this id_token stops here (its upserts above only repeated the first one's)
    nonceRecorded,
  ]);
  d.ids?.set(userKey(v.platform.issuer, v.sub), user._id);
  d.ids?.set(activityKey(key), activity._id);
  // the launch's context on its few log lines (a child logger per launch costs more than they do)
  const ctx = { activity: activity._id, user: user._id, role };
  // usage counting never delays or fails a launch: it is written once the answer is out
  (d.afterAnswer ?? setImmediate)(() => void recordLaunch(v.platform._id, activity.contextKey).catch((err: unknown) => d.log.warn({ ...ctx, err }, 'lti.launch_not_counted')));
  const operator = d.operators !== undefined && isOperatorUser(d.operators, v.platform.issuer, v.sub);
  const locale = launchLocale(c);
  const base = { userId: user._id, role, contextId: activity.contextKey, activityId: activity._id, name: user.name, platformId: v.platform._id, ...(operator ? { operator } : {}), ...(locale ? { locale } : {}) };
  if (role !== 'learner') {
    d.log.info(ctx, 'lti.launch_instructor');
    d.onInstructorLaunch?.(activity.contextKey);
    return `/course/${encodeURIComponent(activity.contextKey)}#session=${await d.sessions.issue(base)}`;
  }
  if (!labId) {
    throw new Conflict('activity without lab_id', { publicMessage: 'This activity has no lab selected yet. Ask your teacher to choose one (activity settings → Select content).', messageKey: 'err.noLabSelected' });
  }
  // a lab another platform owns does not exist for this one
  const lab = labFound && mayUseLab({ kind: 'platform', platformId: v.platform._id }, labFound.owner ?? null) ? labFound : undefined;
  if (!lab) throw new NotFound(`lab ${labId} not found`, { publicMessage: `The lab "${labId}" of this activity is no longer available. Ask your teacher.`, messageKey: 'err.labGone', messageVars: { lab: labId } });
  const unavailable = d.runtime.unavailableReason?.(lab);
  if (unavailable) {
    // refused before any instance exists: there is nothing to retry, only a lab to change
    throw new Conflict(`lab ${lab.id} cannot run on this deployment: ${unavailable}`, { publicMessage: `The lab "${lab.title}" cannot run on this server: ${unavailable}. Ask your teacher to choose another lab.` });
  }
  const current = found && found.userId === user._id && found.activityId === activity._id ? found : await d.runtime.ensureInstance({
    activityId: activity._id, userId: user._id, contextId: activity.contextKey, labId: lab.id, labVersion: lab.version,
    timeLimitMinutes: activity.settings?.timeLimitMinutes ?? null,
    keepDays: activity.settings?.keepDays ?? null,
  });
  d.ids?.set(instanceKey(activity._id, user._id), current._id);
  if (prefetched?.loginKey) d.logins?.set(prefetched.loginKey, lookupKey(activity._id, user._id, current._id));
  const inst = await d.runtime.start(current._id, current);
  d.log.info({ ...ctx, instance: inst._id, lab: lab.id, version: inst.labVersion }, 'lti.launch');
  return `/lab/${encodeURIComponent(inst._id)}#session=${await d.sessions.issue({ ...base, instanceId: inst._id })}`;
}
