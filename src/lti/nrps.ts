/**
 * LTI Names and Role Provisioning Services client: reads a course's roster for teacher views.
 * The memberships URL comes from the NRPS claim of a verified launch. Pages are followed through
 * `Link: <…>; rel="next"`; a 401 refreshes the access token once. Roles come back short
 * (`Learner`, `Instructor`, as Moodle sends them) or as full URIs; both map to our three roles.
 */
import type { Role } from '../auth/session.js';
import { BackendFailure } from '../errors.js';
import { isPlatformAdminRole } from '../auth/tenancy.js';
import type { AccessTokens } from './grades/AccessTokens.js';
import { NRPS_SCOPE, type PlatformRef } from './grades/types.js';

export interface RosterMember {
  /** The platform's user id (the `sub` of that user's launches). */
  userId: string;
  name: string | undefined;
  givenName: string | undefined;
  familyName: string | undefined;
  email: string | undefined;
  /** Roles as the platform sent them. */
  roles: string[];
  /** The highest of our roles those map to. */
  role: Role;
  status: 'Active' | 'Inactive' | 'Deleted';
}

export interface Roster {
  context: { id: string; label?: string; title?: string } | undefined;
  members: RosterMember[];
}

export interface ReadRosterOptions {
  platform: PlatformRef;
  /** `context_memberships_url` from the NRPS claim. */
  membershipsUrl: string;
  tokens: AccessTokens;
  /** Only members with this role (short name or URI), filtered by the platform. */
  role?: string;
  /** Ask the platform for pages of this size. */
  pageSize?: number;
  /** Stop after this many pages (a misbehaving platform cannot loop us forever). Default 100. */
  maxPages?: number;
}

/** Course roles that make a teacher of the course. A course (membership) Administrator is one: it administers that course, nothing more. */
const INSTRUCTOR = new Set(['Instructor', 'TeachingAssistant', 'ContentDeveloper', 'Teacher', 'Faculty', 'Administrator']);

/**
 * Map LTI roles (short names or URIs, incl. sub-roles `…/membership/Instructor#TeachingAssistant`)
 * to ours; unknown or none = learner. `administrator` only for an institution or system
 * Administrator role URI (a platform administrator, see auth/tenancy.ts).
 */
export function ourRole(roles: readonly string[]): Role {
  if (isPlatformAdminRole(roles)) return 'administrator';
  let best: Role = 'learner';
  for (const r of roles) {
    const parts = r.split(/[#/]/).filter(Boolean);
    const names = [parts.at(-1) ?? '', parts.at(-2) ?? ''];
    if (names.some((n) => INSTRUCTOR.has(n))) best = 'instructor';
  }
  return best;
}

/** The rel="next" URL of a Link header, resolved against the page URL. */
export function nextLink(header: string | null, base: string): string | undefined {
  for (const part of (header ?? '').split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]+)>\s*;(.*)$/.exec(part);
    if (m && /\brel="?([^"]*\s)?next(\s[^"]*)?"?/.test(m[2]!)) return new URL(m[1]!, base).toString();
  }
  return undefined;
}

type MemberJson = { user_id?: unknown; name?: unknown; given_name?: unknown; family_name?: unknown; email?: unknown; roles?: unknown; status?: unknown };
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

export async function readRoster(o: ReadRosterOptions): Promise<Roster> {
  const first = new URL(o.membershipsUrl);
  if (o.role) first.searchParams.set('role', o.role);
  if (o.pageSize) first.searchParams.set('limit', String(o.pageSize));
  const roster: Roster = { context: undefined, members: [] };
  let url: string | undefined = first.toString();
  for (let page = 0; url && page < (o.maxPages ?? 100); page++) {
    const res = await fetchPage(o, url);
    const body = (await res.json()) as { context?: { id?: unknown; label?: unknown; title?: unknown }; members?: unknown };
    if (body.context && typeof body.context.id === 'string') {
      roster.context ??= { id: body.context.id, ...(str(body.context.label) ? { label: str(body.context.label) } : {}), ...(str(body.context.title) ? { title: str(body.context.title) } : {}) };
    }
    for (const m of Array.isArray(body.members) ? (body.members as MemberJson[]) : []) {
      const userId = str(m.user_id);
      if (!userId) continue;
      const roles = Array.isArray(m.roles) ? m.roles.filter((r): r is string => typeof r === 'string') : [];
      const status = m.status === 'Inactive' || m.status === 'Deleted' ? m.status : 'Active';
      roster.members.push({ userId, name: str(m.name), givenName: str(m.given_name), familyName: str(m.family_name), email: str(m.email), roles, role: ourRole(roles), status });
    }
    url = nextLink(res.headers.get('link'), url);
  }
  return roster;
}

async function fetchPage(o: ReadRosterOptions, url: string): Promise<Response> {
  const get = async (token: string) => fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.ims.lti-nrps.v2.membershipcontainer+json' },
    signal: AbortSignal.timeout(15_000),
  });
  let token = await o.tokens.get(o.platform, NRPS_SCOPE);
  let res = await get(token);
  if (res.status === 401) {
    o.tokens.invalidate(o.platform, NRPS_SCOPE, token);
    token = await o.tokens.get(o.platform, NRPS_SCOPE);
    res = await get(token);
  }
  if (!res.ok) throw new BackendFailure(`NRPS memberships answered ${res.status}`, { publicMessage: 'The course roster could not be read from the LMS.' });
  return res;
}
