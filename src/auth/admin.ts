/**
 * Admin API authentication: `Authorization: Bearer <ADMIN_TOKEN>` (constant-time compare), or a
 * session token whose role is administrator (an LTI launch by a platform admin). Used by every
 * /api/admin/* route; the CLI talks to the database directly and needs neither.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { Forbidden, Unauthorized } from '../errors.js';
import type { SessionTokens } from './session.js';

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function requireAdmin(sessions: SessionTokens, adminToken: string | undefined): RequestHandler {
  return (req, _res, next) => {
    const h = req.get('authorization');
    const token = h?.startsWith('Bearer ') ? h.slice(7) : undefined;
    if (!token) return next(new Unauthorized('no credentials', { publicMessage: 'Admin API: send Authorization: Bearer <ADMIN_TOKEN>.' }));
    if (adminToken && sameSecret(token, adminToken)) return next();
    sessions.verify(token).then(
      (s) => {
        if (s.role !== 'administrator') return next(new Forbidden('administrator role required', { publicMessage: 'Only administrators may do this.' }));
        req.session = s;
        next();
      },
      () => next(new Forbidden('bad admin credentials', { publicMessage: 'Admin API: the token is not valid.' })),
    );
  };
}
