/**
 * HTML shells for the lab page and the course overview. No inline script: each loads its bundled
 * module from /static/dist (built by `npm run build:web`), which reads the session token from the
 * URL fragment. Served with a strict CSP; framing is allowed (the pages live in Moodle's iframe).
 */
import type { RequestHandler } from 'express';
import { escapeHtml } from '../../html.js';
import { translator, type TextKey } from '../../i18n.js';
import { requestLanguage } from '../errorHandler.js';

/** Scripts only from us; xterm and noVNC set styles at run time, hence style-src 'unsafe-inline'. */
export const PAGE_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
  "connect-src 'self'", "font-src 'self' data:", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
].join('; ');

export function pageShell(o: { title: string; bundle: 'lab' | 'course'; data: Record<string, string>; lang?: string }): string {
  const lang = o.lang ?? 'en';
  const t = translator(lang);
  const attrs = Object.entries(o.data).map(([k, v]) => ` data-${k}="${escapeHtml(v)}"`).join('');
  return `<!doctype html>
<html lang="${escapeHtml(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(o.title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dist/${o.bundle}.css">
<script type="module" src="/static/dist/${o.bundle}.js"></script>
</head>
<body class="${o.bundle}-page">
<div id="app"${attrs}><p class="boot">${escapeHtml(t('common.loading'))}</p></div>
<noscript>${escapeHtml(t('common.noscript'))}</noscript>
</body>
</html>`;
}

export function servePage(o: { title: TextKey; bundle: 'lab' | 'course'; param: string }): RequestHandler {
  return (req, res) => {
    res.setHeader('Content-Security-Policy', PAGE_CSP);
    res.setHeader('Cache-Control', 'no-store');
    const lang = requestLanguage(req);
    res.type('html').send(pageShell({ title: translator(lang)(o.title), bundle: o.bundle, data: { [o.param]: String(req.params[o.param] ?? '') }, lang }));
  };
}
