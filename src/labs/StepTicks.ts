/**
 * Ticking a step: the one operation that writes a step tick on an instance, publishes the event and,
 * in grading mode "steps", the score the server derives. Runtimes own one (LabService with its
 * per-instance lock), so HTTP handlers never write instances or emit events themselves.
 */
import { NotFound } from '../errors.js';
import type { Logger } from '../logger.js';
import { LabInstance, type LabInstanceDoc } from '../store/LabInstance.js';
import type { KeyedMutex } from '../KeyedMutex.js';
import type { LabEvent, RenderedInstructions, StepTickResult } from './contracts.js';
import { agsScore, stepScore, type ScorePublisher } from './score.js';

export interface StepTicksDeps {
  /** Writes of one instance record run in this order (FerretDB updates are read-modify-write). */
  lock: KeyedMutex;
  emit(event: LabEvent): void;
  log: Logger;
  /** Where scores go; unset = ticks are stored but not graded. */
  grades?: ScorePublisher;
}

export class StepTicks {
  constructor(private readonly d: StepTicksDeps) {}

  /** Set or clear a step's tick; idempotent (unchanged = no write, no event, no score). */
  async tick(instanceId: string, stepId: string, done: boolean, lab: Pick<RenderedInstructions, 'steps' | 'grading'>): Promise<StepTickResult> {
    if (!lab.steps.some((s) => s.id === stepId)) throw new NotFound(`no step ${stepId}`, { publicMessage: 'This step does not exist in the lab.' });
    const { inst, changed } = await this.d.lock.run(instanceId, async () => {
      const cur = (await LabInstance.findById(instanceId).lean()) as LabInstanceDoc | null;
      if (!cur) throw new NotFound('instance gone', { publicMessage: 'This lab does not exist.' });
      const was = cur.steps?.[stepId] !== undefined && cur.steps?.[stepId] !== null;
      if (was === done) return { inst: cur, changed: false };
      const update = done ? { $set: { [`steps.${stepId}`]: new Date() } } : { $unset: { [`steps.${stepId}`]: '' } };
      const next = (await LabInstance.findOneAndUpdate({ _id: cur._id }, update, { new: true, lean: true })) as LabInstanceDoc | null;
      return { inst: next ?? cur, changed: true };
    });
    const score = stepScore(lab.grading, lab.steps, inst.steps ?? {});
    const ticks = isoTicks(inst.steps);
    if (changed) {
      this.d.emit({ type: 'steps', instanceId, steps: ticks });
      if (lab.grading.mode === 'steps' && this.d.grades) {
        try {
          await this.d.grades.publish(instanceId, agsScore(score));
        } catch (err) {
          // the tick is kept; a lab launched without a line item simply has no grade to send
          this.d.log.info({ instance: instanceId, err: (err as Error).message }, 'lab.grade_not_published');
        }
      }
    }
    return { inst, changed, ticks, score };
  }
}

export function isoTicks(steps: Record<string, Date | string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(steps ?? {})) if (v) out[k] = new Date(v).toISOString();
  return out;
}
