/**
 * Handing a prepared (warm) lab to a student at launch:
 *
 *   1. claim  — one unique insert: (free running pool lab, its round) → the student's instance id,
 *               with the student's current generation g (store/WarmLabs.ts);
 *   2. adopt  — compare-and-set on the student's record at generation g (in a restartable state):
 *               it takes the pool lab's handle, machines and lifetime, and becomes `running` at g+1;
 *   3. retire — the pool record lets go of the handle (state destroyed, handle null, never a destroy);
 *               for a running lab after the student has it, off the launch's path.
 *
 * Step 1 is the only place a lab changes hands, so two students never share one. A crash after 1
 * leaves the lab claimed by that student: recover() (the warm duty, every pass) finishes step 2
 * while the student's record is still at g, or gives the lab back to the pool once it has moved
 * past g (it started cold meanwhile, and no adoption at g can succeed any more). A crash after 2
 * leaves both records naming one handle; recover() finishes step 3. A prepared lab is never lost.
 *
 * When no prepared lab runs yet, a launch takes one still provisioning: the same three steps, the
 * student's record becoming `provisioning` (with the lab's progress so far), then `takeOver` lets
 * the student's record finish the provisioning (provision is idempotent) and shows them the rest.
 */
import type { LabBackend } from '../backends/types.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { KeyedMutex } from '../KeyedMutex.js';
import { RESTARTABLE, findInstanceById, updateInstance, type InstanceState, type LabInstanceDoc } from '../store/LabInstance.js';
import { claimPoolLab, releasePoolLab, retirePoolLab, type WarmClaimDoc } from '../store/WarmLabs.js';
import { cancelledAmong } from '../store/WarmSession.js';
import type { LabEvent } from './contracts.js';
import { claimGeneration, releaseGeneration } from '../store/LabGeneration.js';
import { PoolLabList } from './PoolLabList.js';


export interface WarmHandoutDeps {
  backend: LabBackend;
  lock: KeyedMutex;
  log: Logger;
  metrics?: Metrics;
  emit: (e: LabEvent) => void;
  now: () => Date;
  /** Finish provisioning a lab handed out before it was running, as the taker's (see LabService). */
  takeOver: (taken: LabInstanceDoc) => Promise<void>;
  /** The activity time limit caps the lab's maximum (as for a cold start). */
  withTimeLimit: (lifetime: NonNullable<LabInstanceDoc['lifetime']>, limit: number | null | undefined) => NonNullable<LabInstanceDoc['lifetime']>;
}

export class WarmHandout {
  /** Hand-outs in flight in this process, by student instance: a double click claims one lab, not two. */
  private readonly taking = new Map<string, Promise<LabInstanceDoc | undefined>>();
  /** The free pool labs as read last here, shared by the launches of a class. */
  private readonly poolLabs = new PoolLabList();

  constructor(private readonly d: WarmHandoutDeps) {}

  /** A prepared lab for this (restartable, student) instance, already running as theirs; undefined when none is free. */
  async take(inst: LabInstanceDoc): Promise<LabInstanceDoc | undefined> {
    if (inst.warmSession || !RESTARTABLE.includes(inst.state)) return undefined;
    const pending = this.taking.get(inst._id);
    if (pending) return pending;
    const p = this.takeOnce(inst).finally(() => this.taking.delete(inst._id));
    this.taking.set(inst._id, p);
    return p;
  }

  private async takeOnce(inst: LabInstanceDoc): Promise<LabInstanceDoc | undefined> {
    const pool = await claimPoolLab(inst.activityId, inst.labVersion, inst._id, inst.generation, this.d.now(), this.poolLabs);
    if (!pool) return undefined;
    const round = pool.claimRound ?? 0;
    // the list it came from may be a second old: a lab claimed while provisioning may be running by now, any may
    // have failed, and its session may have been cancelled (on any replica)
    const [fresh, cancelled] = await Promise.all([
      findInstanceById(pool._id),
      cancelledAmong(pool.warmSession ? [pool.warmSession] : []),
    ]);
    if (pool.warmSession && cancelled.has(pool.warmSession)) this.poolLabs.dropSession(pool.warmSession);
    const usable = fresh && cancelled.size === 0 && (fresh.claimRound ?? 0) === round && (fresh.state === 'running' || fresh.state === 'provisioning');
    const adopted = usable ? await this.adopt(fresh, round, inst.generation, inst) : undefined;
    if (!adopted) {
      // the record moved on (a concurrent start won), the lab failed or its session was cancelled: no adoption at this generation
      const released = await releasePoolLab(pool, round);
      if (released && usable) {
        this.poolLabs.giveBack({ ...fresh, claimRound: round + 1, claimedBy: null, claimedGen: null, claimedAt: null });
      }
      return undefined;
    }
    if (adopted.state === 'provisioning') {
      await this.retire(pool, round, adopted);
      await this.d.takeOver(adopted);
      return adopted;
    }
    // the student's record holds the running lab now: the pool record lets go of it after the
    // student has it (the warm duty's recovery finishes this after a crash, as any cut-short step)
    this.retire(pool, round, adopted).catch((err: unknown) => this.d.log.warn({ err, pool: pool._id, instance: adopted._id }, 'warm.retire_failed'));
    return adopted;
  }

  /**
   * Step 2: the student's record at the claimed generation takes the pool lab. Undefined when the
   * record moved on. The next generation is claimed first, as a cold start claims it, so a cold
   * start (or another hand-out) on another replica can never take the same generation: the update's
   * filter alone would not decide it on FerretDB. The claim names this hand-out, so recovery after a
   * crash finishes it.
   */
  private async adopt(pool: LabInstanceDoc, round: number, gen: number, inst: Pick<LabInstanceDoc, '_id' | 'state' | 'handle' | 'timeLimitMinutes'>): Promise<LabInstanceDoc | undefined> {
    if (!pool.handle || !pool.lifetime) return undefined;
    const owner = `warm:${pool._id}:${round}`;
    if (!(await claimGeneration(inst._id, gen + 1, owner))) return undefined;
    const now = this.d.now();
    const lifetime = this.d.withTimeLimit(pool.lifetime, inst.timeLimitMinutes);
    const previous = inst.handle;
    const running = pool.state === 'running';
    // the clocks start at the hand-out (or, for a lab still provisioning, once it runs)
    const clocks = running
      ? { state: 'running', startedAt: now, expiresAt: new Date(now.getTime() + lifetime.maxMinutes * 60_000), progress: { phase: 'machines-booted', percent: 100, message: 'Your lab is ready' } }
      : { state: 'provisioning', startedAt: null, expiresAt: null, progress: pool.progress ?? { phase: 'queued', percent: 0, message: 'Waiting to start' } };
    const doc = await this.d.lock.run(inst._id, () => updateInstance(
      inst._id,
      { generation: gen, state: { $in: [...RESTARTABLE] } },
      {
        $set: {
          ...clocks, generation: gen + 1, handle: pool.handle, backend: pool.backend, failureReason: null,
          machines: pool.machines, storageGiB: pool.storageGiB ?? null, lifetime, warnedAt: null, lastActivityAt: now,
        },
      },
    ));
    if (!doc) {
      await releaseGeneration(inst._id, gen + 1, owner);
      return undefined;
    }
    this.d.metrics?.warmHandedOut.inc();
    this.d.log.info({ instance: doc._id, pool: pool._id, session: pool.warmSession, handle: pool.handle.name, state: doc.state }, 'warm.handed_out');
    this.d.emit({ type: 'state', instanceId: doc._id, state: doc.state });
    if (doc.progress && !running) this.d.emit({ type: 'progress', instanceId: doc._id, progress: doc.progress });
    // a failed earlier generation may have left resources behind
    if (previous && inst.state === 'failed' && previous.name !== pool.handle.name) await this.d.backend.destroy(previous).catch((err) => this.d.log.warn({ err, instance: doc._id }, 'lab.cleanup_failed'));
    return doc;
  }

  private async retire(pool: LabInstanceDoc, round: number, taker: LabInstanceDoc): Promise<void> {
    // serialized with this process's other writes of the pool record (its progress while provisioning)
    if (!(await this.d.lock.run(pool._id, () => retirePoolLab(pool, round, taker._id)))) this.d.log.warn({ pool: pool._id, instance: taker._id }, 'warm.retire_lost');
  }

  /**
   * Finish or undo a claim a crash (or a slow replica) left: adopt while the taker is still at the
   * claimed generation, retire once the taker holds the handle, release once the taker moved past
   * it. Returns what it did.
   */
  async recover(claim: WarmClaimDoc, pool: LabInstanceDoc): Promise<'adopted' | 'retired' | 'released' | 'none'> {
    if (!pool.handle || claim.gen === null) return 'none';
    const handle = pool.handle.name;
    const taker = await findInstanceById(claim.taker);
    if (taker?.handle?.name === handle) return (await retirePoolLab(pool, claim.round, claim.taker)) ? 'retired' : 'none';
    if (taker && taker.generation === claim.gen && RESTARTABLE.includes(taker.state)) {
      const adopted = await this.adopt(pool, claim.round, claim.gen, taker);
      if (adopted) {
        await this.retire(pool, claim.round, adopted);
        if (adopted.state === 'provisioning') await this.d.takeOver(adopted);
        return 'adopted';
      }
    }
    const fresh = await findInstanceById(claim.taker);
    if (fresh?.handle?.name === handle) return (await retirePoolLab(pool, claim.round, claim.taker)) ? 'retired' : 'none';
    if (!fresh || fresh.generation !== claim.gen) return (await releasePoolLab(pool, claim.round)) ? 'released' : 'none';
    return 'none';
  }
}
