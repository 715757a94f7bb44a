/**
 * A user's lab for one activity: exactly one per (activity, user), enforced by a unique index and
 * created by an upsert on exactly those keys. The runtime (LabService) owns every state change;
 * this file only stores. A finished lab (expired/destroyed/failed) is restarted in place with a
 * new generation, so the unique key never blocks a relaunch.
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { BackendKind, LabHandle, Progress } from '../backends/types.js';
import { isDuplicateKey, retryUpsert } from './database.js';
import { idOnlyFilters, matchesGuard, type Guard } from './idFilters.js';
import type { LabLifetime } from './LabDefinition.js';

export const INSTANCE_STATES = ['requested', 'provisioning', 'running', 'paused', 'stopped', 'expired', 'destroyed', 'failed'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];
/** States from which a start begins a new generation (nothing of the lab runs in them). */
export const RESTARTABLE: readonly InstanceState[] = ['requested', 'failed', 'expired', 'destroyed'];

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
  lifetime: LabLifetime | null;
  /** When the expiry warning was sent for the current expiresAt (null = not yet). */
  warnedAt: Date | null;
  /** The teacher's time limit for the activity (deep-linking option), minutes; caps the lab's own maximum. */
  timeLimitMinutes: number | null;
  /** Set on a lab prepared ahead of a class (a warm session's pool lab, owned by no student); null on a student's lab. */
  warmSession?: string | null;
  /** On a pool lab: the student instance that took it (or UNUSED_POOL_LAB once withdrawn), null while it is free. */
  claimedBy?: string | null;
  /** On a pool lab: the taker's generation when it claimed it (its adoption is a compare-and-set on that generation). */
  claimedGen?: number | null;
  claimedAt?: Date | null;
  /** On a pool lab: bumped each time a claim is given back; a claim is the unique insert of (pool lab, round). */
  claimRound?: number;
  /** The teacher's keep time for a stopped lab (deep-linking option), days; null = the lab's own. */
  keepDays?: number | null;
  /** GiB the lab's virtual machines reserve for their disks (set when it is provisioned). */
  storageGiB?: number | null;
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
  /** The teacher's keep time for a stopped lab (days), set when the instance is created. */
  keepDays?: number | null;
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
    warmSession: { type: String, default: null },
    claimedBy: { type: String, default: null },
    claimedGen: { type: Number, default: null },
    claimedAt: { type: Date, default: null },
    claimRound: { type: Number, default: 0 },
    keepDays: { type: Number, default: null },
    storageGiB: { type: Number, default: null },
  },
  { timestamps: true, minimize: false, versionKey: false },
);
schema.index({ activityId: 1, userId: 1 }, { unique: true });
schema.index({ contextId: 1, activityId: 1 });
schema.index({ state: 1, expiresAt: 1 });
schema.index({ activityId: 1, warmSession: 1, claimedBy: 1 });

export const LabInstance = mongoose.model<LabInstanceDoc>('LabInstance', schema);

/** The user's instance for the activity, if there is one. */
export async function findInstanceRecord(activityId: string, userId: string): Promise<LabInstanceDoc | null> {
  return (await LabInstance.findOne({ activityId, userId }).lean()) as LabInstanceDoc | null;
}

/**
 * An instance by its id (the cheapest read there is: FerretDB answers an _id lookup without a scan).
 * Through the driver: a lean query adds nothing here but mongoose's query building (~0.4 ms).
 */
export async function findInstanceById(id: string): Promise<LabInstanceDoc | null> {
  return (await LabInstance.collection.findOne({ _id: id } as never)) as LabInstanceDoc | null;
}

/**
 * The user's instance for the activity, created if missing — exactly one even when called
 * concurrently (the unique keys decide; a duplicate-key race finds the winner). On FerretDB a new
 * record is inserted first (its unique index answers that without reading the collection; a
 * filter on activity and user would scan it) and an existing one found after the duplicate-key
 * error; elsewhere one upsert does both.
 */
export async function ensureInstanceRecord(key: LabInstanceKey): Promise<LabInstanceDoc> {
  const fresh = { _id: newInstanceId(), contextId: key.contextId, labId: key.labId, labVersion: key.labVersion, state: 'requested' as const, timeLimitMinutes: key.timeLimitMinutes ?? null, keepDays: key.keepDays ?? null };
  if (idOnlyFilters()) {
    try {
      return (await LabInstance.create({ ...fresh, activityId: key.activityId, userId: key.userId })).toObject() as LabInstanceDoc;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const found = await findInstanceRecord(key.activityId, key.userId);
      if (found) return found;
      throw err;
    }
  }
  const doc = await retryUpsert(() =>
    LabInstance.findOneAndUpdate({ activityId: key.activityId, userId: key.userId }, { $setOnInsert: fresh }, { upsert: true, new: true, lean: true }),
  );
  if (!doc) throw new Error('upsert returned no document');
  return doc as LabInstanceDoc;
}

/**
 * Compare-and-set on one record: `update` applies when the record `id` passes `guard` (see
 * idFilters.ts for how on FerretDB). Returns the record as written, or null when it did not pass
 * (or does not exist).
 */
export async function updateInstance(id: string, guard: Guard, update: mongoose.UpdateQuery<LabInstanceDoc>): Promise<LabInstanceDoc | null> {
  if (idOnlyFilters()) {
    const cur = await findInstanceById(id);
    if (!cur || !matchesGuard(cur as unknown as Record<string, unknown>, guard)) return null;
    return (await LabInstance.findOneAndUpdate({ _id: id }, update, { new: true, lean: true })) as LabInstanceDoc | null;
  }
  return (await LabInstance.findOneAndUpdate({ ...guard, _id: id }, update, { new: true, lean: true })) as LabInstanceDoc | null;
}

/** GiB reserved by the disks of labs that hold resources, by state (the operator's total and the metrics read it). */
export async function storageGiBByState(): Promise<Partial<Record<InstanceState, number>>> {
  const rows = (await LabInstance.find({ state: { $in: ['provisioning', 'running', 'paused', 'stopped'] } }, { state: 1, storageGiB: 1 }).lean()) as Array<Pick<LabInstanceDoc, 'state' | 'storageGiB'>>;
  const out: Partial<Record<InstanceState, number>> = {};
  for (const r of rows) if (r.storageGiB) out[r.state] = (out[r.state] ?? 0) + r.storageGiB;
  return out;
}
