/** HTML helpers for the development platform's server-rendered pages. */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import { escapeHtml } from '../html.js';

export { escapeHtml };

/** A page shell using /static/app.css. `nonce` allows the page's own inline scripts only. */
export function page(title: string, body: string, nonce: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css">
<style nonce="${nonce}">.dp table{border-collapse:collapse;margin:.5rem 0 1.5rem}.dp th,.dp td{border:1px solid #dde1e6;padding:.3rem .6rem;text-align:left;vertical-align:top}
.dp form.inline{display:inline}.dp fieldset{border:1px solid #dde1e6;border-radius:6px;margin:1rem 0}.dp label{display:block;margin:.3rem 0}
.dp input[type=text],.dp input[type=url]{width:100%;max-width:40rem;font:inherit}.dp code{word-break:break-all}.dp iframe.tool-frame{width:100%;height:32rem;border:1px solid #b8c0cc;border-radius:6px;background:#fff}</style></head>
<body class="dp"><main>${body}</main></body></html>`;
}

/** Send HTML with a CSP that allows only this response's nonce for scripts and styles. */
export function sendHtml(res: Response, status: number, render: (nonce: string) => string): void {
  const nonce = randomBytes(16).toString('base64url');
  res.setHeader('Content-Security-Policy', `default-src 'self'; script-src 'nonce-${nonce}'; style-src 'self' 'nonce-${nonce}'; frame-ancestors 'self'`);
  res.setHeader('Cache-Control', 'no-store');
  res.status(status).type('html').send(render(nonce));
}

/**
 * A form that POSTs `fields` to `action` as soon as the page loads (the way platforms do login
 * initiation and the id_token hand-off). Without script, a visible button submits it.
 */
export function autoSubmitForm(res: Response, action: string, fields: Record<string, string>, label = 'Continue'): void {
  sendHtml(res, 200, (nonce) =>
    page(
      label,
      `<form method="post" action="${escapeHtml(action)}" id="autosubmit">
${Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`).join('\n')}
<p>Redirecting to the tool…</p><button type="submit" class="primary">${escapeHtml(label)}</button></form>
<script nonce="${nonce}">document.getElementById('autosubmit').submit();</script>`,
      nonce,
    ),
  );
}
