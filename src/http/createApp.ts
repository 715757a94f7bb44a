/**
 * Builds the Express app from its dependencies. No listen here: the composition root owns the
 * one http.Server so websocket upgrades can be attached to it.
 */
import express, { type Express, type Router } from 'express';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { requestContext } from './requestContext.js';
import { errorHandler, notFoundHandler } from './errorHandler.js';

/** A named readiness check; /readyz is 200 only when every check passes. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
}

export interface Mount {
  path: string;
  router: Router | Express | express.RequestHandler;
}

export interface AppDeps {
  log: Logger;
  trustProxy: boolean;
  readiness: ReadinessCheck[];
  /** Route groups, mounted in order after the health routes. */
  mounts: Mount[];
  publicDir?: string;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.trustProxy ? 1 : false);
  app.use(requestContext(deps.log));
  app.use((_req, res, next) => {
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      deps.readiness.map(async (c) => [c.name, await c.check().catch(() => false)] as const),
    );
    const ok = results.every(([, r]) => r);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: Object.fromEntries(results) });
  });

  const publicDir = deps.publicDir ?? path.resolve('public');
  app.use('/static', express.static(publicDir, { index: false, maxAge: '1h' }));

  for (const m of deps.mounts) app.use(m.path, m.router);

  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
