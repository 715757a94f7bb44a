/**
 * The lab instance life cycle, shared by every backend:
 *
 *   requested ─start─▶ provisioning ─▶ running ⇄ paused
 *                          │              │ stop     ▲ start
 *                          ▼              ▼          │
 *                        failed        stopped ──────┘ ─▶ expired / destroyed
 *
 * Every transition is a compare-and-set on (state, generation) in the database, so concurrent
 * calls (double clicks, two replicas, the sweeper racing a student) have exactly one winner and
 * the others see the winner's result. The backend handle is created once per generation and
 * persisted before anything is provisioned: a crash at any step leaves a record the reconciler
 * can finish or clean up. A finished instance (failed / expired / destroyed) starts again with the
 * next generation.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { ChannelKind, ExecOptions, ExecResult, LabBackend, LabHandle, MachineStatus, Progress } from '../backends/types.js';
import { AppError, CapacityExhausted, Conflict, NotFound } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { RESTARTABLE, ensureInstanceRecord, findInstanceById, updateInstance, storageGiBByState, type InstanceState, type LabInstanceDoc } from '../store/LabInstance.js';
import type { InstanceKey, InstanceMachines, LabDefinitions, LabEvent, LabRuntime, LabSummary, RenderedInstructions, StepTickResult } from './contracts.js';
import { CapacityQueue } from './CapacityQueue.js';
import { ProgressRecorder } from './ProgressRecorder.js';
import { KeyedMutex } from '../KeyedMutex.js';
import { claimGeneration } from '../store/LabGeneration.js';
import { StepTicks } from './StepTicks.js';
import type { ScorePublisher } from './score.js';
import { LabEventRelay } from './LabEventRelay.js';
import { WarmHandout } from './WarmHandout.js';
import { DEFAULT_RETENTION, keptUntil, labStorageGiB, storageRefusal, type RetentionPolicy } from './retention.js';

export interface LabServiceDeps {
  backend: LabBackend;
  labs: LabDefinitions;
  log: Logger;
  metrics?: Metrics;
  /** While queued for capacity, try again at least this often (ms). */
  capacityRetryMs?: number;
  /** Where step scores go (the grade outbox); unset = ticks are stored but not graded. */
  grades?: ScorePublisher;
  /** lastActivityAt is written at most this often per instance (ms). */
  activityWriteMs?: number;
  now?: () => Date;
  /** Share events with other replicas through the database, reading theirs this often (ms). */
  sharedEvents?: { pollMs: number; origin?: string };
  /** How long stopped labs keep their disks and how much they may keep (default: DEFAULT_RETENTION). */
  retention?: RetentionPolicy;
}

/** States in which the backend holds resources for the instance. */
export const LIVE_STATES: readonly InstanceState[] = ['provisioning', 'running', 'paused', 'stopped'];

/** Backend resource name for a generation: DNS-1123, ≤ 63 chars, no personal data. */
export function handleName(instanceId: string, generation: number): string {
  return `lab-${instanceId}-g${generation}`;
}

/** The teacher's activity time limit caps the lab's own maximum (never extends it). */
export function withTimeLimit<T extends { maxMinutes: number }>(lifetime: T, limit: number | null | undefined): T {
  return limit && limit > 0 && limit < lifetime.maxMinutes ? { ...lifetime, maxMinutes: limit } : lifetime;
}

function reasonOf(err: unknown): string {
  if (err instanceof AppError) return err.publicMessage;
  return err instanceof Error ? err.message : String(err);
}

export class LabService implements LabRuntime {
  private readonly events = new EventEmitter();
  /** Provisioning runs owned by this process, by instance id. */
  private readonly inFlight = new Map<string, { generation: number; abort: AbortController; done: Promise<void> }>();
  /**
   * When lastActivityAt was last written, by instance. An entry older than the write interval says
   * nothing (the next note writes anyway), so entries go when their lab leaves `running` and stale
   * ones are swept as notes come in: the map holds at most the labs active in the last interval.
   */
  private readonly lastActivityWrite = new Map<string, number>();
  private activitySweepAt = 0;
  /** Every write of an instance record in this process is serialized per instance (see KeyedMutex). */
  readonly lock = new KeyedMutex();
  readonly queue: CapacityQueue;
  private readonly stepTicks: StepTicks;
  private closed = false;
  /** Other replicas' events (unset: this process is alone). */
  private readonly relay: LabEventRelay | undefined;
  /** Prepared labs of warm sessions, taken at start. */
  readonly warm: WarmHandout;

  constructor(private readonly deps: LabServiceDeps) {
    this.events.setMaxListeners(0);
    if (deps.sharedEvents) {
      this.relay = new LabEventRelay({
        log: deps.log, pollMs: deps.sharedEvents.pollMs, ...(deps.sharedEvents.origin ? { origin: deps.sharedEvents.origin } : {}),
        deliver: (e) => this.events.emit(e.instanceId, e),
        subscribed: () => this.events.eventNames().filter((n): n is string => typeof n === 'string'),
      });
      this.relay.start();
    }
    this.queue = new CapacityQueue(deps.capacityRetryMs ?? 5000);
    this.warm = new WarmHandout({
      backend: deps.backend, lock: this.lock, log: deps.log, emit: (e) => this.emit(e), now: () => this.now(), withTimeLimit, takeOver: (taken) => this.takeOver(taken),
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
    });
    this.stepTicks = new StepTicks({ lock: this.lock, emit: (e) => this.emit(e), log: deps.log, ...(deps.grades ? { grades: deps.grades } : {}) });
  }

  unavailableReason(lab: Pick<LabSummary, 'machines'>): string | null {
    return this.backend.cannotRun?.(lab.machines) ?? null;
  }

  private get backend(): LabBackend {
    return this.deps.backend;
  }
  get retention(): RetentionPolicy {
    return this.deps.retention ?? DEFAULT_RETENTION;
  }
  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  ensureInstance(key: InstanceKey): Promise<LabInstanceDoc> {
    return ensureInstanceRecord(key);
  }

  async get(instanceId: string): Promise<LabInstanceDoc | undefined> {
    return (await findInstanceById(instanceId)) ?? undefined;
  }

  private async mustGet(instanceId: string): Promise<LabInstanceDoc> {
    const doc = await this.get(instanceId);
    if (!doc) throw new NotFound(`instance ${instanceId} not found`, { publicMessage: 'This lab does not exist.' });
    return doc;
  }

  /** Compare-and-set on state (and generation): the one place states change. Returns the new doc, or undefined when another caller won. */
  private async transition(
    inst: Pick<LabInstanceDoc, '_id' | 'generation'>,
    from: readonly InstanceState[],
    set: Partial<LabInstanceDoc> & { state: InstanceState },
  ): Promise<LabInstanceDoc | undefined> {
    const doc = await this.lock.run(inst._id, () =>
      updateInstance(inst._id, { generation: inst.generation, state: { $in: [...from] } }, { $set: set }),
    );
    if (!doc) return undefined;
    if (doc.state !== 'running') this.lastActivityWrite.delete(doc._id);
    else this.activityWritten(doc);
    this.emit({ type: 'state', instanceId: doc._id, state: doc.state, ...(doc.failureReason ? { reason: doc.failureReason } : {}) });
    return doc;
  }

  async start(instanceId: string, current?: LabInstanceDoc): Promise<LabInstanceDoc> {
    const inst = current?._id === instanceId ? current : await this.mustGet(instanceId);
    if (RESTARTABLE.includes(inst.state)) {
      const taken = await this.warm.take(inst);
      if (!taken) return this.beginProvision(inst);
      if (taken.state === 'running') this.activityWritten(taken);
      return taken;
    }
    if (inst.state === 'stopped' && inst.handle) {
      const handle = inst.handle;
      const won = await this.transition(inst, ['stopped'], { state: 'provisioning', progress: { phase: 'machines-starting', percent: 60, message: 'Starting the machines' } });
      if (!won) return this.mustGet(instanceId);
      try {
        await this.backend.start(handle);
        return (await this.markRunning(won)) ?? this.mustGet(instanceId);
      } catch (err) {
        await this.fail(won, err);
        throw err;
      }
    }
    return inst;
  }

  /** A new generation: persist the handle first, then provision in the background. */
  private async beginProvision(inst: LabInstanceDoc): Promise<LabInstanceDoc> {
    const prepared = await this.deps.labs.prepare(inst.labId, inst.labVersion, inst.machines ?? {}, { backend: this.backend.kind });
    const generation = inst.generation + 1;
    const handle: LabHandle = { instanceId: inst._id, backend: this.backend.kind, name: handleName(inst._id, generation), generation };
    const previous = inst.handle;
    if (!(await claimGeneration(inst._id, generation))) return this.mustGet(inst._id); // a concurrent start won; it provisions
    const won = await this.lock.run(inst._id, () => updateInstance(
      inst._id,
      { generation: inst.generation, state: inst.state },
      {
        $set: {
          state: 'provisioning',
          generation,
          handle,
          backend: this.backend.kind,
          failureReason: null,
          progress: { phase: 'queued', percent: 0, message: 'Waiting to start' },
          machines: prepared.machines,
          lifetime: withTimeLimit(prepared.lifetime, inst.timeLimitMinutes),
          storageGiB: labStorageGiB(prepared.spec.machines),
          startedAt: null,
          expiresAt: null,
          warnedAt: null,
          lastActivityAt: this.now(),
        },
      },
    ));
    if (!won) return this.mustGet(inst._id); // the record moved on meanwhile (destroyed, started elsewhere)
    const doc = won;
    this.emit({ type: 'state', instanceId: doc._id, state: 'provisioning' });
    this.deps.log.info({ instance: doc._id, lab: doc.labId, version: doc.labVersion, generation }, 'lab.provisioning');
    // a failed generation may have left resources behind: remove them before building the next
    if (previous && inst.state === 'failed') await this.backend.destroy(previous).catch((err) => this.deps.log.warn({ err, instance: doc._id }, 'lab.cleanup_failed'));
    this.runProvision(doc, prepared.spec);
    return doc;
  }

  /**
   * A prepared lab handed out while still provisioning: the pool record's run (when this process
   * has it) stops without touching the machines, and the taker's record finishes the provisioning,
   * its progress never going back below what the student was shown.
   */
  private async takeOver(taken: LabInstanceDoc): Promise<void> {
    const pool = taken.handle ? this.inFlight.get(taken.handle.instanceId) : undefined;
    pool?.abort.abort();
    const prepared = await this.deps.labs.prepare(taken.labId, taken.labVersion, taken.machines ?? {}, { backend: this.backend.kind });
    void this.runProvision(taken, prepared.spec, taken.progress?.percent ?? 0);
  }

  /** Provision (or finish provisioning) the instance's current generation; owned by this process until it ends. */
  runProvision(inst: LabInstanceDoc, spec: Parameters<LabBackend['provision']>[0], fromPercent = 0): Promise<void> {
    const existing = this.inFlight.get(inst._id);
    if (existing && existing.generation === inst.generation) return existing.done;
    const handle = inst.handle;
    if (!handle) return Promise.reject(new Error('instance has no handle'));
    const abort = new AbortController();
    const recorder = new ProgressRecorder(inst, this.backend.kind, this.deps.metrics, (p) => this.emit({ type: 'progress', instanceId: inst._id, progress: p }), (fn) => this.lock.run(inst._id, fn));
    const log = this.deps.log.child({ instance: inst._id, backend: this.backend.kind });
    const done = (async () => {
      for (;;) {
        if (abort.signal.aborted) return;
        try {
          await this.backend.provision(spec, handle, (p) => { if (p.percent >= fromPercent) recorder.report(p); }, abort.signal);
          break;
        } catch (err) {
          if (!(err instanceof CapacityExhausted) || abort.signal.aborted || this.closed) throw err;
          const position = this.queue.enqueue(inst._id);
          recorder.report({ phase: 'queued', percent: 0, message: `${err.publicMessage} You are number ${position} in the queue; the lab starts by itself.`, queuePosition: position });
          log.info({ position }, 'lab.queued');
          await this.queue.wait(inst._id, abort.signal);
        }
      }
      this.queue.remove(inst._id);
      await recorder.flush();
      if (abort.signal.aborted) return;
      const running = await this.markRunning(inst);
      log.info({ ms: recorder.elapsedMs(), running: Boolean(running) }, 'lab.provisioned');
    })()
      .catch(async (err: unknown) => {
        this.queue.remove(inst._id);
        if (abort.signal.aborted) return;
        log.warn({ err }, 'lab.provision_failed');
        // a record that moved on no longer owns the handle (e.g. a prepared lab handed to a student)
        if (await this.fail(inst, err)) await this.backend.destroy(handle).catch((e) => log.warn({ err: e }, 'lab.cleanup_failed'));
        this.queue.release();
      })
      .finally(() => {
        if (this.inFlight.get(inst._id)?.abort === abort) this.inFlight.delete(inst._id);
      });
    this.inFlight.set(inst._id, { generation: inst.generation, abort, done });
    return done;
  }

  private async markRunning(inst: LabInstanceDoc): Promise<LabInstanceDoc | undefined> {
    const now = this.now();
    const fresh = await this.get(inst._id);
    const maxMinutes = fresh?.lifetime?.maxMinutes ?? inst.lifetime?.maxMinutes;
    // every sitting (a new generation, or continuing a stopped lab) gets the whole time limit
    const expiresAt = maxMinutes ? new Date(now.getTime() + maxMinutes * 60_000) : null;
    const machines = await this.reportedAddresses(fresh ?? inst);
    return this.transition(inst, ['provisioning'], {
      state: 'running',
      ...(machines ? { machines } : {}),
      startedAt: fresh?.startedAt ?? now,
      expiresAt,
      warnedAt: null,
      lastActivityAt: now,
      progress: { phase: 'machines-booted', percent: 100, message: 'Your lab is ready' },
    });
  }

  /**
   * The instance's machines with the addresses the backend reports for them (what
   * {{machines.X.ip}} / {{machines.X.host}} are filled from); undefined when it reports none.
   */
  private async reportedAddresses(inst: LabInstanceDoc): Promise<InstanceMachines | undefined> {
    if (!this.backend.addresses || !inst.handle) return undefined;
    let reported: Awaited<ReturnType<NonNullable<LabBackend['addresses']>>>;
    try {
      reported = await this.backend.addresses(inst.handle);
    } catch (err) {
      this.deps.log.warn({ instance: inst._id, err }, 'lab.addresses_unknown');
      return undefined;
    }
    const machines: InstanceMachines = { ...(inst.machines ?? {}) };
    for (const [name, a] of Object.entries(reported)) machines[name] = { ...machines[name], ip: a.ip, host: a.host };
    return machines;
  }

  /** The backend lost the instance's resources: fail it with a reason and clean up what is left. Returns false when the record had moved on. */
  async markVanished(inst: LabInstanceDoc, reason: string): Promise<boolean> {
    const res = await this.transition(inst, [inst.state], { state: 'failed', failureReason: reason });
    if (!res) return false;
    if (inst.handle) await this.backend.destroy(inst.handle).catch(() => undefined);
    return true;
  }

  /** Mark the expiry warning sent for this generation; true for exactly one caller in this process. */
  async markWarned(inst: LabInstanceDoc, at: Date): Promise<boolean> {
    return (await this.lock.run(inst._id, () => updateInstance(inst._id, { generation: inst.generation, warnedAt: null }, { $set: { warnedAt: at } }))) !== null;
  }

  private async fail(inst: Pick<LabInstanceDoc, '_id' | 'generation'>, err: unknown): Promise<LabInstanceDoc | undefined> {
    return this.transition(inst, ['provisioning', 'running', 'paused', 'stopped'], { state: 'failed', failureReason: reasonOf(err) });
  }

  async pause(instanceId: string): Promise<void> {
    const inst = await this.mustGet(instanceId);
    if (inst.state === 'paused') return;
    if (inst.state !== 'running' || !inst.handle) throw new Conflict(`cannot pause in state ${inst.state}`, { publicMessage: `The lab cannot be paused now (it is ${inst.state}).` });
    await this.backend.pause(inst.handle);
    await this.transition(inst, ['running'], { state: 'paused' });
  }

  async resume(instanceId: string): Promise<void> {
    const inst = await this.mustGet(instanceId);
    if (inst.state === 'running') return;
    if (inst.state !== 'paused' || !inst.handle) throw new Conflict(`cannot resume in state ${inst.state}`, { publicMessage: `The lab cannot be resumed now (it is ${inst.state}).` });
    await this.backend.resume(inst.handle);
    await this.transition(inst, ['paused'], { state: 'running', lastActivityAt: this.now() });
  }

  /**
   * Stop the machines and keep their disks until the keep time is over (retention.ts). Refused
   * (Conflict, the lab keeps running) when the disks would pass the operator's total for stopped labs.
   */
  async stop(instanceId: string): Promise<void> {
    const inst = await this.mustGet(instanceId);
    if (inst.state === 'stopped' || RESTARTABLE.includes(inst.state)) return;
    if (inst.state === 'provisioning') return this.finish(inst, 'destroyed');
    if (!inst.handle) return;
    if (this.retention.maxStoppedStorageGiB !== undefined && inst.storageGiB) {
      const refusal = storageRefusal((await storageGiBByState()).stopped ?? 0, inst.storageGiB, this.retention);
      if (refusal) throw new Conflict(`stopping ${instanceId} would pass the stopped-lab storage total`, { publicMessage: refusal });
    }
    await this.backend.stop(inst.handle);
    await this.transition(inst, ['running', 'paused'], { state: 'stopped', expiresAt: keptUntil(this.now(), inst, this.retention), warnedAt: null });
    this.queue.release();
  }

  async reset(instanceId: string, machine?: string): Promise<void> {
    const inst = await this.mustGet(instanceId);
    if (!inst.handle || !['running', 'paused'].includes(inst.state)) throw new Conflict(`cannot reset in state ${inst.state}`, { publicMessage: `The lab cannot be reset now (it is ${inst.state}).` });
    await this.backend.reset(inst.handle, machine);
    if (inst.state === 'paused') await this.transition(inst, ['paused'], { state: 'running' });
    this.emit({ type: 'machines', instanceId, machines: await this.backend.status(inst.handle) });
  }

  destroy(instanceId: string): Promise<void> {
    return this.mustGet(instanceId).then((inst) => this.finish(inst, 'destroyed'));
  }

  /** Tear down and end in `destroyed` or `expired`. Safe to call concurrently and again. */
  async finish(inst: LabInstanceDoc, state: 'destroyed' | 'expired', reason?: string): Promise<void> {
    const flight = this.inFlight.get(inst._id);
    if (flight && flight.generation === inst.generation) flight.abort.abort();
    const won = await this.transition(inst, [...LIVE_STATES, 'requested'], { state, ...(reason ? { failureReason: reason } : {}) });
    if (!won && !LIVE_STATES.includes(inst.state)) return;
    if (inst.handle) await this.backend.destroy(inst.handle);
    this.queue.release();
    this.deps.log.info({ instance: inst._id, state, reason }, 'lab.finished');
  }

  async status(instanceId: string): Promise<Record<string, MachineStatus>> {
    const inst = await this.mustGet(instanceId);
    if (!inst.handle) return {};
    return this.backend.status(inst.handle);
  }

  async openChannel(instanceId: string, machine: string, channel: ChannelKind): Promise<Duplex> {
    const inst = await this.mustGet(instanceId);
    if (!inst.handle || !['running', 'paused'].includes(inst.state)) {
      throw new Conflict(`instance ${instanceId} is ${inst.state}`, { publicMessage: inst.state === 'provisioning' ? 'The lab is still starting.' : `The lab is not running (it is ${inst.state}).` });
    }
    return this.backend.openChannel(inst.handle, machine, channel);
  }

  async screenshot(instanceId: string, machine: string): Promise<Buffer> {
    const inst = await this.mustGet(instanceId);
    if (!this.backend.screenshot) throw new NotFound('backend takes no screenshots', { publicMessage: 'Screen thumbnails are not available on this server.' });
    if (!inst.handle || !['running', 'paused'].includes(inst.state)) throw new Conflict(`instance ${instanceId} is ${inst.state}`, { publicMessage: `The lab is not running (it is ${inst.state}).` });
    return this.backend.screenshot(inst.handle, machine);
  }

  async consoleHistory(instanceId: string, machine: string, maxBytes: number): Promise<Buffer | null> {
    const inst = await this.mustGet(instanceId);
    if (!this.backend.consoleHistory || !inst.handle || !['running', 'paused'].includes(inst.state)) return null;
    return this.backend.consoleHistory(inst.handle, machine, maxBytes);
  }

  async exec(instanceId: string, machine: string, command: string, opts: ExecOptions): Promise<ExecResult> {
    const inst = await this.mustGet(instanceId);
    if (!this.backend.exec) throw new Conflict('backend has no exec', { publicMessage: 'Automatic checks are not available on this backend.' });
    if (!inst.handle || inst.state !== 'running') throw new Conflict(`instance ${instanceId} is ${inst.state}`, { publicMessage: `The lab is not running (it is ${inst.state}).` });
    return this.backend.exec(inst.handle, machine, command, opts);
  }

  /** A running lab whose record was just written with its activity time: the console opening next needs no write of its own. */
  private activityWritten(doc: LabInstanceDoc): void {
    if (doc.lastActivityAt) this.lastActivityWrite.set(doc._id, new Date(doc.lastActivityAt).getTime());
  }

  noteActivity(instanceId: string): void {
    const now = this.now().getTime();
    const interval = this.deps.activityWriteMs ?? 30_000;
    const last = this.lastActivityWrite.get(instanceId) ?? 0;
    if (now - last < interval) return;
    if (now - this.activitySweepAt >= interval) {
      this.activitySweepAt = now;
      for (const [id, t] of this.lastActivityWrite) if (now - t >= interval) this.lastActivityWrite.delete(id);
    }
    this.lastActivityWrite.set(instanceId, now);
    this.lock.run(instanceId, () => updateInstance(instanceId, { state: 'running' }, { $set: { lastActivityAt: new Date(now) } })).catch((err: unknown) =>
      this.deps.log.warn({ err, instance: instanceId }, 'lab.activity_write_failed'),
    );
  }

  tickStep(instanceId: string, stepId: string, done: boolean, lab: Pick<RenderedInstructions, 'steps' | 'grading'>): Promise<StepTickResult> {
    return this.stepTicks.tick(instanceId, stepId, done, lab);
  }

  subscribe(instanceId: string, listener: (e: LabEvent) => void): () => void {
    this.relay?.watch(instanceId);
    this.events.on(instanceId, listener);
    return () => this.events.off(instanceId, listener);
  }

  /** To this process's subscribers at once, and to the other replicas' through the database. */
  emit(event: LabEvent): void {
    this.events.emit(event.instanceId, event);
    this.relay?.publish(event);
  }

  /** Instances whose activity this process remembers (bounded by the labs active in the last write interval). */
  get activityTracked(): number {
    return this.lastActivityWrite.size;
  }

  /** Provisioning runs owned by this process (the reconciler leaves these alone). */
  owns(instanceId: string): boolean {
    return this.inFlight.has(instanceId);
  }

  /** Stop background work (not the labs): in-flight provisioning is abandoned for the next start's reconciler. */
  async close(): Promise<void> {
    this.closed = true;
    this.queue.close();
    for (const f of this.inFlight.values()) f.abort.abort();
    await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
    await this.relay?.close();
  }
}

export type { Progress };
