/** The LTI tool side (ltijs at /lti), its admin routes, the frame-ancestors policy, and the launch-latency timer. */
import express from 'express';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Mount } from '../http/createApp.js';
import { respondWithError } from '../http/errorHandler.js';
import { ltiAdminRoutes } from '../http/routes/ltiAdminRoutes.js';
import { adminUsageRoutes } from '../http/routes/adminUsageRoutes.js';
import type { SessionTokens } from '../auth/session.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import type { GradeService } from '../lti/grades/GradeService.js';
import { createLti, type LtiModule } from '../lti/createLti.js';
import type { CourseRosterCache } from '../lti/roster.js';
import { frameAncestors } from '../lti/frameAncestors.js';
import type { Closers } from './Closers.js';
import type { RateLimits } from '../rateLimits.js';
import { operatorUsers, requireAdmin } from '../auth/tenancy.js';

export interface LtiPartsDeps {
  labs: LabDefinitions;
  runtime: LabRuntime;
  sessions: SessionTokens;
  grades: GradeService;
  log: Logger;
  metrics: Metrics;
  secretKey: string;
  dbUri: string;
  publicUrl: string;
  limits: RateLimits;
  roster?: CourseRosterCache;
}

/**
 * `first` must be mounted before every other route (CSP for all pages, then the LTI login and id_token
 * POSTs, answered before any other route looks at them); `mounts` after the lab routes.
 */
export async function buildLti(config: Config, d: LtiPartsDeps, closers: Closers): Promise<{ lti: LtiModule; first: Mount[]; mounts: Mount[] }> {
  const lti = await createLti({
    labs: d.labs, runtime: d.runtime, sessions: d.sessions, log: d.log, secretKey: d.secretKey, dbUri: d.dbUri, publicUrl: d.publicUrl,
    clockSkewSeconds: config.LTI_CLOCK_SKEW_SECONDS, jwksMinRefetchMs: config.LTI_JWKS_MIN_REFETCH_MS, tokens: d.grades.tokens, respondWithError, limits: d.limits, ...(d.roster ? { roster: d.roster } : {}),
    operators: operatorUsers(config.OPERATOR_USERS), maxKeepDays: config.LAB_MAX_KEEP_DAYS,
  });
  d.grades.use(lti.gradePorts);
  closers.add('lti', () => lti.close());
  return {
    lti,
    // only registered platforms may frame any page of the tool (the lab page lives in Moodle's iframe)
    first: [
      { path: '/', router: frameAncestors(() => lti.frameAncestors()) },
      { path: '/lti', router: express.Router().use(launchTimer(d.metrics), lti.entryRoutes) },
    ],
    mounts: [
      // ltijs's Express 4 app must be mounted by the app itself (a Router would not set it up as a sub-app)
      { path: '/lti', router: lti.app },
      { path: '/', router: ltiAdminRoutes({ lti, sessions: d.sessions, adminToken: config.ADMIN_TOKEN }) },
      { path: '/', router: adminUsageRoutes({ platforms: () => lti.registry.list(), admin: requireAdmin(d.sessions, config.ADMIN_TOKEN) }) },
    ],
  };
}

/** Launch latency (id_token in → redirect or catalog out), for /metrics and the benchmarks. */
function launchTimer(metrics: Metrics): express.RequestHandler {
  return (req, res, next) => {
    const type = req.method !== 'POST' ? undefined : req.path === '/' ? 'LtiResourceLinkRequest' : req.path === '/deeplink' ? 'LtiDeepLinkingRequest' : undefined;
    if (type) {
      const t0 = process.hrtime.bigint();
      res.once('finish', () => {
        if (res.statusCode < 400) metrics.launchDuration.observe({ message_type: type }, Number(process.hrtime.bigint() - t0) / 1e9);
      });
    }
    next();
  };
}
