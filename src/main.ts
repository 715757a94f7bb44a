/**
 * The composition root: config → logger → database → services → HTTP server.
 * Nothing else wires dependencies together. startTool() returns a handle whose shutdown()
 * the CLI calls on SIGTERM/SIGINT and tests call directly.
 */
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { redact } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { EmbeddedMongo, defaultFerretBin } from './db/EmbeddedMongo.js';
import { connectDatabase, ensureIndexes, type Database } from './store/database.js';
import { ExpirySweeper } from './store/ExpirySweeper.js';
import { createApp, type Mount, type ReadinessCheck } from './http/createApp.js';
import { resolveSecretKey } from './secrets.js';
import { LabInstance, INSTANCE_STATES } from './store/LabInstance.js';
import { LabGeneration } from './store/LabGeneration.js';
import { Metrics } from './metrics.js';
import express from 'express';
import os from 'node:os';
import { Duties } from './leadership.js';
import { LeaderLease } from './backends/kubevirt/LeaderLease.js';
import { KubeClient } from './backends/kubevirt/client.js';
import { createDevPlatform, type DevPlatform } from './lti/devPlatform/createDevPlatform.js';
import { devPlatformModels } from './store/DevPlatform.js';
import { GradeOutbox, gradeOutboxExpiryRules } from './store/GradeOutbox.js';
import { GradeService } from './lti/grades/GradeService.js';
import { placeholderRuntime } from './labs/placeholder.js';
import { seedDemoCourse } from './lti/devPlatform/demoSeed.js';
import { LabService } from './labs/LabService.js';
import { LabSupervisor } from './labs/LabSupervisor.js';
import { createLti, type LtiModule } from './lti/createLti.js';
import { ltiAdminRoutes } from './lti/adminRoutes.js';
import { frameAncestors } from './lti/frameAncestors.js';
import { LabDefinition } from './store/LabDefinition.js';
import { LabCatalog } from './labs/definition/LabCatalog.js';
import { labRoutes } from './labs/definition/labRoutes.js';
import { resolveTemplatesDir } from './labs/definition/templatesDir.js';
import { adminLabRoutes } from './labs/definition/adminLabRoutes.js';
import { requireAdmin } from './auth/admin.js';
import { SessionTokens } from './auth/session.js';
import { RateLimits } from './rateLimits.js';
import type { LabDefinitions, LabRuntime } from './labs/contracts.js';
import { TicketService } from './proxy/tickets.js';
import { ChannelProxy } from './proxy/channelProxy.js';
import { attachUpgradeHandler } from './http/upgrade.js';
import { TicketUse, ticketUseExpiryRules } from './store/TicketUse.js';
import { CheckResult } from './store/CheckResult.js';
import { CheckRunLock } from './store/CheckRunLock.js';
import { CheckRunner } from './labs/checks/CheckRunner.js';
import { checkRoutes } from './labs/checks/checkRoutes.js';
import type { LabBackend } from './backends/types.js';
import { createKubeVirtBackend } from './backends/kubevirt/createKubeVirtBackend.js';
import { createQemuBackend } from './backends/qemu/createQemuBackend.js';
import { labApiRouter, LabCatalogCache } from './http/routes/labApi.js';
import { courseApiRouter } from './http/routes/courseApi.js';
import { labPagesRouter } from './http/routes/labPages.js';
import { userNames } from './store/User.js';

export interface StartOptions {
  /** Tests capture logs here. */
  logDestination?: NodeJS.WritableStream;
  /** Database name inside the server (tests use one per file); default "lab_orchestrator". */
  dbName?: string;
  /** Extra route groups mounted before the built-in ones (tests, embedding). */
  extraMounts?: Mount[];
  /** The lab runtime (LabService) and catalog; the lab page, its API and the websocket proxy need them. */
  runtime?: LabRuntime;
  labs?: LabDefinitions;
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
  /** Automatic step checks (when a runtime is wired). */
  checks: CheckRunner | undefined;
  /** The configured lab backend (BACKEND), when one is built here. */
  backend: LabBackend | undefined;
  /** The lab runtime: LabService over the backend (or what StartOptions.runtime injected). */
  runtime: LabRuntime;
  labService: LabService | undefined;
  /** Stop accepting, let in-flight requests finish (up to the grace period), then close everything. */
  shutdown(reason?: string): Promise<void>;
}

type Closer = { name: string; close: () => Promise<void> | void };

export async function startTool(config: Config, opts: StartOptions = {}): Promise<RunningTool> {
  const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, destination: opts.logDestination });
  log.info({ config: redact(config) }, 'tool.starting');
  const closers: Closer[] = [];
  const runClosers = async () => {
    for (const c of closers.reverse()) {
      try {
        await c.close();
      } catch (err) {
        log.warn({ err, closer: c.name }, 'shutdown.close_failed');
      }
    }
  };

  try {
    const secretKey = resolveSecretKey(config);
    const sessions = new SessionTokens(secretKey);
    const limits = new RateLimits({
      launchPerUser: config.RATE_LAUNCH_PER_USER, launchPerPlatform: config.RATE_LAUNCH_PER_PLATFORM,
      ticketPerUser: config.RATE_TICKET_PER_USER, ticketPerPlatform: config.RATE_TICKET_PER_PLATFORM,
      checkPerPlatform: config.RATE_CHECK_PER_PLATFORM,
    });
    const pruneLimits = setInterval(() => limits.prune(), 60_000);
    pruneLimits.unref();
    closers.push({ name: 'rate-limits', close: () => clearInterval(pruneLimits) });

    // --- database ---------------------------------------------------------------------------
    let embeddedMongo: EmbeddedMongo | undefined;
    let uri = config.MONGODB_URI;
    if (!uri) {
      embeddedMongo = new EmbeddedMongo({
        bin: config.FERRETDB_BIN ?? defaultFerretBin(config.TOOLS_DIR),
        dataDir: path.join(config.DATA_DIR, 'ferretdb'),
        log,
      });
      uri = await embeddedMongo.start();
      const em = embeddedMongo;
      closers.push({ name: 'ferretdb', close: () => em.stop() });
    }
    const db = await connectDatabase(uri, opts.dbName ?? 'lab_orchestrator', log);
    closers.push({ name: 'db', close: () => db.close() });
    await ensureIndexes([LabInstance, LabGeneration, ...devPlatformModels, GradeOutbox]);

    const sweeper = new ExpirySweeper(db.connection, log);
    const duties = new Duties(log.child({ component: 'leadership' }));
    duties.add({ name: 'sweeper', start: () => sweeper.start(config.SWEEP_INTERVAL_MS), stop: () => sweeper.stop() });
    closers.push({ name: 'sweeper', close: () => sweeper.stop() });

    // --- HTTP: listen first, so the resolved URL is known to everything wired below -------------
    const server = http.createServer();
    server.headersTimeout = 30_000;
    server.requestTimeout = 120_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.HOST, () => resolve());
    });
    closers.push({ name: 'http', close: () => closeServer(server, 0) });
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const url = `http://${host === '0.0.0.0' || host === '[::]' ? 'localhost' : host}:${addr.port}`;
    const publicUrl = config.PUBLIC_URL ?? url;

    const metrics = new Metrics();
    const grades = new GradeService({ log, metrics, retryBaseMs: config.GRADE_RETRY_BASE_MS, retryMaxMs: config.GRADE_RETRY_MAX_MS });
    for (const rule of gradeOutboxExpiryRules) sweeper.add(rule);
    duties.add({ name: 'grades', start: () => grades.start(), stop: () => grades.stop() });
    closers.push({ name: 'grades', close: () => grades.stop() });

    // --- metrics: on their own port, or on the main port behind a token, or not at all ----------
    metrics.onCollect(async () => {
      const rows = await LabInstance.aggregate<{ _id: string; n: number }>([{ $group: { _id: '$state', n: { $sum: 1 } } }]);
      for (const st of INSTANCE_STATES) metrics.labsByState.set({ state: st }, rows.find((r) => r._id === st)?.n ?? 0);
    });
    let metricsUrl: string | undefined;
    if (config.METRICS_PORT !== undefined) {
      const mserver = http.createServer(express().use(metrics.router(config.METRICS_TOKEN)));
      await new Promise<void>((resolve, reject) => {
        mserver.once('error', reject);
        mserver.listen(config.METRICS_PORT, config.METRICS_HOST, () => resolve());
      });
      closers.push({ name: 'metrics-http', close: () => closeServer(mserver, 0) });
      metricsUrl = `http://${config.METRICS_HOST}:${(mserver.address() as AddressInfo).port}/metrics`;
    }

    const readiness: ReadinessCheck[] = [{ name: 'database', check: () => db.ping(1000) }];
    // --- backend ------------------------------------------------------------------------------
    let backend: LabBackend | undefined;
    if (config.BACKEND === 'kubevirt') {
      const kv = createKubeVirtBackend(config, { log: log.child({ component: 'backend' }), metrics });
      backend = kv;
      closers.push({ name: 'backend', close: () => kv.close() });
      readiness.push({ name: 'kubevirt', check: () => kv.ready() });
    } else {
      const qemu = createQemuBackend(config, { log: log.child({ component: 'backend' }) });
      backend = qemu;
      closers.push({ name: 'backend', close: () => qemu.close() });
      readiness.push({ name: 'qemu', check: () => qemu.ready() });
    }
    // --- end backend ----------------------------------------------------------------------------
    const mounts: Mount[] = [...(opts.extraMounts ?? [])];
    let devPlatform: DevPlatform | undefined;
    if (config.DEV_PLATFORM ?? config.LAB_MODE === 'demo') {
      devPlatform = await createDevPlatform({ publicUrl, log, sweeper });
      mounts.push({ path: '/dev-platform', router: devPlatform.router });
      log.info({ url: devPlatform.urls.page }, 'devplatform.enabled');
    }
    // --- labs: catalog imported from TEMPLATES_DIR, public catalog + media routes, admin API -------
    await ensureIndexes([LabDefinition]);
    const labs = new LabCatalog({ log: log.child({ component: 'labs' }) });
    await labs.importDir(resolveTemplatesDir(config.TEMPLATES_DIR), config.TEMPLATES_DIR);
    mounts.push({ path: '/', router: labRoutes(labs) });
    mounts.push({ path: '/api/admin/labs', router: adminLabRoutes(labs, requireAdmin(sessions, config.ADMIN_TOKEN)) });
    // --- end labs ---
    // --- runtime: LabService over the backend, its supervisor (lifetime + reconcile) --------------
    let runtime: LabRuntime;
    let labService: LabService | undefined;
    if (opts.runtime) runtime = opts.runtime;
    else if (backend) {
      const svc = new LabService({ backend, labs, log: log.child({ component: 'runtime' }), metrics });
      const supervisor = new LabSupervisor({ service: svc, backend, labs, log: log.child({ component: 'supervisor' }) });
      duties.add({ name: 'supervisor', start: () => supervisor.start(config.RECONCILE_INTERVAL_MS), stop: () => supervisor.stop() });
      // closers run in reverse: the runtime stops before the backend closes
      closers.push({ name: 'runtime', close: async () => { await supervisor.stop(); await svc.close(); } });
      runtime = labService = svc;
    } else runtime = placeholderRuntime();
    // --- end runtime ------------------------------------------------------------------------------
    // --- checks: runner (exec through the runtime), POST …/steps/:stepId/check, GET …/checks ----
    let checks: CheckRunner | undefined;
    {
      await ensureIndexes([CheckResult, CheckRunLock]);
      const runner = new CheckRunner({
        runtime, labs: opts.labs ?? labs, grades, log: log.child({ component: 'checks' }), metrics,
        ratePerMinute: config.CHECK_RATE_PER_MINUTE, platformLimit: limits.checkPerPlatform, maxOutputBytes: config.CHECK_OUTPUT_MAX_BYTES, backgroundTickMs: config.CHECK_BACKGROUND_TICK_MS,
        isLeader: () => duties.isLeader,
      });
      runner.start();
      closers.push({ name: 'checks', close: () => runner.close() });
      mounts.push({ path: '/', router: checkRoutes({ runtime, runner, sessions }) });
      checks = runner;
    }
    // --- end checks ---------------------------------------------------------------------------
    // --- lab page + proxy -------------------------------------------------------------------
    const beforeClose: Array<() => void> = [];
    await ensureIndexes([TicketUse]);
    for (const rule of ticketUseExpiryRules) sweeper.add(rule);
    const tickets = new TicketService(secretKey, config.TICKET_TTL_SECONDS);
    {
      const proxy = new ChannelProxy({
        runtime, log: log.child({ component: 'ws-proxy' }), metrics,
        pingIntervalMs: config.WS_PING_INTERVAL_MS, idleTimeoutMs: config.WS_IDLE_TIMEOUT_MS, maxPerUser: config.WS_MAX_PER_USER,
      });
      const upgrades = attachUpgradeHandler(server, {
        publicOrigin: publicUrl, tickets, proxy, log: log.child({ component: 'ws-upgrade' }), maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
      });
      // upgraded sockets keep server.close() waiting: close them with a reason first
      beforeClose.push(() => upgrades.close());
    }
    {
      // LabService serializes its writes per instance (FerretDB updates are read-modify-write); step ticks join that queue
      const lock = (runtime as { lock?: { run<T>(key: string, fn: () => Promise<T>): Promise<T> } }).lock;
      const pageLabs = opts.labs ?? labs;
      const catalog = new LabCatalogCache(pageLabs);
      mounts.push(
        { path: '/', router: labApiRouter({ runtime, labs: pageLabs, sessions, tickets, grades, log, catalog, userNames, checks, ticketLimit: limits.ticket, ...(lock ? { serialize: (id, fn) => lock.run(id, fn) } : {}) }) },
        { path: '/', router: courseApiRouter({ sessions, catalog, userNames, checks }) },
        { path: '/', router: labPagesRouter() },
      );
    }
    // --- end lab page + proxy ---------------------------------------------------------------

    // --- lti ------------------------------------------------------------------------------------
    const ltiLabs: LabDefinitions = opts.labs ?? labs;
    const lti = await createLti({
      labs: ltiLabs, runtime, sessions, log, sweeper, secretKey, dbUri: uri, publicUrl,
      clockSkewSeconds: config.LTI_CLOCK_SKEW_SECONDS, jwksMinRefetchMs: config.LTI_JWKS_MIN_REFETCH_MS, tokens: grades.tokens, limits,
    });
    grades.use(lti.gradePorts);
    closers.push({ name: 'lti', close: () => lti.close() });
    // launch latency (id_token in → redirect or catalog out), for /metrics and the benchmarks
    const launchTimer: express.RequestHandler = (req, res, next) => {
      const type = req.method !== 'POST' ? undefined : req.path === '/' ? 'LtiResourceLinkRequest' : req.path === '/deeplink' ? 'LtiDeepLinkingRequest' : undefined;
      if (type) {
        const t0 = process.hrtime.bigint();
        res.once('finish', () => { if (res.statusCode < 400) metrics.launchDuration.observe({ message_type: type }, Number(process.hrtime.bigint() - t0) / 1e9); });
      }
      next();
    };
    // two mounts: ltijs's Express 4 app must be mounted by the app itself (a Router would not set it up as a sub-app)
    mounts.push({ path: '/lti', router: express.Router().use(launchTimer) }, { path: '/lti', router: lti.app });
    mounts.push({ path: '/', router: ltiAdminRoutes({ lti, sessions, adminToken: config.ADMIN_TOKEN }) });
    // only registered platforms may frame any page of the tool (the lab page lives in Moodle's iframe)
    mounts.unshift({ path: '/', router: frameAncestors(() => lti.frameAncestors()) });
    log.info({ url: lti.urls.registration }, 'lti.registration_url');
    // --- end lti --------------------------------------------------------------------------------
    // /metrics on the public port only behind its token (mounted last: ltijs's Express 4 app must see requests first)
    if (config.METRICS_PORT === undefined && config.METRICS_TOKEN) mounts.push({ path: '/', router: metrics.router(config.METRICS_TOKEN) });
    // the bare origin leads somewhere useful: the demo course, or the admin page with the registration URL
    const home = devPlatform ? devPlatform.urls.page : '/admin/lti';
    mounts.push({ path: '/', router: express.Router().get('/', (_req, res) => res.redirect(302, home)) });
    const app = createApp({ log, trustProxy: config.TRUST_PROXY, readiness, mounts });
    server.on('request', app);
    log.info({ url, publicUrl }, 'tool.listening');
    // --- lti: the dev platform registers the tool dynamically (README command (a) works end to end)
    if (devPlatform && (config.DEV_PLATFORM_REGISTER ?? true)) {
      const reg = await devPlatform.ensureRegistered(lti.urls.registration);
      log.info({ clientId: reg._id, deploymentId: reg.deploymentId }, 'lti.dev_platform_registered');
      const seeded = await seedDemoCourse(devPlatform, reg._id, await labs.list());
      if (seeded.length) log.info({ activities: seeded }, 'devplatform.demo_course_seeded');
    }

    // --- leadership: the Lease holder runs the duties (KubeVirt, several replicas); alone, this process does
    if (config.BACKEND === 'kubevirt') {
      const lease = new LeaderLease({
        client: new KubeClient({ kubeconfigPath: config.KUBECONFIG, log: log.child({ component: 'lease' }), qps: config.KUBEVIRT_QPS }),
        log: log.child({ component: 'lease' }),
        namespace: config.KUBEVIRT_TOOL_NAMESPACE,
        name: 'lab-orchestrator-leader',
        identity: config.POD_NAME ?? `${os.hostname()}-${process.pid}`,
        durationMs: config.LEASE_DURATION_MS,
        onChange: (leader) => void duties.setLeader(leader),
      });
      lease.start();
      closers.push({ name: 'lease', close: async () => { await duties.setLeader(false); await lease.release(); } });
    } else await duties.setLeader(true);
    // --- end leadership ---------------------------------------------------------------------------

    let shuttingDown: Promise<void> | undefined;
    const shutdown = (reason = 'shutdown') => {
      shuttingDown ??= (async () => {
        log.info({ reason, graceMs: config.SHUTDOWN_GRACE_MS }, 'tool.stopping');
        for (const f of beforeClose) f();
        await closeServer(server, config.SHUTDOWN_GRACE_MS);
        await runClosers();
        log.info('tool.stopped');
        log.flush?.();
      })();
      return shuttingDown;
    };
    return { config, log, server, url, publicUrl, db, sweeper, metrics, metricsUrl, embeddedMongo, devPlatform, grades, labs, checks, backend, runtime, labService, lti, sessions, shutdown };
  } catch (err) {
    await runClosers();
    throw err;
  }
}

/** Stop accepting; idle keep-alive sockets close now, busy ones when their response ends or the grace ends. */
function closeServer(server: http.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    // a keep-alive socket whose last response just ended is idle: close it now, not at keepAliveTimeout
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearTimeout(timer);
      clearInterval(idle);
      resolve();
    });
    server.closeIdleConnections();
  });
}
