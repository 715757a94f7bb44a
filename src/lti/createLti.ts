/**
 * The LTI 1.3 tool side, assembled: ltijs (serverless, mounted at /lti) with our guards in front,
 * the platform registry, the launch, deep linking, dynamic/manual registration and the grade ports.
 *
 *   /lti/login (GET+POST)  OIDC login initiation      /lti/keys      our JWKS (ltijs's per-platform keys)
 *   /lti       (POST)      resource-link launch       /lti/register  dynamic registration
 *   /lti/deeplink (POST)   deep-linking request       /lti/deeplink/submit  the teacher's choice → platform
 */
import { acceptLanguages, pickLanguage } from '../i18n.js';
import express, { type Express, type Router } from 'express';
import type { LtijsProvider } from 'ltijs';
import type { Logger } from '../logger.js';
import type { SessionTokens } from '../auth/session.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import { BadRequest, Forbidden, Unauthorized, type AppError } from '../errors.js';
import { ltiUrls, registrationUrl, type LtiUrls } from './urls.js';
import { RegistrationKeys } from './registrationKey.js';
import { createLtijsProvider, ltijsKeyFrom } from './ltijsProvider.js';
import { PlatformRegistry } from './platforms.js';
import { JwksCache } from './jwks.js';
import { shareJwksWithLtijs } from './ltijsJwksShim.js';
import { ltiEntryRoutes, installGuards, verifiedLaunch, type GuardDeps } from './guard.js';
import { decodeJwt } from 'jose';
import { launch, prefetchAtLogin, prefetchInstance, type LaunchPrefetch, type LoginPrefetch } from './launch.js';
import { str } from './claims.js';
import { LaunchIds } from './LaunchIds.js';
import { UserIds } from '../store/User.js';
import { RecentLogins } from './RecentLogins.js';
import { deepLinkingRoutes, renderCatalog } from './deepLinking.js';
import { dynamicRegistration, registeringOrigin } from './registration.js';
import { frameAncestorsDirective } from './frameAncestors.js';
import { gradePorts } from './gradePorts.js';
import type { GradePorts } from './grades/GradeService.js';
import type { VerifiedLaunch } from './verifyIdToken.js';
import type { AccessTokens } from './grades/AccessTokens.js';
import { courseRoster, type CourseRoster, type CourseRosterCache } from './roster.js';
import type { RateLimits } from '../rateLimits.js';
import { DEFAULT_RETENTION } from '../labs/retention.js';

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
  /** Course rosters (NRPS), refreshed when a teacher launches. */
  roster?: Pick<CourseRosterCache, 'refresh'>;
  /** Service access tokens (GradeService.tokens), for the NRPS roster. */
  tokens: AccessTokens;
  /** Launches (resource link and deep linking) per user and per platform. */
  limits?: RateLimits;
  /** Users the operator named in OPERATOR_USERS (`<issuer>#<sub>`): their sessions administer the tool. */
  operators?: ReadonlySet<string>;
  /** The operator's maximum keep time for stopped labs (days): the deep-linking option's ceiling. */
  maxKeepDays?: number;
}

export { ltiUrls, registrationUrl, type LtiUrls } from './urls.js';

export interface LtiModule {
  /** ltijs's express app with our routes: mount at /lti. */
  app: Express;
  /** The login initiation and the id_token POSTs (launch, deep linking): mount at /lti before `app`. */
  entryRoutes: Router;
  registry: PlatformRegistry;
  urls: LtiUrls;
  /** The registration URL with the current key: for operators only, never for a log line. */
  registrationUrl(): Promise<string>;
  /** A new registration key (the operator's); returns the new URL. */
  rotateRegistrationKey(): Promise<string>;
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
  const urls = ltiUrls(d.publicUrl);
  const keys = new RegistrationKeys();
  const secure = d.publicUrl.startsWith('https:');
  const jwks = new JwksCache(log, { minRefetchMs: d.jwksMinRefetchMs });
  const unshare = shareJwksWithLtijs(jwks);
  // the registry needs the provider and the guards need the registry: late-bound through this holder
  const holder: { registry?: PlatformRegistry } = {};
  const ids = new LaunchIds();
  const loginIds = new LaunchIds();
  const guardDeps = {
    get registry() { return holder.registry!; },
    jwks, clockSkewSeconds: d.clockSkewSeconds, publicUrl: d.publicUrl,
    // PUBLIC_URL may carry a path prefix (https://host/labs → /labs/lti)
    targetPaths: [new URL(urls.launch).pathname, `${new URL(urls.launch).pathname}/`, new URL(urls.deepLink).pathname],
    cookieOptions: { secure, sameSite: secure ? 'none' : 'lax', httpOnly: true, signed: true },
    logins: new RecentLogins(),
    atLogin: (login, loginHint) => prefetchAtLogin(login, loginHint, loginIds),
    prefetch: (login, idToken, atLogin) => {
      let claims: Record<string, unknown>;
      try {
        claims = decodeJwt(idToken);
      } catch {
        return null; // not a JWT: verifyIdToken says so
      }
      const aud = claims.aud;
      const clientId = login.clientId ?? (Array.isArray(aud) ? str(aud[0]) : str(aud));
      return prefetchInstance(login.issuer, clientId, claims, ids, atLogin as LoginPrefetch | undefined);
    },
  } as GuardDeps;
  const userIds = new UserIds(d.secretKey);
  const routes = {
    launch: (req: express.Request, res: express.Response, next: express.NextFunction) => {
      const { verified, nonceRecorded, prefetched } = verifiedLaunch<LaunchPrefetch | null>(res);
      launch(verified, nonceRecorded, { labs: d.labs, userIds, runtime: d.runtime, sessions: d.sessions, log, ids, logins: loginIds, ...(d.limits ? { limit: d.limits.launch } : {}), ...(d.operators ? { operators: d.operators } : {}), ...(d.roster ? { onInstructorLaunch: (k: string) => { void d.roster!.refresh(k); } } : {}), afterAnswer: (task) => res.once('close', task) }, prefetched).then((to) => { res.status(302).location(to).end(); }, next);
    },
    deepLink: (req: express.Request, res: express.Response, next: express.NextFunction) => {
      const { verified, nonceRecorded } = verifiedLaunch(res);
      Promise.resolve(d.limits?.launch.take(verified.sub, verified.platform._id)).then(() => nonceRecorded).then(() => renderCatalog(verified, { labs: d.labs, userIds, runtime: d.runtime, log, urls, maxKeepDays: d.maxKeepDays ?? DEFAULT_RETENTION.maxKeepDays })).then((html) => res.type('html').send(html), next);
    },
  };
  const lti = await createLtijsProvider({ secretKey: d.secretKey, dbUri: d.dbUri, secureCookies: secure, baseUrl: urls.launch, serverAddon: installGuards(guardDeps) });
  const registry = new PlatformRegistry(lti, log);
  holder.registry = registry;
  await registry.init();

  // the id_token POSTs never reach ltijs (installGuards answers them); nor does anything else with an ltik
  const notHere = refusal(new Unauthorized('Open this activity from your course.'));
  lti.onConnect((_token, req, res) => notHere(req, res));
  const dlAtLaunch = refusal(new BadRequest('The launch was refused: a deep-linking request was sent to the launch URL.'));
  lti.onDeepLinking((_token, req, res) => dlAtLaunch(req, res));
  lti.onInvalidToken(refusal(new Unauthorized('The launch was refused: the id_token could not be validated.')));
  lti.onSessionTimeout(refusal(new Unauthorized('Your LTI session was not found. Open the activity again from your course.')));
  lti.onUnregisteredPlatform(refusal(new BadRequest('This platform is not registered with the tool.')));
  lti.onInactivePlatform(refusal(new Forbidden('This platform registration is not active.')));
  lti.onDynamicRegistration((req, res, next) => {
    const q = req.query as Record<string, unknown>;
    (async () => {
      // the registering platform frames these pages before it is registered (Moodle's dialog)
      const framer = await registeringOrigin(q, keys);
      if (framer) res.setHeader('Content-Security-Policy', frameAncestorsDirective([...new Set([...registry.frameAncestors(), framer])]));
      res.type('html').send(await dynamicRegistration(q, { registry, urls, log, keys, lang: pickLanguage(acceptLanguages(req.get('accept-language'))) }));
    })().catch(next);
  });
  lti.whitelist({ route: '/deeplink/submit', method: 'POST' });
  lti.app.use(deepLinkingRoutes({ labs: d.labs, userIds, runtime: d.runtime, registry, log, urls, maxKeepDays: d.maxKeepDays ?? DEFAULT_RETENTION.maxKeepDays }) as Router);
  // errors from our handlers inside ltijs's (express 4) app: rendered here so nothing leaks a stack
  lti.app.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    d.respondWithError(err, req, res);
  });
  log.info({ jwks: urls.jwks }, 'lti.ready');
  return { app: lti.app, entryRoutes: ltiEntryRoutes(guardDeps, routes, ltijsKeyFrom(d.secretKey)), registry, urls,
    registrationUrl: async () => registrationUrl(urls, await keys.current()),
    rotateRegistrationKey: async () => registrationUrl(urls, await keys.rotate()),
    gradePorts: gradePorts(registry), frameAncestors: () => registry.frameAncestors(), provider: lti,
    roster: (contextKey) => courseRoster(contextKey, d.tokens),
    close: unshare,
  };
}
