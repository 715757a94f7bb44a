/**
 * Checks run inside ltijs's app before its own (installed through its `serverAddon` hook, after
 * body and cookie parsing): security headers on every /lti response, the login initiation guard
 * (known platform, our own target_link_uri) that also binds a fresh nonce to ltijs's state, and the
 * id_token guard (state cookie, state read and removed once answered, verifyIdToken, nonce recorded
 * once) in front of the launch and deep-linking handlers.
 * A refusal is a 4xx through the app's error handler and writes nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import { BadRequest, Forbidden, Unauthorized } from '../errors.js';
import { isDuplicateKey } from '../store/database.js';
import { LoginState, insertUsedNonce } from '../store/LtiLogin.js';
import type { PlatformRegistry } from './platforms.js';
import type { PlatformDoc } from '../store/Platform.js';
import { verifyIdToken, type VerifiedLaunch, type VerifyDeps } from './verifyIdToken.js';
import type { RecentLogins } from './RecentLogins.js';
import { CLAIM, DEEP_LINKING_REQUEST, RESOURCE_LINK_REQUEST, mapRoles, str } from './claims.js';

const LOGIN_TTL_MS = 10 * 60_000;
const NONCE_TTL_MS = 2 * 3600_000;

export interface GuardDeps extends VerifyDeps {
  registry: PlatformRegistry;
  /** Our public origin, e.g. https://labs.example.edu. */
  publicUrl: string;
  /** Paths (under /lti) a login's target_link_uri may point to. */
  targetPaths: string[];
  cookieOptions: { secure: boolean; sameSite: 'none' | 'lax'; httpOnly: true; signed: true };
  /** Logins this process wrote (not read back when their id_token comes here). */
  logins?: RecentLogins;
}

/** Express 4 (ltijs) does not catch async errors: route them to next(). */
function safe(fn: (req: Request, res: Response, next: NextFunction) => Promise<void>): RequestHandler {
  return (req, res, next) => { fn(req, res, next).catch(next); };
}

export function securityHeaders(d: { registry: PlatformRegistry }): RequestHandler {
  return (req, res, next) => {
    const ancestors = d.registry.frameAncestors();
    res.setHeader('Content-Security-Policy', `frame-ancestors ${ancestors.length ? ancestors.join(' ') : "'none'"}`);
    res.setHeader('Referrer-Policy', 'no-referrer');
    // our JWKS may be cached briefly by platforms; nothing else here may be
    res.setHeader('Cache-Control', req.path === '/keys' ? 'public, max-age=300' : 'no-store');
    res.removeHeader('Access-Control-Allow-Origin');
    next();
  };
}

export function loginGuard(d: GuardDeps): RequestHandler {
  return safe(async (req, res, next) => {
    const p = { ...(req.query as Record<string, unknown>), ...((req.body ?? {}) as Record<string, unknown>) };
    const iss = str(p.iss);
    const targetLinkUri = str(p.target_link_uri);
    const clientId = str(p.client_id) || null;
    const deploymentId = str(p.lti_deployment_id) || null;
    if (!iss || !str(p.login_hint) || !targetLinkUri) throw new BadRequest('login initiation without iss, login_hint or target_link_uri');
    let platforms = clientId ? [await d.registry.find(iss, clientId)].filter((x) => x !== null) : await d.registry.byIssuer(iss);
    if (!platforms.length) {
      throw new BadRequest(`login from an unregistered platform ${iss}`, { publicMessage: 'This platform is not registered with the tool. Ask your administrator to register it.' });
    }
    const has = (ps: PlatformDoc[]) => ps.some((x) => x.deploymentIds.includes(deploymentId ?? ''));
    // a deployment added on another replica moments ago: look again before refusing
    if (deploymentId && !has(platforms)) {
      await d.registry.reload();
      platforms = clientId ? [await d.registry.find(iss, clientId)].filter((x) => x !== null) : await d.registry.byIssuer(iss);
    }
    if (deploymentId && !has(platforms)) {
      throw new BadRequest('login with an unregistered deployment id', { publicMessage: 'This deployment of the tool is not registered.' });
    }
    let target: URL;
    try {
      target = new URL(targetLinkUri);
    } catch {
      throw new BadRequest('target_link_uri is not a URL');
    }
    if (target.origin !== new URL(d.publicUrl).origin || !d.targetPaths.includes(target.pathname)) {
      throw new BadRequest(`target_link_uri ${target.origin}${target.pathname} is not this tool`, { publicMessage: 'The launch points to an address that is not this tool.' });
    }
    // ltijs answers with a redirect to the platform's auth endpoint; bind a strong nonce to its state there
    const redirect = res.redirect.bind(res) as (status: number, url: string) => void;
    (res as unknown as { redirect: (u: string) => void }).redirect = (location: string) => {
      void (async () => {
        const u = new URL(location);
        const state = u.searchParams.get('state') ?? '';
        const nonce = randomBytes(24).toString('base64url');
        u.searchParams.set('nonce', nonce);
        const login = { _id: state, nonce, issuer: iss, clientId, deploymentId, targetLinkUri, expiresAt: new Date(Date.now() + LOGIN_TTL_MS) };
        await LoginState.create(login);
        d.logins?.add(login);
        redirect(302, u.toString());
      })().catch(next);
    };
    next();
  });
}

export function idTokenGuard(d: GuardDeps): RequestHandler {
  return safe(async (req, res, next) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const idToken = str(body.id_token);
    const state = str(body.state);
    if (!idToken || !state) throw new BadRequest('no id_token and state posted', { publicMessage: 'Open this activity from your course.' });
    const expected = req.path === '/deeplink' ? DEEP_LINKING_REQUEST : RESOURCE_LINK_REQUEST;
    const cookie = (req.signedCookies as Record<string, unknown> | undefined)?.[`state${state}`];
    const clear = () => res.clearCookie(`state${state}`, d.cookieOptions);
    if (typeof cookie !== 'string') {
      clear();
      throw new Unauthorized('state cookie missing or not for this state', {
        publicMessage: 'The launch was refused: this browser did not start it (state cookie missing). If your browser blocks third-party cookies, open the activity in a new window.',
      });
    }
    // read, not taken: the nonce record below is the once-only gate (FerretDB's findOneAndDelete is
    // no compare-and-set either); the used login goes once the response is out, off the launch's path
    const login = d.logins?.take(state) ?? (await LoginState.findById(state).lean());
    if (login) res.once('finish', () => { LoginState.deleteOne({ _id: state }).catch(() => undefined); });
    if (!login || login.expiresAt.getTime() < Date.now() || login.issuer !== cookie) {
      clear();
      throw new Unauthorized('unknown, used or expired state', { publicMessage: 'The launch was refused: it was already used or has expired. Open the activity again.' });
    }
    let verified;
    try {
      verified = await verifyIdToken(idToken, login, expected, d);
    } catch (err) {
      clear();
      throw err;
    }
    if (expected === DEEP_LINKING_REQUEST && mapRoles(verified.claims[CLAIM.roles]) === 'learner') {
      throw new Forbidden('deep linking by a learner', { publicMessage: 'Only teachers can add labs to a course.' });
    }
    res.locals.verified = verified;
    res.locals.nonceRecorded = recordNonce(login.issuer, login.nonce);
    next();
  });
}

/**
 * The one atomic once-only gate (an insert on a unique _id: two posts of one id_token can both
 * read the state, and the state's nonce is bound to it one to one). The route awaits
 * it beside its first reads and writes (which repeat the winner's idempotent upserts at most) and
 * before anything else; a rejection is handled there.
 */
function recordNonce(issuer: string, nonce: string): Promise<void> {
  const id = createHash('sha256').update(`${issuer}\n${nonce}`).digest('base64url');
  const p = insertUsedNonce({ _id: id, expiresAt: new Date(Date.now() + NONCE_TTL_MS) }).then(
    () => undefined,
    (err: unknown) => {
      if (isDuplicateKey(err)) throw new Unauthorized('nonce already used', { publicMessage: 'The launch was refused: it was already used.' });
      throw err;
    },
  );
  p.catch(() => undefined); // awaited by the route; this only keeps a route that failed first from leaving it unhandled
  return p;
}

/** What idTokenGuard leaves for the route: the verified launch and its nonce record (await it). */
export function verifiedLaunch(res: Response): { verified: VerifiedLaunch; nonceRecorded: Promise<void> } {
  return { verified: res.locals.verified as VerifiedLaunch, nonceRecorded: res.locals.nonceRecorded as Promise<void> };
}

/** What runs after a verified id_token: the launch and the deep-linking catalog. */
export interface VerifiedRoutes {
  launch: RequestHandler;
  deepLink: RequestHandler;
}

/**
 * Our middleware inside ltijs's app (its serverAddon hook). The id_token POSTs end here: verified
 * once by us, answered by `routes`; ltijs's own validation (a second signature check and five
 * database writes of tokens nothing reads) never runs for them.
 */
export function installGuards(d: GuardDeps, routes: VerifiedRoutes): (app: Express) => void {
  return (app) => {
    app.use(securityHeaders(d));
    app.all('/login', loginGuard(d));
    app.post('/', idTokenGuard(d), routes.launch);
    app.post('/deeplink', idTokenGuard(d), routes.deepLink);
  };
}
