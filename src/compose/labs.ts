/** The lab side: catalog imported from TEMPLATES_DIR, the runtime (LabService + supervisor) over the backend, and the check runner. */
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Duties } from '../leadership.js';
import type { LabBackend } from '../backends/types.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import type { ScorePublisher } from '../labs/score.js';
import { LabCatalog } from '../labs/definition/LabCatalog.js';
import { ImageCatalog } from '../images/ImageCatalog.js';
import { resolveTemplatesDir } from '../labs/definition/templatesDir.js';
import { LabService } from '../labs/LabService.js';
import { LabSupervisor } from '../labs/LabSupervisor.js';
import { WarmPool } from '../labs/WarmPool.js';
import { CheckRunner } from '../labs/checks/CheckRunner.js';
import type { Closers } from './Closers.js';
import type { RateLimits } from '../rateLimits.js';
import type { RetentionPolicy } from '../labs/retention.js';

/** The operator's bounds for keeping stopped labs. */
export function retentionPolicy(config: Config): RetentionPolicy {
  return {
    maxKeepDays: config.LAB_MAX_KEEP_DAYS, warnDays: config.LAB_KEEP_WARN_DAYS,
    ...(config.LAB_MAX_STOPPED_STORAGE_GIB !== undefined ? { maxStoppedStorageGiB: config.LAB_MAX_STOPPED_STORAGE_GIB } : {}),
  };
}

export async function buildCatalog(config: Config, log: Logger): Promise<LabCatalog> {
  const labs = new LabCatalog({ log: log.child({ component: 'labs' }), images: ImageCatalog.load(config.IMAGE_CATALOG) });
  await labs.importDir(resolveTemplatesDir(config.TEMPLATES_DIR), config.TEMPLATES_DIR);
  return labs;
}

export interface RuntimeDeps {
  backend: LabBackend;
  labs: LabDefinitions;
  grades: ScorePublisher;
  log: Logger;
  metrics: Metrics;
  duties: Duties;
  /** A runtime that replaces LabService entirely (tests drive the page over stand-ins). */
  injected?: LabRuntime;
}

export interface BuiltRuntime {
  runtime: LabRuntime;
  /** The LabService behind `runtime`; absent when a runtime was injected. */
  labService: LabService | undefined;
}

/**
 * The lab runtime: the injected one as is (LabService's supervisor would reconcile records it does
 * not own), or LabService over the backend with its supervisor (lifetime + reconcile) as a leader duty.
 */
export function buildRuntime(config: Config, d: RuntimeDeps, closers: Closers): BuiltRuntime {
  if (d.injected) return { runtime: d.injected, labService: undefined };
  // several replicas run only on KubeVirt (the Lease); there, lab events travel through the database
  const shared = config.BACKEND === 'kubevirt' && config.LAB_EVENT_POLL_MS > 0;
  const svc = new LabService({
    backend: d.backend, labs: d.labs, grades: d.grades, log: d.log.child({ component: 'runtime' }), metrics: d.metrics,
    retention: retentionPolicy(config),
    ...(shared ? { sharedEvents: { pollMs: config.LAB_EVENT_POLL_MS, ...(config.POD_NAME ? { origin: config.POD_NAME } : {}) } } : {}),
  });
  const supervisor = new LabSupervisor({ service: svc, backend: d.backend, labs: d.labs, log: d.log.child({ component: 'supervisor' }) });
  d.duties.add({ name: 'supervisor', start: () => supervisor.start(config.RECONCILE_INTERVAL_MS), stop: () => supervisor.stop() });
  const warm = new WarmPool({ service: svc, backend: d.backend, labs: d.labs, log: d.log.child({ component: 'warm' }), metrics: d.metrics, leadMs: config.WARM_LEAD_MINUTES * 60_000 });
  d.duties.add({ name: 'warm', start: () => warm.start(config.RECONCILE_INTERVAL_MS), stop: () => warm.stop() });
  // closers run in reverse: the runtime stops before the backend closes
  closers.add('runtime', async () => {
    await warm.stop();
    await supervisor.stop();
    await svc.close();
  });
  return { runtime: svc, labService: svc };
}

export function buildChecks(config: Config, d: { runtime: LabRuntime; labs: LabDefinitions; grades: ScorePublisher; log: Logger; metrics: Metrics; duties: Duties; limits: RateLimits }, closers: Closers): CheckRunner {
  const runner = new CheckRunner({
    runtime: d.runtime, labs: d.labs, grades: d.grades, log: d.log.child({ component: 'checks' }), metrics: d.metrics,
    ratePerMinute: config.CHECK_RATE_PER_MINUTE, platformLimit: d.limits.checkPerPlatform, maxOutputBytes: config.CHECK_OUTPUT_MAX_BYTES, backgroundTickMs: config.CHECK_BACKGROUND_TICK_MS,
    isLeader: () => d.duties.isLeader,
  });
  runner.start();
  closers.add('checks', () => runner.close());
  return runner;
}
