/**
 * The built-in development LTI 1.3 platform: a small Moodle stand-in mounted at /dev-platform in
 * demo mode (or with DEV_PLATFORM=true), so the tool can be tried and tested without Moodle.
 * It implements the standard platform side with `jose`: openid-configuration, JWKS, the OIDC
 * authorization endpoint (form_post), the token endpoint (client_credentials + private_key_jwt),
 * AGS line items/scores/results, NRPS memberships, the deep-linking return and dynamic registration.
 *
 * Not for production: its private key sits unencrypted in the database and anyone who can reach
 * the page can launch as any demo user.
 */
import express, { type Router } from 'express';
import { SignJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Logger } from '../logger.js';
import { ensureIndexes } from '../store/database.js';
import type { ExpirySweeper } from '../store/ExpirySweeper.js';
import {
  devPlatformExpiryRules, devPlatformModels, DevPlatformLineItem, DevPlatformScore, DevPlatformTool, type DevPlatformScoreDoc, type DevPlatformToolDoc,
} from './models.js';
import { loadOrCreatePlatformKey, ToolJwtVerifier, type PlatformKey } from './keys.js';
import { ALL_SCOPES, demoClass } from './claims.js';
import { registerTool, createActivity, type ToolRegistration, type ActivityInput } from './registry.js';
import type { DevPlatform, PlatformContext, PlatformUrls } from './context.js';
import { oidcRoutes } from './oidcRoutes.js';
import { tokenRoutes } from './tokenRoutes.js';
import { agsRoutes } from './agsRoutes.js';
import { deepLinkRoutes } from './deepLinkRoutes.js';
import { registerByUrl, registrationRoutes } from './registrationRoutes.js';
import { pageRoutes } from './pageRoutes.js';

export type { DevPlatform, PlatformContext, PlatformUrls } from './context.js';

export interface DevPlatformDeps {
  /** The tool's public origin; the platform's issuer is `${publicUrl}/dev-platform`. */
  publicUrl: string;
  log: Logger;
  sweeper: ExpirySweeper;
  /** Where the router is mounted (default /dev-platform). */
  mountPath?: string;
  /** Learners beyond the two demo students (learner1…N), e.g. for a class launching at once. */
  classSize?: number;
}

export function platformUrls(publicUrl: string, mountPath = '/dev-platform'): PlatformUrls {
  const issuer = `${publicUrl.replace(/\/+$/, '')}${mountPath}`;
  return {
    issuer,
    page: `${issuer}/`,
    openidConfiguration: `${issuer}/.well-known/openid-configuration`,
    jwks: `${issuer}/jwks`,
    auth: `${issuer}/auth`,
    token: `${issuer}/token`,
    registration: `${issuer}/register`,
    deepLinkReturn: `${issuer}/deeplink/return`,
  };
}

/** The OpenID configuration a tool fetches during dynamic registration. */
export function openidConfiguration(urls: PlatformUrls): Record<string, unknown> {
  return {
    issuer: urls.issuer,
    authorization_endpoint: urls.auth,
    token_endpoint: urls.token,
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS256'],
    jwks_uri: urls.jwks,
    registration_endpoint: urls.registration,
    authorization_server: urls.token,
    scopes_supported: ['openid', ...ALL_SCOPES],
    response_types_supported: ['id_token'],
    subject_types_supported: ['public', 'pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    claims_supported: ['sub', 'iss', 'name', 'given_name', 'family_name', 'email'],
    'https://purl.imsglobal.org/spec/lti-platform-configuration': {
      product_family_code: 'lab-orchestrator-dev-platform',
      version: '1.0',
      messages_supported: [{ type: 'LtiResourceLinkRequest' }, { type: 'LtiDeepLinkingRequest' }],
      variables: [],
    },
  };
}

export async function createDevPlatform(deps: DevPlatformDeps): Promise<DevPlatform> {
  const urls = platformUrls(deps.publicUrl, deps.mountPath);
  const ctx: PlatformContext = {
    urls,
    key: await loadOrCreatePlatformKey(),
    verifier: new ToolJwtVerifier(),
    log: deps.log.child({ component: 'dev-platform' }),
    secureCookies: urls.issuer.startsWith('https:'),
    users: demoClass(deps.classSize),
    scoresAvailable: true,
  };
  await ensureIndexes(devPlatformModels);
  for (const rule of devPlatformExpiryRules) deps.sweeper.add(rule);

  const router = express.Router();
  router.use(express.urlencoded({ extended: false, limit: '200kb' }));
  router.use(express.json({ type: ['application/json', 'application/*+json'], limit: '200kb' }));
  router.get('/.well-known/openid-configuration', (_req, res) => {
    res.json(openidConfiguration(urls));
  });
  router.get('/jwks', (_req, res) => {
    res.setHeader('Cache-Control', 'max-age=300');
    res.json({ keys: [ctx.key.publicJwk] });
  });
  router.use(oidcRoutes(ctx));
  router.use(tokenRoutes(ctx));
  router.use(agsRoutes(ctx));
  router.use(deepLinkRoutes(ctx));
  router.use(registrationRoutes(ctx));
  router.use(pageRoutes(ctx));

  return {
    router,
    urls,
    registerTool,
    createActivity,
    registerByUrl: (u) => registerByUrl(ctx, u),
    signJwt: (payload, header) => new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: ctx.key.kid, typ: 'JWT', ...header }).sign(ctx.key.privateKey),
    publicJwk: ctx.key.publicJwk,
    async ensureRegistered(u) {
      const existing = await DevPlatformTool.findOne({ registrationUrl: u }).sort({ typeId: -1 }).lean();
      return existing ?? registerByUrl(ctx, u);
    },
    setScoresAvailable(available) {
      ctx.scoresAvailable = available;
    },
    async receivedScores(lineItemId, userId) {
      if (!(await DevPlatformLineItem.exists({ _id: lineItemId }))) return [];
      return DevPlatformScore.find({ lineItemId, ...(userId ? { userId } : {}) }).sort({ receivedAt: 1, seq: 1 }).lean();
    },
  };
}
