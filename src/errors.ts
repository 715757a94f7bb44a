/**
 * Typed domain errors. Code throws these; exactly one place (httpStatusFor / wsCloseFor)
 * maps them to HTTP statuses and websocket close codes.
 */
import { CLOSE } from './closeCodes.js';
import type { TextKey } from './i18n.js';

export interface AppErrorOptions {
  cause?: unknown;
  /** A message that is safe to show to the user, in English. */
  publicMessage?: string;
  /** The same message in the message catalogs (shown in the user's language), with its values. */
  messageKey?: TextKey;
  messageVars?: Record<string, string | number>;
}

export class AppError extends Error {
  /** A message that is safe to show to the user (never a stack or a secret). */
  readonly publicMessage: string;
  readonly messageKey: TextKey | undefined;
  readonly messageVars: Record<string, string | number> | undefined;
  constructor(message: string, options?: AppErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.publicMessage = options?.publicMessage ?? message;
    this.messageKey = options?.messageKey;
    this.messageVars = options?.messageVars;
  }
}
export class BadRequest extends AppError {}
export class Unauthorized extends AppError {}
export class Forbidden extends AppError {}
export class NotFound extends AppError {}
export class Conflict extends AppError {}
export class CapacityExhausted extends AppError {}
export class BackendFailure extends AppError {}
export class ConfigError extends AppError {}
/** A per-user rate limit was hit; retryAfterSeconds becomes the Retry-After header. */
export class TooManyRequests extends AppError {
  constructor(message: string, readonly retryAfterSeconds: number, options?: AppErrorOptions) {
    super(message, options);
  }
}
export class ValidationFailed extends AppError {
  constructor(message: string, readonly problems: string[] = [], options?: AppErrorOptions) {
    super(message, options);
  }
}

const statusByClass: Array<[new (...a: never[]) => AppError, number]> = [
  [BadRequest, 400],
  [ValidationFailed, 400],
  [Unauthorized, 401],
  [Forbidden, 403],
  [NotFound, 404],
  [Conflict, 409],
  [TooManyRequests, 429],
  [CapacityExhausted, 503],
  [BackendFailure, 502],
];

/** The HTTP status for an error; anything that is not an AppError is a 500. */
export function httpStatusFor(err: unknown): number {
  for (const [cls, status] of statusByClass) if (err instanceof cls) return status;
  return 500;
}

/** The websocket close code for an error (4000-4999 are application codes the page understands). */
export function wsCloseFor(err: unknown): number {
  if (err instanceof Unauthorized) return CLOSE.unauthorized.code;
  if (err instanceof Forbidden) return CLOSE.notYourLab.code;
  if (err instanceof NotFound) return CLOSE.notFound.code;
  if (err instanceof Conflict) return CLOSE.conflict.code;
  return CLOSE.internal.code;
}
