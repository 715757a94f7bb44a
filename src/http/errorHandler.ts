/** The one place errors become HTTP responses. 5xx are logged with their cause; clients never see stacks. */
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { AppError, TooManyRequests, ValidationFailed, httpStatusFor } from '../errors.js';
import { errorPage } from '../html.js';
import { acceptLanguages, pickLanguage, translator } from '../i18n.js';

/** The language of a response: the session's launch locale, then the browser's Accept-Language. */
export function requestLanguage(req: Request): string {
  return pickLanguage([req.session?.locale, ...acceptLanguages(req.get('accept-language'))]);
}

/** Express-independent shape so ltijs's own (Express 4) app can render through the same handler. */
export type ErrorResponder = (err: unknown, req: Request, res: Response) => void;

export const notFoundHandler: RequestHandler = (req, res) => {
  sendError(req, res, 404, translator(requestLanguage(req))('err.notFound'), []);
};

export const respondWithError: ErrorResponder = (err, req, res) => {
  let status = httpStatusFor(err);
  // body-parser and friends carry a status of their own
  const own = (err as { status?: unknown; statusCode?: unknown } | null)?.status;
  if (status === 500 && typeof own === 'number' && own >= 400 && own < 500) status = own;
  const t = translator(requestLanguage(req));
  const message = err instanceof AppError ? (err.messageKey ? t(err.messageKey, err.messageVars) : err.publicMessage)
    : status < 500 ? String((err as Error).message ?? 'Bad request') : t('err.internal');
  const problems = err instanceof ValidationFailed ? err.problems : [];
  if (status >= 500) req.log?.error({ err }, 'http.error');
  else req.log?.info({ status, error: (err as Error)?.name, message: err instanceof AppError ? err.publicMessage : message, ...(problems.length ? { problems } : {}) }, 'http.refused');
  if (res.headersSent) return;
  if (err instanceof TooManyRequests) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
  sendError(req, res, status, message, problems);
};

export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => respondWithError(err, req, res);

function sendError(req: Request, res: Response, status: number, message: string, problems: readonly string[]): void {
  if (req.accepts(['json', 'html']) === 'html') res.status(status).type('html').send(errorPage(status, message, problems, requestLanguage(req)));
  else res.status(status).json({ error: message, status, ...(problems.length ? { problems } : {}) });
}
