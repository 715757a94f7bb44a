/** The one place errors become HTTP responses. 5xx are logged with their cause; clients never see stacks. */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, TooManyRequests, httpStatusFor } from '../errors.js';

export const notFoundHandler: RequestHandler = (req, res) => {
  sendError(req.accepts(['json', 'html']) === 'html', res, 404, 'Not found');
};

export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  let status = httpStatusFor(err);
  // body-parser and friends carry a status of their own
  const own = (err as { status?: unknown; statusCode?: unknown } | null)?.status;
  if (status === 500 && typeof own === 'number' && own >= 400 && own < 500) status = own;
  const message = err instanceof AppError ? err.publicMessage : status < 500 ? String((err as Error).message ?? 'Bad request') : 'Internal error';
  if (status >= 500) req.log?.error({ err }, 'http.error');
  else req.log?.info({ status, error: (err as Error)?.name, message }, 'http.refused');
  if (res.headersSent) return;
  if (err instanceof TooManyRequests) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
  sendError(req.accepts(['json', 'html']) === 'html', res, status, message);
};

function sendError(html: boolean, res: Parameters<RequestHandler>[1], status: number, message: string): void {
  if (html) {
    res.status(status).type('html').send(errorPage(status, message));
  } else {
    res.status(status).json({ error: message, status });
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function errorPage(status: number, message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${status} – Lab Orchestrator</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head>
<body class="error-page"><main><h1>Something went wrong (${status})</h1><p>${escapeHtml(message)}</p></main></body></html>`;
}
