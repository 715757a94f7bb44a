/** Request id + a child logger per request (made when first used), and one access-log line when the response ends. */
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../logger.js';

declare module 'express-serve-static-core' {
  interface Request {
    id: string;
    log: Logger;
  }
}

export function requestContext(root: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    req.id = given && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    // made when first used: most requests never log but the access line, and a child costs more than a line
    let log: Logger | undefined;
    Object.defineProperty(req, 'log', {
      configurable: true, enumerable: true,
      get: () => (log ??= root.child({ reqId: req.id })),
      set: (l: Logger) => { log = l; },
    });
    res.setHeader('X-Request-Id', req.id);
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      if (!root.isLevelEnabled('info')) return;
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      // The path only: query strings can carry tokens (ltik) and must never reach the logs.
      const line = { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 };
      if (log) log.info(line, 'http.request');
      else root.info({ reqId: req.id, ...line }, 'http.request');
    });
    next();
  };
}
