/**
 * The token endpoint (OAuth 2 client_credentials with a `private_key_jwt` client assertion, as
 * LTI Advantage services require) and the bearer-token check the service routes use.
 */
import { createHash, randomBytes } from 'node:crypto';
import express, { type RequestHandler, type Response, type Router } from 'express';
import { DevPlatformGrant, DevPlatformTool, type DevPlatformToolDoc } from './models.js';
import { isDuplicateKey } from '../store/database.js';
import type { PlatformContext } from './context.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ACCESS_TTL_S = 3600;

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('base64url');
}

function oauthError(res: Response, status: number, error: string, description: string): void {
  res.status(status).setHeader('Cache-Control', 'no-store').json({ error, error_description: description });
}

/** Record a one-time value (jti, nonce); false if it was seen before. */
export async function useOnce(key: string, clientId: string, expiresAt: Date): Promise<boolean> {
  try {
    await DevPlatformGrant.create({ _id: key, kind: 'jti', clientId, expiresAt });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

export function tokenRoutes(ctx: PlatformContext): Router {
  const r = express.Router();
  r.post('/token', async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (b.grant_type !== 'client_credentials') return oauthError(res, 400, 'unsupported_grant_type', 'grant_type must be client_credentials');
    if (b.client_assertion_type !== JWT_BEARER) return oauthError(res, 400, 'invalid_request', `client_assertion_type must be ${JWT_BEARER}`);
    if (typeof b.client_assertion !== 'string') return oauthError(res, 400, 'invalid_request', 'client_assertion is required');
    let verified;
    try {
      verified = await ctx.verifier.verify(b.client_assertion, { audience: ctx.urls.token, subjectIsIssuer: true, maxTokenAge: '1h' });
    } catch (err) {
      ctx.log.info({ reason: (err as Error).message }, 'devplatform.token_refused');
      return oauthError(res, 401, 'invalid_client', (err as Error).message);
    }
    const { tool, payload } = verified;
    if (typeof payload.jti !== 'string' || !payload.jti) return oauthError(res, 401, 'invalid_client', 'client assertion has no jti');
    const exp = Math.min((payload.exp ?? 0) * 1000, Date.now() + 3600_000);
    if (!(await useOnce(`jti:${tool._id}:${payload.jti}`, tool._id, new Date(exp + 60_000)))) {
      return oauthError(res, 401, 'invalid_client', 'client assertion jti was already used');
    }
    const requested = typeof b.scope === 'string' ? b.scope.split(' ').filter(Boolean) : [];
    const granted = requested.filter((s) => tool.scopes.includes(s));
    if (!granted.length) return oauthError(res, 400, 'invalid_scope', 'none of the requested scopes is allowed for this tool');
    const token = randomBytes(32).toString('base64url');
    await DevPlatformGrant.create({
      _id: `access:${sha256(token)}`, kind: 'access', clientId: tool._id, scopes: granted,
      expiresAt: new Date(Date.now() + ACCESS_TTL_S * 1000),
    });
    ctx.log.info({ clientId: tool._id, scopes: granted }, 'devplatform.token_issued');
    res.setHeader('Cache-Control', 'no-store');
    res.json({ access_token: token, token_type: 'Bearer', expires_in: ACCESS_TTL_S, scope: granted.join(' ') });
  });
  return r;
}

declare module 'express-serve-static-core' {
  interface Locals {
    devPlatformTool?: DevPlatformToolDoc;
  }
}

/**
 * Require a bearer access token from /token carrying at least one of `scopes`; sets
 * res.locals.devPlatformTool. 401 for a missing/unknown/expired token, 403 for a missing scope.
 */
export function requireScope(...scopes: string[]): RequestHandler {
  return async (req, res, next) => {
    const m = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
    const grant = m?.[1] ? await DevPlatformGrant.findById(`access:${sha256(m[1])}`).lean() : null;
    if (!grant || grant.kind !== 'access' || grant.expiresAt.getTime() <= Date.now()) {
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
      res.status(401).json({ error: 'invalid_token', status: 401 });
      return;
    }
    if (!scopes.some((s) => grant.scopes.includes(s))) {
      res.status(403).json({ error: 'insufficient_scope', status: 403 });
      return;
    }
    const tool = await DevPlatformTool.findById(grant.clientId).lean();
    if (!tool) {
      res.status(401).json({ error: 'invalid_token', status: 401 });
      return;
    }
    res.locals.devPlatformTool = tool;
    next();
  };
}
