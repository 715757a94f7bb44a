/**
 * The composition root: config → logger → database → services → HTTP server. Nothing else wires
 * dependencies together; the builders in src/compose/ each wire one part. startTool() returns a
 * handle whose shutdown() the CLI calls on SIGTERM/SIGINT and tests call directly.
 */
import type http from 'node:http';
import express from 'express';
import type { Config } from './config.js';
import { redact } from './config.js';
import { createLogger, type Logger } from './logger.js';
import type { EmbeddedMongo } from './db/EmbeddedMongo.js';
import type { Database } from './store/database.js';
import { ExpirySweeper } from './store/ExpirySweeper.js';
import { ALL_EXPIRY_RULES } from './store/models.js';
import { LabInstance, INSTANCE_STATES } from './store/LabInstance.js';
import { createApp, type Mount } from './http/createApp.js';
import { adminLabRoutes } from './http/routes/adminLabRoutes.js';
import { MediaTokens } from './auth/mediaTokens.js';
import { labRoutes as labCatalogRoutes } from './http/routes/labCatalogRoutes.js';
import { resolveSecretKey } from './secrets.js';
import { Metrics } from './metrics.js';
import { Duties } from './leadership.js';
import { createDevPlatform, type DevPlatform } from './devPlatform/createDevPlatform.js';
import { seedDemoCourse } from './devPlatform/demoSeed.js';
import { GradeService } from './lti/grades/GradeService.js';
import type { LtiModule } from './lti/createLti.js';
import type { LabCatalog } from './labs/definition/LabCatalog.js';
import { LIVE_STATES, type LabService } from './labs/LabService.js';
import type { CheckRunner } from './labs/checks/CheckRunner.js';
import type { LabDefinitions, LabRuntime } from './labs/contracts.js';
import type { LabBackend } from './backends/types.js';
import { requireAdmin } from './auth/tenancy.js';
import { SessionTokens } from './auth/session.js';
import { Closers } from './compose/Closers.js';
import { buildDatabase } from './compose/database.js';
import { closeServer, listenHttp, listenMetrics } from './compose/httpServer.js';
import { buildBackend, startLeadership } from './compose/backend.js';
import { buildCatalog, buildChecks, buildRuntime } from './compose/labs.js';
import { buildLabPage } from './compose/labPage.js';
import { buildLti } from './compose/lti.js';
import { CourseRosterCache } from './lti/roster.js';
import { buildRateLimits } from './compose/rateLimits.js';

export interface StartOptions {
  /** Tests capture logs here. */
  logDestination?: NodeJS.WritableStream;
  /** Database name inside the server (tests use one per file); default "lab_orchestrator". */
  dbName?: string;
  /** Extra route groups mounted before the built-in ones (tests, embedding). */
  extraMounts?: Mount[];
  /** Replace the lab runtime and the catalog the page, API, checks and LTI use (tests drive the page over stand-ins). */
  runtime?: LabRuntime;
  labs?: LabDefinitions;
  /** Run labs on this backend instead of the one BACKEND names (tests: an in-memory backend under the real LabService). */
  backend?: LabBackend;
}

export interface RunningTool {
  config: Config;
  log: Logger;
  server: http.Server;
  /** The URL the server actually listens on (port resolved when PORT=0). */
  url: string;
  /** PUBLIC_URL, or in its absence the listening URL: the origin users and platforms see. */
  publicUrl: string;
  db: Database;
  sweeper: ExpirySweeper;
  metrics: Metrics;
  /** Where /metrics is served on its own port (METRICS_PORT), if configured. */
  metricsUrl: string | undefined;
  embeddedMongo: EmbeddedMongo | undefined;
  /** The development LTI platform at /dev-platform, when enabled (demo mode or DEV_PLATFORM=true). */
  devPlatform: DevPlatform | undefined;
  /** AGS scores through the durable outbox; the LTI module plugs its ports in with grades.use(). */
  grades: GradeService;
  /** The LTI 1.3 tool side (ltijs at /lti, platform registry, registration URLs). */
  lti: LtiModule;
  /** Session tokens issued at launch (Bearer on the API, fragment on the lab page). */
  sessions: SessionTokens;
  /** The lab catalog (LabDefinitions): list, latest, prepare, instructions; plus add/remove for the admin API. */
  labs: LabCatalog;
  /** Automatic step checks. */
  checks: CheckRunner;
  /** The configured lab backend (BACKEND). */
  backend: LabBackend;
  /** The lab runtime: LabService over the backend (or what StartOptions.runtime injected). */
  runtime: LabRuntime;
  /** The LabService over the backend (absent when StartOptions.runtime replaced it). */
  labService: LabService | undefined;
  /** Stop accepting, let in-flight requests finish (up to the grace period), then close everything. */
  shutdown(reason?: string): Promise<void>;
}

export async function startTool(config: Config, opts: StartOptions = {}): Promise<RunningTool> {
  const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, destination: opts.logDestination });
  log.info({ config: redact(config) }, 'tool.starting');
  const closers = new Closers(log);
  try {
    const secretKey = resolveSecretKey(config);
    const sessions = new SessionTokens(secretKey);
    const media = new MediaTokens(secretKey);
    const limits = buildRateLimits(config);
    const { db, uri, embeddedMongo } = await buildDatabase(config, log, opts.dbName ?? 'lab_orchestrator', closers);
    const duties = new Duties(log.child({ component: 'leadership' }));
    const sweeper = new ExpirySweeper(db.connection, log);
    for (const rule of ALL_EXPIRY_RULES) sweeper.add(rule);
    duties.add({ name: 'sweeper', start: () => sweeper.start(config.SWEEP_INTERVAL_MS), stop: () => sweeper.stop() });
    closers.add('sweeper', () => sweeper.stop());
    const http = await listenHttp(config, closers);
    const { publicUrl } = http;

    const metrics = new Metrics();
    metrics.onCollect(async () => {
      const rows = await LabInstance.aggregate<{ _id: string; n: number; gib: number }>([{ $group: { _id: '$state', n: { $sum: 1 }, gib: { $sum: '$storageGiB' } } }]);
      for (const st of INSTANCE_STATES) metrics.labsByState.set({ state: st }, rows.find((r) => r._id === st)?.n ?? 0);
      for (const st of LIVE_STATES) metrics.labDiskReservedBytes.set({ state: st }, (rows.find((r) => r._id === st)?.gib ?? 0) * 2 ** 30);
    });
    const metricsUrl = config.METRICS_PORT === undefined ? undefined
      : await listenMetrics(config.METRICS_PORT, config.METRICS_HOST, express().use(metrics.router(config.METRICS_TOKEN)), closers);
    const grades = new GradeService({ log, metrics, retryBaseMs: config.GRADE_RETRY_BASE_MS, retryMaxMs: config.GRADE_RETRY_MAX_MS });
    duties.add({ name: 'grades', start: () => grades.start(), stop: () => grades.stop() });
    closers.add('grades', () => grades.stop());

    const injectedBackend = opts.backend;
    const { backend, readiness } = injectedBackend ? { backend: injectedBackend, readiness: { name: 'backend', check: () => injectedBackend.ready() } } : buildBackend(config, { log, metrics }, closers);
    const catalog = await buildCatalog(config, log);
    const labs = opts.labs ?? catalog;
    const { runtime, labService } = buildRuntime(config, { backend, labs: catalog, grades, log, metrics, duties, injected: opts.runtime }, closers);
    const checks = buildChecks(config, { runtime, labs, grades, log, metrics, duties, limits }, closers);
    const roster = new CourseRosterCache(grades.tokens);
    const page = buildLabPage(config, { server: http.server, publicUrl, secretKey, runtime, labs, sessions, media, checks, log, metrics, limits, learners: (k) => roster.learners(k), ...(labService ? { warm: { labs: catalog, backend } } : {}) });
    const lti = await buildLti(config, { labs, runtime, sessions, grades, log, metrics, secretKey, dbUri: uri, publicUrl, limits, roster }, closers);
    const devPlatform = config.DEV_PLATFORM ?? config.LAB_MODE === 'demo' ? await createDevPlatform({ publicUrl, log, sweeper }) : undefined;

    const mounts: Mount[] = [
      ...lti.first,
      ...(opts.extraMounts ?? []),
      ...(devPlatform ? [{ path: '/dev-platform', router: devPlatform.router }] : []),
      { path: '/', router: labCatalogRoutes(catalog, sessions, media, (lab) => runtime.unavailableReason?.(lab) ?? null) },
      { path: '/api/admin/labs', router: adminLabRoutes(catalog, requireAdmin(sessions, config.ADMIN_TOKEN)) },
      ...page.mounts,
      ...lti.mounts,
      // /metrics on the public port only behind its token (after ltijs's Express 4 app, which must see requests first)
      ...(config.METRICS_PORT === undefined && config.METRICS_TOKEN ? [{ path: '/', router: metrics.router(config.METRICS_TOKEN) }] : []),
      // the bare origin leads somewhere useful: the demo course, or the admin page with the registration URL
      { path: '/', router: express.Router().get('/', (_req, res) => res.redirect(302, devPlatform ? devPlatform.urls.page : '/admin/lti')) },
    ];
    const dbReady = { name: 'database', check: () => db.ping(1000) };
    http.attach(createApp({ log, trustProxy: config.TRUST_PROXY, readiness: [dbReady, readiness], mounts }));
    log.info({ url: http.url, publicUrl }, 'tool.listening');
    if (devPlatform) {
      log.info({ url: devPlatform.urls.page }, 'devplatform.enabled');
      if (config.DEV_PLATFORM_REGISTER ?? true) await registerDevPlatform(devPlatform, lti.lti, catalog, log);
    }
    await startLeadership(config, { log, metrics, duties }, closers);

    let shuttingDown: Promise<void> | undefined;
    const shutdown = (reason = 'shutdown') => {
      shuttingDown ??= (async () => {
        log.info({ reason, graceMs: config.SHUTDOWN_GRACE_MS }, 'tool.stopping');
        page.beforeClose();
        await closeServer(http.server, config.SHUTDOWN_GRACE_MS);
        await closers.closeAll();
        log.info('tool.stopped');
        log.flush?.();
      })();
      return shuttingDown;
    };
    return {
      config, log, server: http.server, url: http.url, publicUrl, db, sweeper, metrics, metricsUrl, embeddedMongo, devPlatform, grades,
      labs: catalog, checks, backend, runtime, labService, lti: lti.lti, sessions, shutdown,
    };
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}

/** The demo: the development platform registers the tool dynamically and gets a course with every lab (README command (a)). */
async function registerDevPlatform(devPlatform: DevPlatform, lti: LtiModule, catalog: LabCatalog, log: Logger): Promise<void> {
  const reg = await devPlatform.ensureRegistered(await lti.registrationUrl());
  log.info({ clientId: reg._id, deploymentId: reg.deploymentId }, 'lti.dev_platform_registered');
  const seeded = await seedDemoCourse(devPlatform, reg._id, await catalog.list());
  if (seeded.length) log.info({ activities: seeded }, 'devplatform.demo_course_seeded');
}
