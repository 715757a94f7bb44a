/**
 * The tenancy model, enforced here and only here (README "Tenancy"):
 *
 * - The tool's **operators** administer the tool: whoever holds ADMIN_TOKEN, and users the
 *   operator names in OPERATOR_USERS (`<issuer>#<sub>`, exactly as their platform sends them).
 *   Only operators register platforms or change a registration, see or rotate the registration
 *   key, and manage the labs every school uses.
 * - A platform's **LTI administrators** (institution or system Administrator roles, as the
 *   platform sends them in a launch) administer their platform only: its own labs, its
 *   registration as a read-only view, and its usage (courses, labs, launches). Never another platform's registration or labs, never the
 *   operator's settings.
 * - Course-level roles (`membership#Administrator`, Instructor, …) are never tool or platform
 *   administrators: a course Administrator is a teacher of that course.
 * - Every lab in the catalog has an owner: the operator (every platform may use it) or one
 *   platform (only that platform's admins, teachers and students see or start it).
 *
 * Express routes ask this module who the requester is (an Actor) and what that actor may do.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { Conflict, Forbidden, NotFound, Unauthorized } from '../errors.js';
import type { SessionClaims, SessionTokens } from './session.js';

/** Who administers: the operator, or the administrators of one platform. */
export type Actor = { kind: 'operator' } | { kind: 'platform'; platformId: string };

/** A lab's owner: null for the operator's (every platform), else the owning platform's id. */
export type LabOwner = string | null;

/** Who looks at the catalog: the operator, a platform's users, or anyone (no session). */
export type CatalogViewer = { kind: 'operator' } | { kind: 'platform'; platformId: string } | { kind: 'public' };

declare module 'express-serve-static-core' {
  interface Request {
    actor?: Actor;
  }
}

const PLATFORM_ADMIN_ROLE = /\/(institution|system)\/person#(Administrator|SysAdmin)$/;

/**
 * True for an institution or system administrator role URI. Short names and context roles
 * (`Administrator`, `…/membership#Administrator`) are course roles and never count.
 */
export function isPlatformAdminRole(roles: readonly string[]): boolean {
  return roles.some((r) => PLATFORM_ADMIN_ROLE.test(r));
}

/** OPERATOR_USERS (comma-separated `<issuer>#<sub>`) as a set of keys for isOperatorUser. */
export function operatorUsers(list: string | undefined): Set<string> {
  return new Set((list ?? '').split(',').map((s) => s.trim()).filter(Boolean));
}

export function isOperatorUser(operators: ReadonlySet<string>, issuer: string, sub: string): boolean {
  return operators.has(`${issuer}#${sub}`);
}

/** The actor of a launch session, or undefined for anyone who administers nothing. */
export function actorOfSession(s: SessionClaims): Actor | undefined {
  if (s.operator === true) return { kind: 'operator' };
  if (s.role === 'administrator' && s.platformId) return { kind: 'platform', platformId: s.platformId };
  return undefined;
}

/** The catalog viewer of a request's session (public without one). */
export function viewerOf(s: SessionClaims | undefined): CatalogViewer {
  if (!s) return { kind: 'public' };
  if (s.operator === true) return { kind: 'operator' };
  return s.platformId ? { kind: 'platform', platformId: s.platformId } : { kind: 'public' };
}

export function viewerOfActor(a: Actor): CatalogViewer {
  return a.kind === 'operator' ? { kind: 'operator' } : { kind: 'platform', platformId: a.platformId };
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * Admin API authentication (every /api/admin/* route): `Authorization: Bearer <ADMIN_TOKEN>`
 * (constant-time compare) is the operator; a session token is its actor. Sets req.actor;
 * 401 without credentials, 403 for anyone who administers nothing.
 */
export function requireAdmin(sessions: SessionTokens, adminToken: string | undefined): RequestHandler {
  return (req, _res, next) => {
    const h = req.get('authorization');
    const token = h?.startsWith('Bearer ') ? h.slice(7) : undefined;
    if (!token) return next(new Unauthorized('no credentials', { publicMessage: 'Admin API: send Authorization: Bearer <ADMIN_TOKEN>.', messageKey: 'admin.noCredentials' }));
    if (adminToken && sameSecret(token, adminToken)) {
      req.actor = { kind: 'operator' };
      return next();
    }
    sessions.verify(token).then(
      (s) => {
        const actor = actorOfSession(s);
        if (!actor) return next(new Forbidden('administrator role required', { publicMessage: 'Only administrators may do this.', messageKey: 'admin.adminsOnly' }));
        req.session = s;
        req.actor = actor;
        next();
      },
      () => next(new Forbidden('bad admin credentials', { publicMessage: 'Admin API: the token is not valid.', messageKey: 'admin.badToken' })),
    );
  };
}

/** After requireAdmin: the operator only. */
export function requireOperator(): RequestHandler {
  return (req, _res, next) => next(req.actor?.kind === 'operator' ? undefined : operatorOnly());
}

export function operatorOnly(): Forbidden {
  return new Forbidden('operator only', { publicMessage: 'Only the operator of the tool may do this.', messageKey: 'admin.operatorOnly' });
}

/** May this actor see this platform registration? */
export function maySeePlatform(a: Actor, platformId: string): boolean {
  return a.kind === 'operator' || a.platformId === platformId;
}

/** Throws NotFound unless the actor may see this platform (its registration, its usage): another platform does not exist for it. */
export function mustSeePlatform(a: Actor, platformId: string): void {
  if (!maySeePlatform(a, platformId)) throw new NotFound(`platform ${platformId} is not the actor's`, { publicMessage: 'No such platform.' });
}

/** May the viewer see (and start) a lab with this owner? */
export function mayUseLab(v: CatalogViewer, owner: LabOwner): boolean {
  if (owner === null) return true;
  return v.kind === 'operator' || (v.kind === 'platform' && v.platformId === owner);
}

/** The owner of a lab this actor adds. */
export function ownerForUpload(a: Actor): LabOwner {
  return a.kind === 'operator' ? null : a.platformId;
}

/**
 * Throws unless the actor may replace or remove a lab owned by `owner` (undefined: no such lab).
 * Another platform's private lab is NotFound (its existence is not shown), the operator's lab is
 * Forbidden to a platform.
 */
export function mustManageLab(a: Actor, labId: string, owner: LabOwner | undefined, o: { adding?: boolean } = {}): void {
  if (a.kind === 'operator' || owner === undefined || owner === a.platformId) return;
  if (owner === null) throw new Forbidden(`lab ${labId} is the operator's`, { publicMessage: `The lab "${labId}" belongs to the operator of the tool; only the operator can change it.`, messageKey: 'admin.labOfOperator', messageVars: { lab: labId } });
  if (o.adding) throw new LabIdTaken(labId);
  throw new NotFound(`lab ${labId} belongs to another platform`, { publicMessage: `No lab "${labId}".`, messageKey: 'admin.noSuchLab', messageVars: { lab: labId } });
}

/** Adding a lab under an id another platform uses. */
export class LabIdTaken extends Conflict {
  constructor(labId: string) {
    super(`lab id ${labId} is taken by another platform`, { publicMessage: `The lab id "${labId}" is taken; choose another one.`, messageKey: 'admin.labIdTaken', messageVars: { lab: labId } });
  }
}
