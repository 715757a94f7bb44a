/** HTML text helpers: the one place markup is escaped and the plain error page is rendered. A leaf. */

/** Escape text for an HTML text node or a quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The tool's error page: status, a safe message, and the problems list when there is one. */
export function errorPage(status: number, message: string, problems: readonly string[] = []): string {
  const list = problems.length ? `<ul class="problems">${problems.map((p) => `<li><code>${escapeHtml(p)}</code></li>`).join('')}</ul>` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${status} – Lab Orchestrator</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head>
<body class="error-page"><main><h1>Something went wrong (${status})</h1><p>${escapeHtml(message)}</p>${list}</main></body></html>`;
}
