/**
 * Launching, the way Moodle does it: `POST /launch` (a button on the course page) starts a launch
 * for a demo user and answers with an auto-submitted POST login initiation to the tool;
 * the tool redirects the browser to `/auth` (GET or form POST), which checks the OIDC request
 * and the browser session, then auto-POSTs a signed id_token and the state to the redirect_uri.
 */
import { randomBytes } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import { SignJWT } from 'jose';
import { BadRequest, NotFound } from '../errors.js';
import { DevPlatformActivity, DevPlatformLaunch, DevPlatformTool, type DevPlatformLaunchDoc } from './models.js';
import { DEMO_COURSE, demoUser, launchClaims } from './claims.js';
import { autoSubmitForm } from './html.js';
import type { PlatformContext } from './context.js';

export const SESSION_COOKIE = 'dp_session';
const LAUNCH_TTL_MS = 5 * 60_000;

/** The dev platform's browser session id (cookie), created when missing. */
export function platformSession(req: Request, res: Response, ctx: PlatformContext): string {
  const existing = readCookie(req, SESSION_COOKIE);
  if (existing && /^[\w-]{20,}$/.test(existing)) return existing;
  const id = randomBytes(18).toString('base64url');
  const path = new URL(ctx.urls.issuer).pathname || '/';
  res.append('Set-Cookie', `${SESSION_COOKIE}=${id}; Path=${path}; HttpOnly; SameSite=Lax${ctx.secureCookies ? '; Secure' : ''}`);
  return id;
}

export function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export function oidcRoutes(ctx: PlatformContext): Router {
  const r = express.Router();

  /** Body: user (id or key), and activityId for a resource-link launch or clientId + deepLink=1 for deep linking. */
  r.post('/launch', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const user = demoUser(str(body.user), ctx.users);
    if (!user) throw new BadRequest('unknown demo user');
    const deepLink = ['1', 'true', 'on'].includes(str(body.deepLink));
    let clientId = str(body.clientId);
    let activityId: string | null = null;
    let target = '';
    if (!deepLink) {
      const activity = await DevPlatformActivity.findById(str(body.activityId)).lean();
      if (!activity) throw new NotFound('no such activity');
      clientId = activity.clientId;
      activityId = activity._id;
      target = activity.url ?? '';
    } else if (user.role !== 'Instructor') {
      throw new BadRequest('only a teacher can add activities');
    }
    const tool = await DevPlatformTool.findById(clientId).lean();
    if (!tool) throw new NotFound('no such tool');
    target ||= deepLink ? (tool.deepLinkUrl ?? tool.targetLinkUri) : tool.targetLinkUri;
    const launch = await DevPlatformLaunch.create({
      _id: randomBytes(16).toString('base64url'),
      clientId, userId: user.id, contextId: DEMO_COURSE.id, activityId,
      messageType: deepLink ? 'LtiDeepLinkingRequest' : 'LtiResourceLinkRequest',
      sessionId: platformSession(req, res, ctx), targetLinkUri: target,
      locale: /^[a-z]{2,3}([-_][A-Za-z]{2,4})?$/.test(str(body.locale)) ? str(body.locale) : 'en',
      expiresAt: new Date(Date.now() + LAUNCH_TTL_MS),
    });
    ctx.log.info({ clientId, activityId, user: user.key, deepLink }, 'devplatform.launch_started');
    autoSubmitForm(res, tool.loginUrl, {
      iss: ctx.urls.issuer,
      target_link_uri: target,
      login_hint: user.id,
      lti_message_hint: JSON.stringify({ cmid: activityId ?? 0, launchid: launch._id }),
      client_id: clientId,
      lti_deployment_id: tool.deploymentId,
    }, 'Launch');
  });

  const auth = async (req: Request, res: Response) => {
    const p = (req.method === 'GET' ? req.query : req.body ?? {}) as Record<string, unknown>;
    const tool = await DevPlatformTool.findById(str(p.client_id)).lean();
    if (!tool) throw new BadRequest('unknown client_id');
    const redirectUri = str(p.redirect_uri);
    if (!tool.redirectUris.includes(redirectUri)) throw new BadRequest('redirect_uri is not one registered for this tool');
    if (!str(p.scope).split(' ').includes('openid')) throw new BadRequest('scope must include openid');
    if (p.response_type !== 'id_token') throw new BadRequest('response_type must be id_token');
    if (p.response_mode !== 'form_post') throw new BadRequest('response_mode must be form_post');
    const nonce = str(p.nonce);
    const state = str(p.state);
    if (!nonce) throw new BadRequest('nonce is required');
    if (!state) throw new BadRequest('state is required');
    const launch = await consumeLaunch(req, tool._id, str(p.login_hint), str(p.lti_message_hint));
    const idToken = await signIdToken(ctx, launch, tool, nonce);
    ctx.log.info({ clientId: tool._id, messageType: launch.messageType }, 'devplatform.id_token_sent');
    autoSubmitForm(res, redirectUri, { id_token: idToken, state }, 'Continue to the tool');
  };
  r.get('/auth', auth);
  r.post('/auth', auth);
  return r;
}

/** The launch named by the message hint, consumed atomically; same user, tool and browser session. */
async function consumeLaunch(req: Request, clientId: string, loginHint: string, messageHint: string): Promise<DevPlatformLaunchDoc> {
  let launchId = '';
  try {
    launchId = str((JSON.parse(messageHint) as { launchid?: unknown }).launchid);
  } catch {
    throw new BadRequest('lti_message_hint is not one this platform sent');
  }
  if (!loginHint) throw new BadRequest('login_hint is required');
  const sessionId = readCookie(req, SESSION_COOKIE) ?? '';
  const launch = await DevPlatformLaunch.findOneAndUpdate(
    { _id: launchId, clientId, userId: loginHint, sessionId, usedAt: null, expiresAt: { $gt: new Date() } },
    { $set: { usedAt: new Date() } },
    { new: true, lean: true },
  );
  if (launch) return launch;
  const known = await DevPlatformLaunch.findById(launchId).lean();
  if (!known) throw new BadRequest('unknown launch');
  if (known.clientId !== clientId || known.userId !== loginHint) throw new BadRequest('login_hint or client_id does not match the launch');
  if (known.sessionId !== sessionId) throw new BadRequest('the launch was started in another browser session (session cookie missing or different)');
  if (known.usedAt) throw new BadRequest('this launch was already used');
  throw new BadRequest('this launch has expired');
}

async function signIdToken(
  ctx: PlatformContext,
  launch: DevPlatformLaunchDoc,
  tool: { _id: string; deploymentId: string; typeId: number; custom: Record<string, string> },
  nonce: string,
): Promise<string> {
  const user = demoUser(launch.userId, ctx.users);
  if (!user) throw new BadRequest('unknown user');
  const activity = launch.activityId ? await DevPlatformActivity.findById(launch.activityId).lean() : null;
  if (launch.activityId && !activity) throw new NotFound('the activity was deleted');
  const now = Math.floor(Date.now() / 1000);
  const claims = launchClaims({
    issuer: ctx.urls.issuer, clientId: tool._id, deploymentId: tool.deploymentId, typeId: tool.typeId, user, nonce,
    targetLinkUri: launch.targetLinkUri, messageType: launch.messageType,
    ...(activity ? { activity: { id: activity._id, title: activity.title, lineItemId: activity.lineItemId, custom: activity.custom } } : {}),
    ...(launch.messageType === 'LtiDeepLinkingRequest' ? { deepLink: { returnUrl: ctx.urls.deepLinkReturn, data: launch._id } } : {}),
    toolCustom: tool.custom, returnUrl: ctx.urls.page, now, locale: launch.locale ?? 'en',
  });
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: ctx.key.kid, typ: 'JWT' })
    .setIssuer(ctx.urls.issuer)
    .setAudience(tool._id)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(ctx.key.privateKey);
}
