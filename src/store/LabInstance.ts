/**
 * A user's lab for one activity: exactly one per (activity, user), enforced by a unique index and
 * created by an upsert on exactly those keys. The runtime (LabService) owns every state change;
 * this file only stores. A finished lab (expired/destroyed/failed) is restarted in place with a
 * new generation, so the unique key never blocks a relaunch.
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { BackendKind, LabHandle, Progress } from '../backends/types.js';
import { retryUpsert } from './database.js';

export const INSTANCE_STATES = ['requested', 'provisioning', 'running', 'paused', 'stopped', 'expired', 'destroyed', 'failed'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

export interface LabInstanceDoc {
  _id: string;
  activityId: string;
  userId: string;
  /** The LTI context (course) key, for teacher overviews. */
  contextId: string;
  labId: string;
  /** The lab definition version this instance runs; kept for its whole life. */
  labVersion: string;
  backend: BackendKind | null;
  handle: LabHandle | null;
  generation: number;
  state: InstanceState;
  failureReason: string | null;
  progress: Progress | null;
  /** Per machine: generated or fixed credentials, and anything else templated per instance. */
  machines: Record<string, { username?: string; password?: string; ip?: string; host?: string }>;
  /** Step id → when it was ticked. */
  steps: Record<string, Date>;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  expiresAt: Date | null;
  lastActivityAt: Date | null;
  /** Lifetime rules of the lab version this instance runs (copied at start, so a template edit never changes a running lab). */
  lifetime: { maxMinutes: number; idleMinutes: number; pausable: boolean; warnBeforeMinutes: number } | null;
  /** When the expiry warning was sent for the current expiresAt (null = not yet). */
  warnedAt: Date | null;
  /** The teacher's time limit for the activity (deep-linking option), minutes; caps the lab's own maximum. */
  timeLimitMinutes: number | null;
}

/** What identifies a user's instance for an activity, and what it is created with. */
export interface LabInstanceKey {
  activityId: string;
  userId: string;
  contextId: string;
  labId: string;
  labVersion: string;
  /** The teacher's time limit for the activity (minutes), set when the instance is created; caps the lab's maximum duration. */
  timeLimitMinutes?: number | null;
}

/** Instance ids are DNS-1123 friendly (lowercase base32), 16 chars, no personal data. */
export function newInstanceId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from(randomBytes(16), (b) => alphabet[b & 31]).join('');
}

const schema = new Schema<LabInstanceDoc>(
  {
    _id: { type: String, default: newInstanceId },
    activityId: { type: String, required: true },
    userId: { type: String, required: true },
    contextId: { type: String, required: true },
    labId: { type: String, required: true },
    labVersion: { type: String, required: true },
    backend: { type: String, default: null },
    handle: { type: Schema.Types.Mixed, default: null },
    generation: { type: Number, default: 0 },
    state: { type: String, enum: INSTANCE_STATES, default: 'requested' },
    failureReason: { type: String, default: null },
    progress: { type: Schema.Types.Mixed, default: null },
    machines: { type: Schema.Types.Mixed, default: {} },
    steps: { type: Schema.Types.Mixed, default: {} },
    startedAt: { type: Date, default: null },
    expiresAt: { type: Date, default: null },
    lastActivityAt: { type: Date, default: null },
    lifetime: { type: Schema.Types.Mixed, default: null },
    warnedAt: { type: Date, default: null },
    timeLimitMinutes: { type: Number, default: null },
  },
  { timestamps: true, minimize: false, versionKey: false },
);
schema.index({ activityId: 1, userId: 1 }, { unique: true });
schema.index({ contextId: 1, activityId: 1 });
schema.index({ state: 1, expiresAt: 1 });

export const LabInstance = mongoose.model<LabInstanceDoc>('LabInstance', schema);

/** The user's instance for the activity, if there is one. */
export async function findInstanceRecord(activityId: string, userId: string): Promise<LabInstanceDoc | null> {
  return (await LabInstance.findOne({ activityId, userId }).lean()) as LabInstanceDoc | null;
}

/**
 * The user's instance for the activity, created if missing — exactly one even when called
 * concurrently (upsert on the unique keys; a duplicate-key race is retried and finds the winner).
 */
export async function ensureInstanceRecord(key: LabInstanceKey): Promise<LabInstanceDoc> {
  const doc = await retryUpsert(() =>
    LabInstance.findOneAndUpdate(
      { activityId: key.activityId, userId: key.userId },
      {
        $setOnInsert: { _id: newInstanceId(), contextId: key.contextId, labId: key.labId, labVersion: key.labVersion, state: 'requested', timeLimitMinutes: key.timeLimitMinutes ?? null },
      },
      { upsert: true, new: true, lean: true },
    ),
  );
  if (!doc) throw new Error('upsert returned no document');
  return doc as LabInstanceDoc;
}
