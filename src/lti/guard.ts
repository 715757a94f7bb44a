/**
 * Our LTI entry points, ahead of ltijs's app: the login initiation (known platform and deployment,
 * our own target_link_uri; a fresh state bound to a strong nonce, sent to the platform's auth
 * endpoint) and the id_token guard (state cookie, state read and removed once answered, nonce
 * recorded once while verifyIdToken runs) in front of the launch and deep-linking handlers; and
 * security headers on every /lti response, ltijs's included.
 * A refusal is a 4xx through the app's error handler and writes nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import cookieParser from 'cookie-parser';
import { BadRequest, Forbidden, Unauthorized } from '../errors.js';
import { isDuplicateKey } from '../store/database.js';
import { LoginState, insertLoginState, insertUsedNonce, removeLoginState, removeUsedNonce, type LoginStateDoc } from '../store/LtiLogin.js';
import type { PlatformRegistry } from './platforms.js';
import type { PlatformDoc } from '../store/Platform.js';
import { verifyIdToken, type VerifiedLaunch, type VerifyDeps } from './verifyIdToken.js';
import type { RecentLogins } from './RecentLogins.js';
import { CLAIM, DEEP_LINKING_REQUEST, RESOURCE_LINK_REQUEST, mapRoles, str } from './claims.js';

const LOGIN_TTL_MS = 10 * 60_000;
/** The state cookie's life: the platform answers a login at once (prompt=none). */
const STATE_COOKIE_MS = 60_000;
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
  /**
   * Reads a launch may need, started at its login from what earlier launches taught this process
   * (reads only); handed to `prefetch` when the id_token comes back here (see RecentLogins).
   */
  atLogin?: (login: LoginStateDoc, loginHint: string) => unknown;
  /**
   * Reads a resource-link launch will need, started before the id_token's signature is checked
   * (reads only: what a refused token started is dropped); left for the route in res.locals.prefetched.
   */
  prefetch?: (login: LoginStateDoc, idToken: string, atLogin: unknown) => unknown;
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
  return safe(async (req, res) => {
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
    // the platform's authentication request (OIDC, form_post), its state bound to a strong nonce
    const platform = platforms.find((x) => !deploymentId || x.deploymentIds.includes(deploymentId)) ?? platforms[0]!;
    const state = randomBytes(25).toString('hex');
    const nonce = randomBytes(24).toString('base64url');
    const login = { _id: state, nonce, issuer: iss, clientId, deploymentId, targetLinkUri, expiresAt: new Date(Date.now() + LOGIN_TTL_MS) };
    const early = d.atLogin?.(login, str(p.login_hint));
    await insertLoginState(login);
    d.logins?.add(login, early);
    const auth = new URL(platform.authUrl);
    for (const [k, v] of Object.entries({
      response_type: 'id_token', response_mode: 'form_post', id_token_signed_response_alg: 'RS256', scope: 'openid',
      client_id: clientId ?? platform.clientId,
      // the platform checks it against the registered redirect URIs, which carry no query
      redirect_uri: targetLinkUri.split('?')[0]!, login_hint: str(p.login_hint), nonce, prompt: 'none', state,
      ...(str(p.lti_message_hint) ? { lti_message_hint: str(p.lti_message_hint) } : {}),
      ...(deploymentId ? { lti_deployment_id: deploymentId } : {}),
    })) auth.searchParams.set(k, v);
    // the browser that started the login proves it with this cookie when the id_token comes back
    res.cookie(`state${state}`, iss, { ...d.cookieOptions, maxAge: STATE_COOKIE_MS });
    res.redirect(302, auth.toString());
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
    const recent = d.logins?.take(state);
    const login = recent?.doc ?? (await LoginState.findById(state).lean());
    if (login) res.once('finish', () => { removeLoginState(state).catch(() => undefined); });
    if (!login || login.expiresAt.getTime() < Date.now() || login.issuer !== cookie) {
      clear();
      throw new Unauthorized('unknown, used or expired state', { publicMessage: 'The launch was refused: it was already used or has expired. Open the activity again.' });
    }
    // the nonce's record travels to the database while the signature is checked; a refusal takes it back
    const nonce = recordNonce(login.issuer, login.nonce);
    if (expected === RESOURCE_LINK_REQUEST && d.prefetch) res.locals.prefetched = d.prefetch(login, idToken, recent?.early);
    let verified;
    try {
      verified = await verifyIdToken(idToken, login, expected, d);
      if (expected === DEEP_LINKING_REQUEST && mapRoles(verified.claims[CLAIM.roles]) === 'learner') {
        throw new Forbidden('deep linking by a learner', { publicMessage: 'Only teachers can add labs to a course.' });
      }
    } catch (err) {
      clear();
      await nonce.takeBack();
      throw err;
    }
    res.locals.verified = verified;
    res.locals.nonceRecorded = nonce.recorded;
    next();
  });
}

interface NonceRecord {
  /** Resolves once recorded; rejects (401) when the nonce was already used. */
  recorded: Promise<void>;
  /** Removes the record if this call wrote it (the launch was refused before it was used). */
  takeBack(): Promise<void>;
}

/**
 * The one atomic once-only gate (an insert on a unique _id: two posts of one id_token can both
 * read the state, and the state's nonce is bound to it one to one). The route awaits
 * it beside its first reads and writes (which repeat the winner's idempotent upserts at most) and
 * before anything else; a rejection is handled there. Only the post that wrote the record, and was
 * then refused, takes it back: one accepted launch per nonce at most, and a refusal writes nothing.
 */
function recordNonce(issuer: string, nonce: string): NonceRecord {
  const id = createHash('sha256').update(`${issuer}\n${nonce}`).digest('base64url');
  const inserted = insertUsedNonce({ _id: id, expiresAt: new Date(Date.now() + NONCE_TTL_MS) });
  const recorded = inserted.then(
    () => undefined,
    (err: unknown) => {
      if (isDuplicateKey(err)) throw new Unauthorized('nonce already used', { publicMessage: 'The launch was refused: it was already used.' });
      throw err;
    },
  );
  recorded.catch(() => undefined); // awaited by the route; this only keeps a route that failed first from leaving it unhandled
  return {
    recorded,
    // a record that cannot be taken back expires like any other; the refusal stands either way
    takeBack: () => inserted.then(() => removeUsedNonce(id).catch(() => undefined), () => undefined),
  };
}

/** What idTokenGuard leaves for the route: the verified launch, its nonce record (await it) and what `prefetch` started. */
export function verifiedLaunch<P = unknown>(res: Response): { verified: VerifiedLaunch; nonceRecorded: Promise<void>; prefetched: P | undefined } {
  return { verified: res.locals.verified as VerifiedLaunch, nonceRecorded: res.locals.nonceRecorded as Promise<void>, prefetched: res.locals.prefetched as P | undefined };
}

/** What runs after a verified id_token: the launch and the deep-linking catalog. */
export interface VerifiedRoutes {
  launch: RequestHandler;
  deepLink: RequestHandler;
}

/** Our middleware inside ltijs's app (its serverAddon hook): headers on every /lti response it answers. */
export function installGuards(d: GuardDeps): (app: Express) => void {
  return (app) => {
    app.use(securityHeaders(d));
  };
}

/**
 * The login initiation and the id_token POSTs (launch and deep linking), mounted at /lti ahead of
 * ltijs's app and answered here: the form and the state cookie (signed with `cookieSecret`) parsed,
 * the login checked and sent on to the platform, the id_token verified once by us and answered by
 * `routes`. ltijs's login (a platform read of its own) and its validation (a second signature check
 * and five database writes of tokens nothing reads) never run.
 */
export function ltiEntryRoutes(d: GuardDeps, routes: VerifiedRoutes, cookieSecret: string): Router {
  const parse = [securityHeaders(d), express.urlencoded({ extended: false }), cookieParser(cookieSecret)];
  return express.Router()
    .all('/login', ...parse, loginGuard(d))
    .post('/', ...parse, idTokenGuard(d), routes.launch)
    .post('/deeplink', ...parse, idTokenGuard(d), routes.deepLink);
}
