/**
 * The LTI 1.3 tool side, assembled: ltijs (serverless, mounted at /lti) with our guards in front,
 * the platform registry, the launch, deep linking, dynamic/manual registration and the grade ports.
 *
 *   /lti/login (GET+POST)  OIDC login initiation      /lti/keys      our JWKS (ltijs's per-platform keys)
 *   /lti       (POST)      resource-link launch       /lti/register  dynamic registration
 *   /lti/deeplink (POST)   deep-linking request       /lti/deeplink/submit  the teacher's choice → platform
 */
import { createHmac } from 'node:crypto';
import express, { type Express, type Router } from 'express';
import type { LtijsProvider } from 'ltijs';
import type { Logger } from '../logger.js';
import type { SessionTokens } from '../auth/session.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import { ensureIndexes } from '../store/database.js';
import type { ExpirySweeper } from '../store/ExpirySweeper.js';
import { Platform } from '../store/Platform.js';
import { LoginState, UsedNonce, ltiExpiryRules } from '../store/LtiLogin.js';
import { Activity } from '../store/Activity.js';
import { User } from '../store/User.js';
import { DeepLinkRequest } from '../store/DeepLinkRequest.js';
import { AppError, TooManyRequests, httpStatusFor } from '../errors.js';
import { errorPage } from '../http/errorHandler.js';
import { createLtijsProvider } from './ltijsProvider.js';
import { PlatformRegistry } from './platforms.js';
import { JwksCache } from './jwks.js';
import { shareJwksWithLtijs } from './ltijsJwksShim.js';
import { installGuards, type GuardDeps } from './guard.js';
import { launch } from './launch.js';
import { deepLinkingRoutes, renderCatalog } from './deepLinking.js';
import { dynamicRegistration } from './registration.js';
import { gradePorts } from './gradePorts.js';
import type { GradePorts } from './grades/GradeService.js';
import type { VerifiedLaunch } from './verifyIdToken.js';
import type { AccessTokens } from './grades/AccessTokens.js';
import { courseRoster, type CourseRoster } from './roster.js';
import type { RateLimits } from '../rateLimits.js';

export interface LtiDeps {
  labs: LabDefinitions;
  runtime: LabRuntime;
  sessions: SessionTokens;
  log: Logger;
  sweeper: ExpirySweeper;
  secretKey: string;
  dbUri: string;
  /** Our public origin (PUBLIC_URL or the listening URL). */
  publicUrl: string;
  clockSkewSeconds: number;
  jwksMinRefetchMs: number;
  /** Service access tokens (GradeService.tokens), for the NRPS roster. */
  tokens: AccessTokens;
  /** Launches (resource link and deep linking) per user and per platform. */
  limits?: RateLimits;
}

export interface LtiUrls {
  login: string;
  launch: string;
  deepLink: string;
  jwks: string;
  /**
   * What an admin pastes into Moodle (dynamic registration). It carries a key derived from
   * SECRET_KEY: without it anyone could register a platform and launch as its "administrator".
   */
  registration: string;
}

export interface LtiModule {
  /** ltijs's express app with our routes: mount at /lti. */
  app: Express;
  registry: PlatformRegistry;
  urls: LtiUrls;
  /** For GradeService.use(). */
  gradePorts: GradePorts;
  /** Origins allowed to frame tool pages (registered platforms): for CSP frame-ancestors elsewhere too. */
  frameAncestors(): string[];
  provider: LtijsProvider;
  /** A course's roster (NRPS) for teacher views, members matched to our user ids. */
  roster(contextKey: string): Promise<CourseRoster>;
  close(): void;
}

/** The key in the registration URL (stable for a SECRET_KEY). */
export function registrationKey(secretKey: string): string {
  return createHmac('sha256', secretKey).update('lti-dynamic-registration-v1').digest('base64url').slice(0, 32);
}

export function ltiUrls(publicUrl: string, secretKey: string): LtiUrls {
  const base = `${publicUrl.replace(/\/+$/, '')}/lti`;
  return {
    login: `${base}/login`, launch: base, deepLink: `${base}/deeplink`, jwks: `${base}/keys`,
    registration: `${base}/register?key=${registrationKey(secretKey)}`,
  };
}

/** ltijs's own refusals, as our error pages (its defaults echo the request body). */
function refusal(status: number, message: string) {
  return (req: express.Request, res: express.Response) => {
    req.log?.info({ status, message }, 'http.refused');
    if (req.accepts(['json', 'html']) === 'html') res.status(status).type('html').send(errorPage(status, message));
    else res.status(status).json({ error: message, status });
  };
}

export async function createLti(d: LtiDeps): Promise<LtiModule> {
  await ensureIndexes([Platform, LoginState, UsedNonce, Activity, User, DeepLinkRequest]);
  for (const rule of ltiExpiryRules) d.sweeper.add(rule);
  const log = d.log.child({ component: 'lti' });
  const urls = ltiUrls(d.publicUrl, d.secretKey);
  const secure = d.publicUrl.startsWith('https:');
  const jwks = new JwksCache(log, { minRefetchMs: d.jwksMinRefetchMs });
  const unshare = shareJwksWithLtijs(jwks);
  // the registry needs the provider and the guards need the registry: late-bound through this holder
  const holder: { registry?: PlatformRegistry } = {};
  const guardDeps = {
    get registry() { return holder.registry!; },
    jwks, clockSkewSeconds: d.clockSkewSeconds, publicUrl: d.publicUrl,
    // PUBLIC_URL may carry a path prefix (https://host/labs → /labs/lti)
    targetPaths: [new URL(urls.launch).pathname, `${new URL(urls.launch).pathname}/`, new URL(urls.deepLink).pathname],
    cookieOptions: { secure, sameSite: secure ? 'none' : 'lax', httpOnly: true, signed: true },
  } as GuardDeps;
  const lti = await createLtijsProvider({ secretKey: d.secretKey, dbUri: d.dbUri, secureCookies: secure, baseUrl: urls.launch, serverAddon: installGuards(guardDeps) });
  const registry = new PlatformRegistry(lti, log);
  holder.registry = registry;
  await registry.init();

  lti.onConnect(async (_token, req, res, next) => {
    try {
      res.redirect(302, await launch(res.locals.verified as VerifiedLaunch, { labs: d.labs, runtime: d.runtime, sessions: d.sessions, log, ...(d.limits ? { limit: d.limits.launch } : {}) }));
    } catch (err) {
      next(err);
    }
  });
  const dlAtLaunch = refusal(400, 'The launch was refused: a deep-linking request was sent to the launch URL.');
  lti.onDeepLinking((_token, req, res) => dlAtLaunch(req, res));
  lti.onInvalidToken(refusal(401, 'The launch was refused: the id_token could not be validated.'));
  lti.onSessionTimeout(refusal(401, 'Your LTI session was not found. Open the activity again from your course.'));
  lti.onUnregisteredPlatform(refusal(400, 'This platform is not registered with the tool.'));
  lti.onInactivePlatform(refusal(403, 'This platform registration is not active.'));
  lti.onDynamicRegistration((req, res, next) => {
    dynamicRegistration(req.query as Record<string, unknown>, { registry, urls, log, key: registrationKey(d.secretKey) }).then((html) => res.type('html').send(html), next);
  });
  lti.whitelist({ route: '/deeplink/submit', method: 'POST' });
  lti.app.post('/deeplink', (req, res, next) => {
    const v = res.locals.verified as VerifiedLaunch;
    try {
      d.limits?.launch.take(v.sub, v.platform._id);
    } catch (err) {
      return next(err);
    }
    renderCatalog(v, { labs: d.labs, log, urls }).then((html) => res.type('html').send(html), next);
  });
  lti.app.use(deepLinkingRoutes({ labs: d.labs, registry, log, urls }) as Router);
  // errors from our handlers inside ltijs's (express 4) app: rendered here so nothing leaks a stack
  lti.app.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = httpStatusFor(err);
    if (status >= 500) req.log?.error({ err }, 'http.error');
    if (err instanceof TooManyRequests) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
    refusal(status, err instanceof AppError ? err.publicMessage : 'Internal error')(req, res);
  });
  log.info({ registrationUrl: urls.registration, jwks: urls.jwks }, 'lti.ready');
  return { app: lti.app, registry, urls, gradePorts: gradePorts(registry), frameAncestors: () => registry.frameAncestors(), provider: lti,
    roster: (contextKey) => courseRoster(contextKey, d.tokens),
    close: unshare,
  };
}
