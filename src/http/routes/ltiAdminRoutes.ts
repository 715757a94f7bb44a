/**
 * Platform registration: the page showing the URL to paste into Moodle (and the URLs for manual
 * registration), and the admin API (auth/tenancy.ts decides who may do what):
 *
 *   GET  /api/admin/platforms                 operator: every registration; a platform's admin: its own
 *   POST /api/admin/platforms                 operator only: register, or update the same issuer + client id
 *   GET  /api/admin/lti                       operator only: the tool's URLs with the registration URL (its key)
 *   POST /api/admin/lti/registration-key      operator only: a new key (the old registration URL stops working)
 */
import { translator, type TextKey } from '../../i18n.js';
import { requestLanguage } from '../errorHandler.js';
import express, { type Router } from 'express';
import type { SessionTokens } from '../../auth/session.js';
import { maySeePlatform, requireAdmin, requireOperator } from '../../auth/tenancy.js';
import { escapeHtml } from '../../html.js';
import type { PlatformDoc } from '../../store/Platform.js';
import type { LtiModule } from '../../lti/createLti.js';

export function platformJson(p: PlatformDoc): Record<string, unknown> {
  return {
    id: p._id, issuer: p.issuer, clientId: p.clientId, name: p.name, authUrl: p.authUrl, tokenUrl: p.tokenUrl, jwksUrl: p.jwksUrl,
    deploymentIds: p.deploymentIds, kid: p.kid, registeredBy: p.registeredBy, createdAt: p.createdAt, updatedAt: p.updatedAt,
  };
}

export function ltiAdminRoutes(d: { lti: LtiModule; sessions: SessionTokens; adminToken: string | undefined }): Router {
  const r = express.Router();
  const u = d.lti.urls;

  r.get('/admin/lti', (req, res) => {
    const lang = requestLanguage(req);
    const t = translator(lang);
    const e = (k: TextKey) => escapeHtml(t(k));
    const row = (k: TextKey, v: string) => `<tr><th scope="row">${e(k)}</th><td><code>${escapeHtml(v)}</code></td></tr>`;
    // the registration URL carries a key: fetched with admin credentials from the fragment (#token= or #session=)
    res.type('html').send(`<!doctype html><html lang="${escapeHtml(lang)}"><head><meta charset="utf-8"><title>${e('reg.title')}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head><body><main>
<h1>${e('reg.heading')}</h1>
<h2>${e('reg.dynamic')}</h2>
<p>${e('reg.dynamicHelp')}</p>
<p><code id="registration-url">${e('reg.urlHidden')}</code></p>
<h2>${e('reg.manual')}</h2>
<table>${row('reg.toolUrl', u.launch)}${row('reg.loginUrl', u.login)}${row('reg.redirectUris', `${u.launch}\n${u.deepLink}`)}${row('reg.deepLinkUrl', u.deepLink)}${row('reg.jwksUrl', u.jwks)}</table>
<p>${e('reg.then')}
<code>lab-orchestrator platform add --issuer … --client-id … --auth-url … --token-url … --jwks-url … --deployment-id …</code>
${e('reg.or')} <code>POST /api/admin/platforms</code>.</p>
<p>${e('reg.moodleNote')}</p>
<script>
(function () {
  var h = new URLSearchParams(location.hash.slice(1)); var t = h.get('token') || h.get('session');
  if (!t) return;
  fetch('/api/admin/lti', { headers: { authorization: 'Bearer ' + t } }).then(function (r) { return r.ok ? r.json() : null; })
    .then(function (d) { if (d) document.getElementById('registration-url').textContent = d.tool.registration; });
})();
</script>
</main></body></html>`);
  });

  const admin = requireAdmin(d.sessions, d.adminToken);
  const api = express.Router();
  api.use(admin);
  api.use(express.json({ limit: '50kb' }));
  api.get('/', async (req, res) => {
    const mine = (await d.lti.registry.list()).filter((p) => maySeePlatform(req.actor!, p._id));
    res.json({ platforms: mine.map(platformJson), tool: u });
  });
  api.post('/', requireOperator(), async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const existed = typeof b.issuer === 'string' && typeof b.clientId === 'string' && (await d.lti.registry.find(b.issuer, b.clientId)) !== null;
    const p = await d.lti.registry.register({
      issuer: b.issuer as string, clientId: b.clientId as string, name: b.name as string | undefined,
      authUrl: b.authUrl as string, tokenUrl: b.tokenUrl as string, jwksUrl: b.jwksUrl as string,
      deploymentIds: (Array.isArray(b.deploymentIds) ? b.deploymentIds : b.deploymentId !== undefined ? [b.deploymentId] : []) as string[],
      registeredBy: 'manual',
    }, { byOperator: true });
    res.status(existed ? 200 : 201).json({ platform: platformJson(p), tool: u });
  });
  r.use('/api/admin/platforms', api);
  r.get('/api/admin/lti', admin, requireOperator(), async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ tool: { ...u, registration: await d.lti.registrationUrl() } });
  });
  r.post('/api/admin/lti/registration-key', admin, requireOperator(), async (req, res) => {
    const registration = await d.lti.rotateRegistrationKey();
    req.log?.info('lti.registration_key_rotated');
    res.setHeader('Cache-Control', 'no-store');
    res.json({ tool: { ...u, registration } });
  });
  return r;
}
