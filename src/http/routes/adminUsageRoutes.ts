/**
 * Usage for administrators (auth/tenancy.ts decides who sees which platform):
 *
 *   GET /api/admin/usage                 every platform the actor may see (a platform's admin: its own)
 *   GET /api/admin/platforms/:id/usage   one platform; another platform's is a 404 to a platform's admin
 *   GET /admin/usage                     a page showing the first, for an admin session (#session=) or the operator (#token=)
 *
 * Per platform: its courses with their activities, labs by state and launches (store/Usage.ts).
 */
import express, { type RequestHandler, type Router } from 'express';
import { translator, type TextKey } from '../../i18n.js';
import { escapeHtml } from '../../html.js';
import { NotFound } from '../../errors.js';
import { requestLanguage } from '../errorHandler.js';
import { maySeePlatform, mustSeePlatform } from '../../auth/tenancy.js';
import type { PlatformDoc } from '../../store/Platform.js';
import { platformUsage } from '../../store/Usage.js';

export interface AdminUsageDeps {
  /** Every registered platform. */
  platforms: () => Promise<PlatformDoc[]>;
  /** requireAdmin from auth/tenancy.ts. */
  admin: RequestHandler;
}

async function usageJson(p: PlatformDoc) {
  return { id: p._id, issuer: p.issuer, clientId: p.clientId, name: p.name, ...(await platformUsage(p)) };
}

export function adminUsageRoutes(d: AdminUsageDeps): Router {
  const r = express.Router();
  r.get('/api/admin/usage', d.admin, async (req, res) => {
    const mine = (await d.platforms()).filter((p) => maySeePlatform(req.actor!, p._id));
    res.setHeader('Cache-Control', 'no-store');
    res.json({ platforms: await Promise.all(mine.map(usageJson)) });
  });
  r.get('/api/admin/platforms/:id/usage', d.admin, async (req, res) => {
    const id = String(req.params.id);
    mustSeePlatform(req.actor!, id);
    const p = (await d.platforms()).find((x) => x._id === id);
    if (!p) throw new NotFound(`platform ${id} not found`, { publicMessage: 'No such platform.' });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ platform: await usageJson(p) });
  });
  r.get('/admin/usage', (req, res) => {
    const lang = requestLanguage(req);
    const t = translator(lang);
    const e = (k: TextKey) => escapeHtml(t(k));
    const labels = Object.fromEntries((['usage.course', 'usage.activities', 'usage.running', 'usage.stopped', 'usage.launches', 'usage.total', 'usage.none', 'usage.denied'] as const).map((k) => [k.slice(6), t(k)]));
    // the credentials stay in the fragment (never sent to a server or a log); the data is filled in as text, never as HTML
    res.type('html').send(`<!doctype html><html lang="${escapeHtml(lang)}"><head><meta charset="utf-8"><title>${e('usage.title')}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head><body><main>
<h1>${e('usage.heading')}</h1>
<p>${e('usage.help')}</p>
<div id="usage" aria-live="polite"></div>
<script>
(function () {
  var L = ${JSON.stringify(labels).replace(/</g, '\\u003c')};
  var out = document.getElementById('usage');
  function el(tag, text) { var x = document.createElement(tag); if (text !== undefined) x.textContent = String(text); return x; }
  function row(cells, head) { var tr = el('tr'); cells.forEach(function (c, i) { var td = el(head || i === 0 ? 'th' : 'td', c); if (!head && i === 0) td.scope = 'row'; if (head) td.scope = 'col'; tr.appendChild(td); }); return tr; }
  var h = new URLSearchParams(location.hash.slice(1)); var t = h.get('token') || h.get('session');
  if (!t) { out.appendChild(el('p', L.denied)); return; }
  fetch('/api/admin/usage', { headers: { authorization: 'Bearer ' + t } }).then(function (r) { return r.ok ? r.json() : null; }).then(function (d) {
    if (!d) { out.appendChild(el('p', L.denied)); return; }
    d.platforms.forEach(function (p) {
      out.appendChild(el('h2', p.name || p.issuer));
      if (!p.courses.length) { out.appendChild(el('p', L.none)); return; }
      var table = el('table'); table.className = 'usage';
      table.appendChild(row([L.course, L.activities, L.running, L.stopped, L.launches], true));
      p.courses.forEach(function (c) { table.appendChild(row([c.title || c.course, c.activities, c.labs.running || 0, c.labs.stopped || 0, c.launches])); });
      table.appendChild(row([L.total, p.totals.activities, p.totals.labs.running || 0, p.totals.labs.stopped || 0, p.totals.launches]));
      out.appendChild(table);
    });
  });
})();
</script>
</main></body></html>`);
  });
  return r;
}
