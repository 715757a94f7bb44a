/**
 * LTI Dynamic Registration, platform side, validated like Moodle 4.5: `POST /register/start`
 * (a form on the page) sends the browser to the tool's registration URL with
 * `openid_configuration` and a one-hour, single-use `registration_token`; the tool then POSTs its
 * client metadata to `/register` with that token as Bearer and gets its client id and deployment id.
 */
import { randomBytes } from 'node:crypto';
import express, { type Router } from 'express';
import { BackendFailure, BadRequest } from '../errors.js';
import { DevPlatformGrant, DevPlatformTool, type DevPlatformToolDoc } from './models.js';
import { ALL_SCOPES, TOOL_CONFIG, registrationProblems } from './claims.js';
import { registerTool, stringRecord } from './registry.js';
import { sha256 } from './tokenRoutes.js';
import type { PlatformContext } from './context.js';

const REG_TTL_MS = 3600_000;

/** A fresh registration token (one hour, single use). */
export async function newRegistrationToken(registrationUrl: string | null = null): Promise<string> {
  const token = randomBytes(24).toString('base64url');
  await DevPlatformGrant.create({ _id: `registration:${sha256(token)}`, kind: 'registration', registrationUrl, expiresAt: new Date(Date.now() + REG_TTL_MS) });
  return token;
}

/** The URL the platform opens to start registering a tool. */
export async function registrationStartUrl(ctx: PlatformContext, toolRegistrationUrl: string): Promise<{ url: string; token: string }> {
  const u = new URL(toolRegistrationUrl);
  const token = await newRegistrationToken(toolRegistrationUrl);
  u.searchParams.set('openid_configuration', ctx.urls.openidConfiguration);
  u.searchParams.set('registration_token', token);
  return { url: u.toString(), token };
}

/**
 * Dynamic registration without a browser: open the tool's registration URL from the server (the
 * tool registers itself during that request, as ltijs does) and return the tool it registered.
 */
export async function registerByUrl(ctx: PlatformContext, toolRegistrationUrl: string): Promise<DevPlatformToolDoc> {
  const { url, token } = await registrationStartUrl(ctx, toolRegistrationUrl);
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  await res.arrayBuffer();
  const grant = await DevPlatformGrant.findById(`registration:${sha256(token)}`).lean();
  const tool = grant?.clientId ? await DevPlatformTool.findById(grant.clientId).lean() : null;
  if (!tool) throw new BackendFailure(`the tool at ${toolRegistrationUrl} did not register (its page answered ${res.status})`);
  return tool;
}

export function registrationRoutes(ctx: PlatformContext): Router {
  const r = express.Router();

  r.post('/register/start', async (req, res) => {
    const url = String((req.body as Record<string, unknown> | undefined)?.url ?? '');
    if (!/^https?:\/\//.test(url)) throw new BadRequest('the tool registration URL must be an absolute http(s) URL');
    res.redirect(303, (await registrationStartUrl(ctx, url)).url);
  });

  r.post('/register', async (req, res) => {
    const m = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
    const id = m?.[1] ? `registration:${sha256(m[1])}` : '';
    const grant = id ? await DevPlatformGrant.findById(id).lean() : null;
    if (!grant || grant.kind !== 'registration' || grant.usedAt || grant.expiresAt.getTime() <= Date.now()) {
      res.status(401).json({ error: 'invalid_token', error_description: 'registration token missing, unknown, used or expired' });
      return;
    }
    const b = (req.body ?? {}) as Record<string, unknown>;
    const problems = registrationProblems(b);
    if (problems.length) {
      res.status(400).json({ error: 'invalid_client_metadata', error_description: problems.join('; ') });
      return;
    }
    const claimed = await DevPlatformGrant.findOneAndUpdate({ _id: id, usedAt: null }, { $set: { usedAt: new Date() } }, { new: true });
    if (!claimed) {
      res.status(401).json({ error: 'invalid_token', error_description: 'registration token already used' });
      return;
    }
    const conf = b[TOOL_CONFIG] as Record<string, unknown>;
    const messages = Array.isArray(conf.messages) ? (conf.messages as Array<Record<string, unknown>>) : [];
    const dl = messages.find((x) => x.type === 'LtiDeepLinkingRequest');
    const requested = typeof b.scope === 'string' ? b.scope.split(' ') : [];
    const tool = await registerTool({
      name: typeof b.client_name === 'string' && b.client_name ? b.client_name : 'Registered tool',
      loginUrl: String(b.initiate_login_uri),
      targetLinkUri: String(conf.target_link_uri),
      redirectUris: b.redirect_uris as string[],
      jwksUrl: String(b.jwks_uri),
      deepLinkUrl: typeof dl?.target_link_uri === 'string' ? dl.target_link_uri : null,
      scopes: ALL_SCOPES.filter((s) => requested.includes(s)),
      custom: stringRecord(conf.custom_parameters),
      registeredBy: 'dynamic',
      registrationUrl: claimed.registrationUrl,
    });
    await DevPlatformGrant.updateOne({ _id: id }, { $set: { clientId: tool._id } });
    ctx.log.info({ clientId: tool._id, deploymentId: tool.deploymentId }, 'devplatform.tool_registered');
    res.status(200).json({
      ...b,
      client_id: tool._id,
      [TOOL_CONFIG]: { ...conf, deployment_id: tool.deploymentId },
    });
  });
  return r;
}
