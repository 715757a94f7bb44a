/**
 * Background duties of the runtime, one pass at a time (never overlapping itself):
 *
 * - lifetime (retention.ts): at the end of a sitting's time limit stop a lab that may pause (its
 *   work kept) and end one that may not, warn before that; delete stopped labs whose keep time is
 *   over, warn their students some days before; stop (or end, when the lab may not be paused) labs
 *   idle longer than their idle timeout — idle means no user input on a console or desktop channel,
 *   not screen output;
 * - reconcile: compare the database with what the backend runs. Resources no live instance owns are
 *   destroyed; live instances whose resources vanished fail with a reason; instances left in
 *   `provisioning` by a crashed process are provisioned again (provision is idempotent).
 *
 * With several replicas, only the lease holder runs these (see the KubeVirt backend's leader
 * election); on one machine the process runs them itself. stop() ends a pass after the lab it is
 * working on: a replica that loses the lease (or shuts down) must not go on destroying orphans for
 * minutes while the next leader already runs its own pass.
 */
import type { LabBackend, LabHandle } from '../backends/types.js';
import type { Logger } from '../logger.js';
import { LabInstance, type LabInstanceDoc } from '../store/LabInstance.js';
import type { LabDefinitions } from './contracts.js';
import { LIVE_STATES, type LabService } from './LabService.js';
import { DAY_MS, deletionWarningMs, keepDaysOf } from './retention.js';
import { AppError } from '../errors.js';
import { PeriodicPass } from './PeriodicPass.js';

export interface SupervisorDeps {
  service: LabService;
  backend: LabBackend;
  labs: LabDefinitions;
  log: Logger;
  now?: () => Date;
  /** A `provisioning` record not touched for this long, and not owned by this process, is taken over (ms). */
  staleProvisioningMs?: number;
}

export interface PassReport {
  expired: string[];
  /** Stopped at the end of their time limit, their work kept. */
  stoppedAtLimit: string[];
  warned: string[];
  idled: string[];
  orphansDestroyed: string[];
  vanished: string[];
  resumedProvisioning: string[];
}

export class LabSupervisor {
  private readonly loop = new PeriodicPass<PassReport>(() => this.passOnce());
  private firstPass = true;

  constructor(private readonly deps: SupervisorDeps) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** One lifetime + reconcile pass; concurrent callers share it. */
  pass(): Promise<PassReport> {
    return this.loop.run();
  }

  private async passOnce(): Promise<PassReport> {
    const report: PassReport = { expired: [], stoppedAtLimit: [], warned: [], idled: [], orphansDestroyed: [], vanished: [], resumedProvisioning: [] };
    try {
      await this.lifetime(report);
    } catch (err) {
      this.deps.log.warn({ err }, 'supervisor.lifetime_failed');
    }
    try {
      await this.reconcile(report);
    } catch (err) {
      this.deps.log.warn({ err }, 'supervisor.reconcile_failed');
    }
    this.firstPass = false;
    const n = Object.values(report).reduce((a, l: string[]) => a + l.length, 0);
    if (n > 0) this.deps.log.info(report, 'supervisor.pass');
    return report;
  }

  private async lifetime(report: PassReport): Promise<void> {
    const now = this.now();
    const { service } = this.deps;
    const overdue = (await LabInstance.find({ state: { $in: [...LIVE_STATES] }, expiresAt: { $ne: null, $lte: now } }).lean()) as LabInstanceDoc[];
    for (const inst of overdue) {
      if (this.loop.stopping) return;
      if (inst.warmSession) continue; // a prepared lab waits for its student; the warm duty ends it with its session
      let reason = inst.state === 'stopped' ? `The lab was kept stopped for ${keepDaysOf(inst, service.retention)} days; its disks were deleted.` : 'The lab reached its time limit.';
      if (inst.state !== 'stopped' && inst.lifetime?.pausable) {
        try {
          await service.stop(inst._id);
          report.stoppedAtLimit.push(inst._id);
          continue;
        } catch (err) {
          // it cannot be kept (e.g. the operator's storage total): it ends, and says why
          reason = `The lab reached its time limit and could not be kept: ${err instanceof AppError ? err.publicMessage : String(err)}`;
        }
      }
      await service.finish(inst, 'expired', reason).catch((err) => this.deps.log.warn({ err, instance: inst._id }, 'supervisor.expire_failed'));
      report.expired.push(inst._id);
    }
    await this.warnBeforeDeletion(now, report);
    const running = (await LabInstance.find({ state: 'running' }).lean()) as LabInstanceDoc[];
    for (const inst of running) {
      if (this.loop.stopping) return;
      if (inst.warmSession) continue;
      const lt = inst.lifetime;
      if (!lt) continue;
      if (inst.expiresAt && !inst.warnedAt && inst.expiresAt.getTime() - lt.warnBeforeMinutes * 60_000 <= now.getTime()) {
        if (await service.markWarned(inst, now)) {
          service.emit({ type: 'expiry-warning', instanceId: inst._id, expiresAt: inst.expiresAt.toISOString() });
          report.warned.push(inst._id);
        }
      }
      const last = inst.lastActivityAt ?? inst.startedAt;
      if (lt.idleMinutes > 0 && last && last.getTime() + lt.idleMinutes * 60_000 <= now.getTime()) {
        if (lt.pausable) await service.stop(inst._id).catch((err) => this.deps.log.warn({ err, instance: inst._id }, 'supervisor.idle_stop_failed'));
        else await service.finish(inst, 'expired', 'The lab was idle for too long.').catch((err) => this.deps.log.warn({ err, instance: inst._id }, 'supervisor.idle_expire_failed'));
        report.idled.push(inst._id);
      }
    }
  }

  /** A stopped lab's student is told some days before its disks are deleted (the page shows it). */
  private async warnBeforeDeletion(now: Date, report: PassReport): Promise<void> {
    const { service } = this.deps;
    // no lab is warned earlier than warnDays before its deletion: the others need not be read
    const horizon = new Date(now.getTime() + service.retention.warnDays * DAY_MS);
    const stopped = (await LabInstance.find({ state: 'stopped', warnedAt: null, expiresAt: { $ne: null, $lte: horizon } }).lean()) as LabInstanceDoc[];
    for (const inst of stopped) {
      if (this.loop.stopping) return;
      if (!inst.expiresAt || inst.expiresAt.getTime() - deletionWarningMs(inst, service.retention) > now.getTime()) continue;
      if (await service.markWarned(inst, now)) {
        service.emit({ type: 'expiry-warning', instanceId: inst._id, expiresAt: inst.expiresAt.toISOString() });
        report.warned.push(inst._id);
      }
    }
  }

  private async reconcile(report: PassReport): Promise<void> {
    const { backend, service, labs, log } = this.deps;
    const handles = await backend.list();
    const live = (await LabInstance.find({ state: { $in: [...LIVE_STATES] } }).lean()) as LabInstanceDoc[];
    // by handle name, not by the handle's instance id: a prepared lab handed to a student keeps its handle
    const byName = new Map<string, LabInstanceDoc[]>();
    for (const i of live) if (i.handle) byName.set(i.handle.name, [...(byName.get(i.handle.name) ?? []), i]);
    const running = new Set<string>();

    for (const h of handles) {
      if (this.loop.stopping) return;
      const owners = byName.get(h.name) ?? [];
      const current = owners.filter((i) => i.handle?.generation === h.generation);
      if (current.length > 0) {
        for (const i of current) running.add(i._id);
        continue;
      }
      // nothing live owns it (or an older generation): it must not keep running
      if (service.owns(h.instanceId) && owners.length > 0) continue;
      await backend.destroy(h).catch((err) => log.warn({ err, handle: h.name }, 'supervisor.orphan_destroy_failed'));
      report.orphansDestroyed.push(h.name);
    }

    const stale = this.deps.staleProvisioningMs ?? 120_000;
    for (const inst of live) {
      if (this.loop.stopping) return;
      if (service.owns(inst._id)) continue;
      if (inst.state === 'provisioning') {
        const quiet = this.now().getTime() - new Date(inst.updatedAt).getTime();
        if (!this.firstPass && quiet < stale) continue; // another replica may be on it
        if (!inst.handle) continue;
        try {
          const prepared = await labs.prepare(inst.labId, inst.labVersion, inst.machines ?? {}, { backend: backend.kind });
          void service.runProvision(inst, prepared.spec);
          report.resumedProvisioning.push(inst._id);
        } catch (err) {
          log.warn({ err, instance: inst._id }, 'supervisor.resume_failed');
        }
        continue;
      }
      if (!running.has(inst._id)) {
        await service.markVanished(inst, `The lab's machines are gone (${inst.state} lab not found on the ${backend.kind} backend).`);
        report.vanished.push(inst._id);
        continue;
      }
      if (inst.state === 'running' || inst.state === 'paused') {
        const status = await backend.status(inst.handle as LabHandle);
        const gone = Object.entries(status).filter(([, s]) => s.phase === 'gone' || s.phase === 'failed');
        if (gone.length > 0) {
          await service.markVanished(inst, `Machine ${gone.map(([m]) => m).join(', ')} stopped unexpectedly.`);
          report.vanished.push(inst._id);
        }
      }
    }
  }

  /** A pass now and then every intervalMs, until stop(). */
  start(intervalMs: number): void {
    this.loop.start(intervalMs);
  }

  /** Ends the pass in flight after its current lab and waits for it. */
  stop(): Promise<void> {
    return this.loop.stop();
  }
}
