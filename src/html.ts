/** HTML text helpers: the one place markup is escaped and the plain error page is rendered. A leaf. */
import { translator } from './i18n.js';

/** Escape text for an HTML text node or a quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The tool's error page: status, a safe message, and the problems list when there is one, in `lang`. */
export function errorPage(status: number, message: string, problems: readonly string[] = [], lang = 'en'): string {
  const t = translator(lang);
  const list = problems.length ? `<ul class="problems">${problems.map((p) => `<li><code>${escapeHtml(p)}</code></li>`).join('')}</ul>` : '';
  return `<!doctype html><html lang="${escapeHtml(lang)}"><head><meta charset="utf-8"><title>${status} – ${escapeHtml(t('app.name'))}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head>
<body class="error-page"><main><h1>${escapeHtml(t('err.title', { status }))}</h1><p>${escapeHtml(message)}</p>${list}</main></body></html>`;
}
