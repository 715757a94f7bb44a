/**
 * The latest result of every automatic check of a lab instance: one document per
 * (instance, step, check index). Written only by the CheckRunner, which runs one check run per
 * instance at a time in this process, so a read-then-write of these rows never races itself.
 * `passedAt` is sticky: once a check has passed it keeps counting for the grade (a later step may
 * legitimately undo what an earlier one checked, e.g. "start a process" then "stop it").
 */
import mongoose, { Schema } from 'mongoose';

export interface CheckResultDoc {
  /** `${instanceId}/${stepId}/${index}` */
  _id: string;
  instanceId: string;
  stepId: string;
  index: number;
  machine: string;
  /** Latest run. */
  at: Date;
  passed: boolean;
  timedOut: boolean;
  /** null when the check could not be run at all (backend error). */
  exitCode: number | null;
  /** Output excerpt for the teacher (stdout, then stderr), cut to a few KiB. */
  output: string;
  /** The hint with the lab's variables filled in; null when the check passed or has none. */
  hint: string | null;
  /** When the check first passed; null until then. */
  passedAt: Date | null;
  runs: number;
  durationMs: number;
}

const schema = new Schema<CheckResultDoc>(
  {
    _id: { type: String, required: true },
    instanceId: { type: String, required: true },
    stepId: { type: String, required: true },
    index: { type: Number, required: true },
    machine: { type: String, required: true },
    at: { type: Date, required: true },
    passed: { type: Boolean, required: true },
    timedOut: { type: Boolean, default: false },
    exitCode: { type: Number, default: null },
    output: { type: String, default: '' },
    hint: { type: String, default: null },
    passedAt: { type: Date, default: null },
    runs: { type: Number, default: 0 },
    durationMs: { type: Number, default: 0 },
  },
  { versionKey: false },
);
schema.index({ instanceId: 1, stepId: 1 });

export const CheckResult = mongoose.model<CheckResultDoc>('CheckResult', schema);

export function checkResultId(instanceId: string, stepId: string, index: number): string {
  return `${instanceId}/${stepId}/${index}`;
}
