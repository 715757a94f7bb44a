/**
 * Prometheus metrics (prom-client), one registry per running tool (tests run several tools in one
 * process, so never the global registry). Components get the Metrics object from the composition
 * root and record on the same code paths the benchmarks measure. Labels never carry user names,
 * tickets, tokens or instance ids: only bounded sets (phase, backend, channel, state, verb, status).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import express, { type Router } from 'express';
import { timingSafeEqual } from 'node:crypto';

export class Metrics {
  readonly registry = new Registry();

  readonly launchDuration = new Histogram({
    name: 'lab_lti_launch_duration_seconds',
    help: 'Tool-side LTI launch handling (id_token validation to redirect)',
    labelNames: ['message_type'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  readonly provisionDuration = new Histogram({
    name: 'lab_provision_phase_duration_seconds',
    help: 'Time spent in each provisioning phase',
    labelNames: ['phase', 'backend'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160],
    registers: [this.registry],
  });

  readonly labsByState = new Gauge({
    name: 'lab_instances',
    help: 'Lab instances by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly labDiskReservedBytes = new Gauge({
    name: 'lab_disk_reserved_bytes',
    help: "Bytes the labs' virtual machine disks reserve (lab.yaml disk sizes), by lab state; stopped = work kept for later",
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly wsSessions = new Gauge({
    name: 'lab_ws_sessions_active',
    help: 'Open proxied websocket sessions',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });

  readonly wsBytes = new Counter({
    name: 'lab_ws_bytes_total',
    help: 'Bytes through the websocket proxy',
    labelNames: ['channel', 'direction'] as const,
    registers: [this.registry],
  });

  readonly gradeBacklog = new Gauge({
    name: 'lab_grade_outbox_pending',
    help: 'Scores written but not yet delivered to the platform',
    registers: [this.registry],
  });

  readonly gradeOldestPending = new Gauge({
    name: 'lab_grade_outbox_oldest_pending_seconds',
    help: 'Age of the oldest undelivered score',
    registers: [this.registry],
  });

  readonly k8sRequests = new Counter({
    name: 'lab_k8s_api_requests_total',
    help: 'Kubernetes API requests made by the tool',
    labelNames: ['verb', 'status'] as const,
    registers: [this.registry],
  });

  readonly checkRuns = new Counter({
    name: 'lab_check_runs_total',
    help: 'Automatic step checks run',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly labStorageBytes = new Gauge({
    name: 'lab_storage_bytes',
    help: 'Bytes of lab disks kept by the backend, by the state of their lab (running includes paused and provisioning)',
    labelNames: ['backend', 'state'] as const,
    registers: [this.registry],
  });

  readonly warmPrepared = new Counter({
    name: 'lab_warm_prepared_total',
    help: 'Labs prepared ahead of a scheduled class session (provisioning started for the pool)',
    registers: [this.registry],
  });

  readonly warmHandedOut = new Counter({
    name: 'lab_warm_handed_out_total',
    help: 'Prepared labs a student took at launch',
    registers: [this.registry],
  });

  readonly warmWasted = new Counter({
    name: 'lab_warm_wasted_total',
    help: 'Prepared labs nobody took, destroyed after their session ended',
    registers: [this.registry],
  });

  private readonly collectors: Array<() => Promise<void>> = [];

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'lab_process_' });
  }

  /** Run fn before every scrape (gauges computed from the database, e.g. labs by state). */
  onCollect(fn: () => Promise<void>): void {
    this.collectors.push(fn);
  }

  async render(): Promise<string> {
    await Promise.all(this.collectors.map((c) => c().catch(() => undefined)));
    return this.registry.metrics();
  }

  /** GET /metrics; when a token is given, only with `Authorization: Bearer <token>`. */
  router(token: string | undefined): Router {
    const r = express.Router();
    r.get('/metrics', async (req, res, next) => {
      try {
        if (token && !bearerMatches(req.get('authorization'), token)) {
          res.status(401).type('text').send('metrics token required\n');
          return;
        }
        res.type(this.registry.contentType).send(await this.render());
      } catch (err) {
        next(err);
      }
    });
    return r;
  }
}

function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const a = Buffer.from(header.slice(7));
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
