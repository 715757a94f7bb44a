/**
 * LTI Dynamic Registration, tool side (what Moodle 4.x does when an admin pastes our registration
 * URL): fetch the platform's openid-configuration, register with the registration token asking
 * only for the scopes we use and both message types, store the platform and its deployment id,
 * and close the platform's registration window with `org.imsglobal.lti.close`.
 */
import type { Logger } from '../logger.js';
import { BackendFailure, BadRequest, Forbidden } from '../errors.js';
import { escapeHtml } from '../html.js';
import { translator } from '../i18n.js';
import type { PlatformRegistry } from './platforms.js';
import { TOOL_SCOPES, str, obj } from './claims.js';
import type { LtiUrls } from './urls.js';
import type { RegistrationKeys } from './registrationKey.js';

const TOOL_CONFIG = 'https://purl.imsglobal.org/spec/lti-tool-configuration';
const PLATFORM_CONFIG = 'https://purl.imsglobal.org/spec/lti-platform-configuration';
export const TOOL_NAME = 'Lab Orchestrator';


/** The client metadata we send (RFC 7591 + LTI tool configuration). */
export function registrationRequest(urls: LtiUrls): Record<string, unknown> {
  return {
    application_type: 'web',
    response_types: ['id_token'],
    grant_types: ['implicit', 'client_credentials'],
    initiate_login_uri: urls.login,
    redirect_uris: [urls.launch, urls.deepLink],
    client_name: TOOL_NAME,
    jwks_uri: urls.jwks,
    token_endpoint_auth_method: 'private_key_jwt',
    scope: TOOL_SCOPES.join(' '),
    [TOOL_CONFIG]: {
      // Moodle requires the target_link_uri's host *including the port*
      domain: new URL(urls.launch).host,
      description: 'Hands-on labs: a private network of virtual machines per student.',
      target_link_uri: urls.launch,
      claims: ['iss', 'sub', 'name', 'given_name', 'family_name', 'email'],
      messages: [
        { type: 'LtiResourceLinkRequest', target_link_uri: urls.launch, label: TOOL_NAME },
        { type: 'LtiDeepLinkingRequest', target_link_uri: urls.deepLink, label: `${TOOL_NAME}: add a lab` },
      ],
    },
  };
}

async function getJson(url: string, init: RequestInit, what: string): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new BackendFailure(`${what}: ${(err as Error).message}`, { publicMessage: `Registration failed: the platform's ${what} could not be reached.` });
  }
  const text = await res.text();
  if (!res.ok) throw new BackendFailure(`${what} answered ${res.status}: ${text.slice(0, 300)}`, { publicMessage: `Registration failed: the platform's ${what} answered ${res.status}.` });
  try {
    return obj(JSON.parse(text));
  } catch {
    throw new BackendFailure(`${what} is not JSON`, { publicMessage: `Registration failed: the platform's ${what} did not answer with JSON.` });
  }
}

/**
 * The origin allowed to frame a registration page: the platform that is registering, read from the
 * `openid_configuration` URL it handed us (Moodle runs registration inside a dialog iframe, before
 * the platform exists in our registry). Only with the right registration key; null otherwise.
 */
export async function registeringOrigin(query: Record<string, unknown>, keys: RegistrationKeys): Promise<string | null> {
  const openidUrl = str(query.openid_configuration);
  if (!/^https?:\/\//.test(openidUrl) || !(await keys.matches(str(query.key)))) return null;
  try {
    return new URL(openidUrl).origin;
  } catch {
    return null;
  }
}

/** Runs one dynamic registration; returns the page that closes the platform's window. */
export async function dynamicRegistration(query: Record<string, unknown>, d: { registry: PlatformRegistry; urls: LtiUrls; log: Logger; keys: RegistrationKeys; lang: string }): Promise<string> {
  const openidUrl = str(query.openid_configuration);
  const token = str(query.registration_token);
  if (!(await d.keys.matches(str(query.key)))) {
    throw new Forbidden('registration without the registration key', { publicMessage: 'This registration URL is not complete or no longer valid. Ask the operator of the tool for the current one (shown on /admin/lti to operators).' });
  }
  if (!/^https?:\/\//.test(openidUrl)) {
    throw new BadRequest('no openid_configuration', { publicMessage: 'This is the tool\'s registration URL: paste it into your platform\'s "tool URL" field (Moodle: Site administration → Plugins → Manage tools) instead of opening it here.' });
  }
  const conf = await getJson(openidUrl, { headers: { accept: 'application/json' } }, 'openid-configuration');
  const issuer = str(conf.issuer);
  if (!issuer || new URL(issuer).origin !== new URL(openidUrl).origin) {
    throw new BadRequest('openid-configuration issuer does not match its URL', { publicMessage: 'Registration failed: the platform\'s issuer does not match the configuration URL.' });
  }
  const endpoint = str(conf.registration_endpoint);
  if (!/^https?:\/\//.test(endpoint)) throw new BadRequest('no registration_endpoint', { publicMessage: 'Registration failed: the platform has no registration endpoint.' });
  const out = await getJson(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(registrationRequest(d.urls)),
  }, 'registration endpoint');
  const clientId = str(out.client_id);
  const deploymentId = str(obj(out[TOOL_CONFIG]).deployment_id);
  if (!clientId) throw new BackendFailure('registration response without client_id', { publicMessage: 'Registration failed: the platform did not return a client id.' });
  const platformName = str(obj(conf[PLATFORM_CONFIG]).product_family_code) || new URL(issuer).host;
  const p = await d.registry.register({
    issuer, clientId, name: platformName, registeredBy: 'dynamic',
    authUrl: str(conf.authorization_endpoint), tokenUrl: str(conf.token_endpoint), jwksUrl: str(conf.jwks_uri),
    deploymentIds: deploymentId ? [deploymentId] : [],
  });
  const t = translator(d.lang);
  return `<!doctype html><html lang="${escapeHtml(d.lang)}"><head><meta charset="utf-8"><title>${escapeHtml(t('reg.doneTitle'))}</title></head><body>
<p>${escapeHtml(t('reg.done', { tool: TOOL_NAME, issuer: p.issuer, clientId: p.clientId }))}</p>
<script>(window.opener || window.parent).postMessage({ subject: 'org.imsglobal.lti.close' }, ${escapeScriptString(new URL(openidUrl).origin)});</script></body></html>`;
}

/** A JSON string literal safe inside an inline script. */
function escapeScriptString(v: string): string {
  return JSON.stringify(v).replace(/</g, '\\u003c');
}
