/**
 * The LTI 1.3 tool side, assembled: ltijs (serverless, mounted at /lti) with our guards in front,
 * the platform registry, the launch, deep linking, dynamic/manual registration and the grade ports.
 *
 *   /lti/login (GET+POST)  OIDC login initiation      /lti/keys      our JWKS (ltijs's per-platform keys)
 *   /lti       (POST)      resource-link launch       /lti/register  dynamic registration
 *   /lti/deeplink (POST)   deep-linking request       /lti/deeplink/submit  the teacher's choice → platform
 */
import express, { type Express, type Router } from 'express';
import type { LtijsProvider } from 'ltijs';
import type { Logger } from '../logger.js';
import type { SessionTokens } from '../auth/session.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import { BadRequest, Forbidden, Unauthorized, type AppError } from '../errors.js';
import { ltiUrls, registrationKey, type LtiUrls } from './urls.js';
import { createLtijsProvider } from './ltijsProvider.js';
import { PlatformRegistry } from './platforms.js';
import { JwksCache } from './jwks.js';
import { shareJwksWithLtijs } from './ltijsJwksShim.js';
import { installGuards, type GuardDeps } from './guard.js';
import { launch } from './launch.js';
import { deepLinkingRoutes, renderCatalog } from './deepLinking.js';
import { dynamicRegistration, registeringOrigin } from './registration.js';
import { frameAncestorsDirective } from './frameAncestors.js';
import { gradePorts } from './gradePorts.js';
import type { GradePorts } from './grades/GradeService.js';
import type { VerifiedLaunch } from './verifyIdToken.js';
import type { AccessTokens } from './grades/AccessTokens.js';
import { courseRoster, type CourseRoster } from './roster.js';
import type { RateLimits } from '../rateLimits.js';

export interface LtiDeps {
  /** The app's one error handler, injected so ltijs's own app renders errors the same way. */
  respondWithError: (err: unknown, req: express.Request, res: express.Response) => void;
  labs: LabDefinitions;
  runtime: LabRuntime;
  sessions: SessionTokens;
  log: Logger;
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

export { ltiUrls, registrationKey, type LtiUrls } from './urls.js';

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

export async function createLti(d: LtiDeps): Promise<LtiModule> {
  /** ltijs's own refusals, through the app's one error handler (its defaults echo the request body). */
  const refusal = (err: AppError) => (req: express.Request, res: express.Response) => d.respondWithError(err, req, res);
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
  const dlAtLaunch = refusal(new BadRequest('The launch was refused: a deep-linking request was sent to the launch URL.'));
  lti.onDeepLinking((_token, req, res) => dlAtLaunch(req, res));
  lti.onInvalidToken(refusal(new Unauthorized('The launch was refused: the id_token could not be validated.')));
  lti.onSessionTimeout(refusal(new Unauthorized('Your LTI session was not found. Open the activity again from your course.')));
  lti.onUnregisteredPlatform(refusal(new BadRequest('This platform is not registered with the tool.')));
  lti.onInactivePlatform(refusal(new Forbidden('This platform registration is not active.')));
  lti.onDynamicRegistration((req, res, next) => {
    // the registering platform frames these pages before it is registered (Moodle's dialog)
    const framer = registeringOrigin(req.query as Record<string, unknown>, registrationKey(d.secretKey));
    if (framer) res.setHeader('Content-Security-Policy', frameAncestorsDirective([...new Set([...registry.frameAncestors(), framer])]));
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
    d.respondWithError(err, req, res);
  });
  log.info({ jwks: urls.jwks }, 'lti.ready');
  return { app: lti.app, registry, urls, gradePorts: gradePorts(registry), frameAncestors: () => registry.frameAncestors(), provider: lti,
    roster: (contextKey) => courseRoster(contextKey, d.tokens),
    close: unshare,
  };
}
