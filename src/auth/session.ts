/**
 * Our own session after an LTI launch: a short signed token (JWT, HS256 with a key derived from
 * SECRET_KEY) the lab page keeps in memory and sends as `Authorization: Bearer …`. No cookie, so
 * it works inside Moodle's iframe even where browsers block third-party cookies. The launch
 * redirects to the page with the token in the URL *fragment*, which never reaches a server or a log.
 */
import { createHmac } from 'node:crypto';
import { jwtVerify } from 'jose';
import type { RequestHandler } from 'express';
import { Unauthorized, Forbidden } from '../errors.js';

export type { Role } from '../store/User.js';
import type { Role } from '../store/User.js';

export interface SessionClaims {
  /** Our internal user id (never the platform's sub). */
  userId: string;
  role: Role;
  /** Course (LTI context) key. */
  contextId: string;
  activityId?: string;
  instanceId?: string;
  /** Display name, for the page header. */
  name?: string;
  /** The launch's locale (launch_presentation.locale), for the pages' language. */
  locale?: string;
  /** The platform registration (our id) the launch came from: the tenant of this session. */
  platformId?: string;
  /** A user the operator named in OPERATOR_USERS: administers the whole tool. */
  operator?: boolean;
}

declare module 'express-serve-static-core' {
  interface Request {
    session?: SessionClaims;
  }
}

const AUDIENCE = 'lab-orchestrator:session';
const base64url = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const JWT_HEADER = base64url({ alg: 'HS256' });

export class SessionTokens {
  private readonly key: Uint8Array;
  constructor(secretKey: string, private readonly ttlSeconds = 8 * 3600) {
    // a key of its own, so a session token can never be replayed as a ticket or vice versa
    this.key = createHmac('sha256', secretKey).update('session-token-v1').digest();
  }

  /**
   * A compact HS256 JWT, signed with one synchronous HMAC: jose's WebCrypto signing is a round trip
   * through the thread pool, paid on every launch's path. verify() reads it with jose.
   */
  issue(claims: SessionClaims): Promise<string> {
    const iat = Math.floor(Date.now() / 1000);
    const signingInput = `${JWT_HEADER}.${base64url({ ...claims, aud: AUDIENCE, iat, exp: iat + this.ttlSeconds })}`;
    return Promise.resolve(`${signingInput}.${createHmac('sha256', this.key).update(signingInput).digest('base64url')}`);
  }

  async verify(token: string): Promise<SessionClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, { audience: AUDIENCE, algorithms: ['HS256'] });
      const { userId, role, contextId, activityId, instanceId, name, platformId, operator, locale } = payload as Record<string, unknown>;
      if (typeof userId !== 'string' || typeof contextId !== 'string' || !['learner', 'instructor', 'administrator'].includes(String(role))) {
        throw new Error('malformed claims');
      }
      return {
        userId,
        role: role as Role,
        contextId,
        ...(typeof activityId === 'string' ? { activityId } : {}),
        ...(typeof instanceId === 'string' ? { instanceId } : {}),
        ...(typeof name === 'string' ? { name } : {}),
        ...(typeof platformId === 'string' ? { platformId } : {}),
        ...(operator === true ? { operator: true } : {}),
        ...(typeof locale === 'string' ? { locale } : {}),
      };
    } catch (err) {
      throw new Unauthorized('invalid or expired session', { cause: err, publicMessage: 'Your session has expired. Open the activity again from your course.', messageKey: 'err.sessionExpired' });
    }
  }

  /** Express middleware: requires a valid Bearer session; sets req.session. */
  require(): RequestHandler {
    return (req, _res, next) => {
      const h = req.get('authorization');
      const token = h?.startsWith('Bearer ') ? h.slice(7) : undefined;
      if (!token) return next(new Unauthorized('no session', { publicMessage: 'Open the activity from your course to start.', messageKey: 'err.noSession' }));
      this.verify(token).then(
        (s) => {
          req.session = s;
          next();
        },
        next,
      );
    };
  }
}

/** Instructors and administrators of the session's course. */
export function requireInstructor(): RequestHandler {
  return (req, _res, next) => {
    if (req.session?.role === 'instructor' || req.session?.role === 'administrator') return next();
    next(new Forbidden('instructor role required', { publicMessage: 'Only teachers of this course can see this.', messageKey: 'err.teachersOnly' }));
  };
}
