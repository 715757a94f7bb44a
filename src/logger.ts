/** The one pino logger. Children carry context; secrets are redacted by path. */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths pino blanks out wherever they appear in a log object. */
export const REDACT_PATHS = [
  'ticket', '*.ticket', 'token', '*.token', 'ltik', '*.ltik', 'password', '*.password',
  'secret', '*.secret', 'authorization', '*.authorization', 'cookie', '*.cookie',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]',
  'headers.authorization', 'headers.cookie', 'headers["sec-websocket-protocol"]',
  'id_token', '*.id_token', 'access_token', '*.access_token', 'client_assertion', '*.client_assertion',
  'config.SECRET_KEY', 'config.ADMIN_TOKEN',
  'registration_token', '*.registration_token', 'JWT', '*.JWT',
];

export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
  /** Tests pass a stream to capture output. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(o: LoggerOptions): Logger {
  const base = { level: o.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (o.destination) return pino(base, o.destination as DestinationStream);
  if (o.format === 'pretty') {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss', ignore: 'pid,hostname' } },
    });
  }
  return pino(base);
}
