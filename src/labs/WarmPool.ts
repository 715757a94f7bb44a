/**
 * The warm duty (a leader duty, like the supervisor): for each scheduled class session whose
 * preparation window is open (start − lead ≤ now < end), make sure `expected` pool labs exist and
 * are provisioned — starting a new one only when it fits the backend's capacity now, so a pool lab
 * never waits in the capacity queue ahead of a student; once a session has ended, or a teacher
 * cancelled it, withdraw and destroy the pool labs nobody took (handed-out labs stay the students'). Every pass also finishes or undoes hand-outs a crash cut short
 * (WarmHandout.recover). One pass at a time; stop() ends a pass after its current lab.
 */
import type { LabBackend } from '../backends/types.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { LabInstanceDoc } from '../store/LabInstance.js';
import { markWarmSessionEnded, openWarmSessions, type WarmSessionDoc } from '../store/WarmSession.js';
import { UNUSED_POOL_LAB, pendingClaims, ensurePoolLab, poolUserId, sessionPoolLabs, withdrawPoolLab } from '../store/WarmLabs.js';
import type { LabDefinitions, LabSummary } from './contracts.js';
import { labsFitNow } from './warmCapacity.js';
import type { LabService } from './LabService.js';
import { PeriodicPass } from './PeriodicPass.js';

export interface WarmPoolDeps {
  service: LabService;
  backend: LabBackend;
  labs: LabDefinitions;
  log: Logger;
  metrics?: Metrics;
  /** Preparation starts this long before a session (ms). */
  leadMs: number;
  /** A claim older than this that is still held by the pool is finished or undone (ms). */
  stuckClaimMs?: number;
  now?: () => Date;
}

export interface WarmPassReport {
  started: string[];
  wasted: string[];
  recovered: string[];
  ended: string[];
}

export class WarmPool {
  private readonly loop = new PeriodicPass<WarmPassReport>(() => this.passOnce());

  constructor(private readonly d: WarmPoolDeps) {}

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  /** One pass; concurrent callers share it. */
  pass(): Promise<WarmPassReport> {
    return this.loop.run();
  }

  private async passOnce(): Promise<WarmPassReport> {
    const report: WarmPassReport = { started: [], wasted: [], recovered: [], ended: [] };
    try {
      await this.recoverClaims(report);
      const now = this.now();
      for (const s of await openWarmSessions(now, this.d.leadMs)) {
        if (this.loop.stopping) break;
        if (s.cancelledAt || now.getTime() >= s.endsAt.getTime()) await this.end(s, report);
        else await this.prepare(s, report);
      }
    } catch (err) {
      this.d.log.warn({ err }, 'warm.pass_failed');
    }
    if (report.started.length + report.wasted.length + report.recovered.length + report.ended.length > 0) this.d.log.info(report, 'warm.pass');
    return report;
  }

  private async recoverClaims(report: WarmPassReport): Promise<void> {
    const now = this.now().getTime();
    // a hand-out takes milliseconds; a claim older than stuckClaimMs was cut short (claims of the last day are looked at)
    for (const { claim, pool } of await pendingClaims(new Date(now - 86_400_000), new Date(now - (this.d.stuckClaimMs ?? 10_000)))) {
      if (this.loop.stopping) return;
      const did = await this.d.service.warm.recover(claim, pool);
      if (did !== 'none') report.recovered.push(`${pool._id}:${did}`);
    }
  }

  private async prepare(s: WarmSessionDoc, report: WarmPassReport): Promise<void> {
    const lab = await this.d.labs.latest(s.labId);
    if (!lab) return;
    const byUser = new Map((await sessionPoolLabs(s._id)).map((p) => [p.userId, p]));
    // what fits now (the backend counts a lab once its provisioning began, which may be after start() returns)
    let budget = labsFitNow(this.d.backend.capacity(), lab);
    for (let n = 0; n < s.expected && budget > 0; n++) {
      if (this.loop.stopping) return;
      const existing = byUser.get(poolUserId(s._id, n));
      if (existing && !this.needsStart(existing)) continue;
      const rec = existing ?? await ensurePoolLab({ sessionId: s._id, n, activityId: s.activityId, contextId: s.contextId, labId: lab.id, labVersion: lab.version });
      if (!this.needsStart(rec)) continue;
      budget--;
      await this.startPoolLab(rec, lab, report);
    }
  }

  /** Free and not provisioned (new, or failed and worth another try). */
  private needsStart(p: LabInstanceDoc): boolean {
    return !p.claimedBy && (p.state === 'requested' || p.state === 'failed');
  }

  private async startPoolLab(rec: LabInstanceDoc, lab: LabSummary, report: WarmPassReport): Promise<void> {
    try {
      await this.d.service.start(rec._id, rec);
      this.d.metrics?.warmPrepared.inc();
      report.started.push(rec._id);
    } catch (err) {
      this.d.log.warn({ err, pool: rec._id, lab: lab.id }, 'warm.prepare_failed');
    }
  }

  /** After the session (or its cancel): withdraw every free pool lab (no launch can claim it any more), then destroy it. */
  private async end(s: WarmSessionDoc, report: WarmPassReport): Promise<void> {
    let pending = 0;
    for (const p of await sessionPoolLabs(s._id)) {
      if (this.loop.stopping) return;
      if (p.claimedBy && p.claimedBy !== UNUSED_POOL_LAB) {
        if (p.state === 'running' || p.state === 'provisioning') pending++; // a hand-out to finish first (recoverClaims)
        continue;
      }
      const withdrawn = p.claimedBy ? p : await withdrawPoolLab(p, this.now());
      if (!withdrawn) {
        pending++;
        continue;
      }
      if (withdrawn.state === 'destroyed' || withdrawn.state === 'expired') continue;
      try {
        await this.d.service.finish(withdrawn, 'destroyed', s.cancelledAt ? 'The class session was cancelled before anyone took this prepared lab.' : 'The class session ended; nobody took this prepared lab.');
      } catch (err) {
        // the next pass tries again; the other sessions of this pass still get their turn
        this.d.log.warn({ err, pool: p._id }, 'warm.end_failed');
        pending++;
        continue;
      }
      if (!p.claimedBy) this.d.metrics?.warmWasted.inc();
      report.wasted.push(p._id);
    }
    if (pending === 0) {
      await markWarmSessionEnded(s._id);
      report.ended.push(s._id);
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
