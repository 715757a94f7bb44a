/**
 * A class session a teacher scheduled for an activity: labs are prepared ahead of `startsAt` for
 * `expected` students and handed out on launch; the unused ones are destroyed after `endsAt`.
 * The pool labs themselves are LabInstance records (see WarmLabs.ts); this file only stores.
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';

export const WARM_SESSION_STATES = ['scheduled', 'ended'] as const;
export type WarmSessionState = (typeof WARM_SESSION_STATES)[number];

export interface WarmSessionDoc {
  _id: string;
  /** Our course key (what sessions and instances carry). */
  contextId: string;
  activityId: string;
  labId: string;
  startsAt: Date;
  endsAt: Date;
  /** How many labs to prepare (already capped by capacity when scheduled). */
  expected: number;
  /** The teacher's user id. */
  createdBy: string;
  /** `ended` once every unused lab of the session is destroyed (after its end, or after a cancel). */
  state: WarmSessionState;
  /** Set when a teacher cancelled the session: its unused labs go at once, handed-out ones stay. */
  cancelledAt?: Date | null;
  cancelledBy?: string | null;
  createdAt: Date;
  updatedAt: Date;
}

const schema = new Schema<WarmSessionDoc>(
  {
    _id: { type: String, default: () => `w${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x').toLowerCase()}` },
    contextId: { type: String, required: true },
    activityId: { type: String, required: true },
    labId: { type: String, required: true },
    startsAt: { type: Date, required: true },
    endsAt: { type: Date, required: true },
    expected: { type: Number, required: true },
    createdBy: { type: String, required: true },
    state: { type: String, enum: WARM_SESSION_STATES, default: 'scheduled' },
    cancelledAt: { type: Date, default: null },
    cancelledBy: { type: String, default: null },
  },
  { timestamps: true, versionKey: false },
);
schema.index({ contextId: 1, startsAt: 1 });
schema.index({ state: 1, startsAt: 1 });

export const WarmSession = mongoose.model<WarmSessionDoc>('WarmSession', schema, 'warm_sessions');

export async function createWarmSession(s: Pick<WarmSessionDoc, 'contextId' | 'activityId' | 'labId' | 'startsAt' | 'endsAt' | 'expected' | 'createdBy'>): Promise<WarmSessionDoc> {
  const doc = await WarmSession.create(s);
  return doc.toObject() as WarmSessionDoc;
}

/** The course's sessions, latest start first. */
export async function courseWarmSessions(contextId: string, limit = 50): Promise<WarmSessionDoc[]> {
  return (await WarmSession.find({ contextId }).sort({ startsAt: -1 }).limit(limit).lean()) as WarmSessionDoc[];
}

/** Sessions not ended whose preparation window has opened (startsAt - lead ≤ now), and cancelled ones not cleaned up yet. */
export async function openWarmSessions(now: Date, leadMs: number): Promise<WarmSessionDoc[]> {
  return (await WarmSession.find({ state: 'scheduled', $or: [{ startsAt: { $lte: new Date(now.getTime() + leadMs) } }, { cancelledAt: { $ne: null } }] }).lean()) as WarmSessionDoc[];
}

/**
 * A teacher cancels a session of their course that has not ended: the warm duty then destroys its
 * labs nobody took. Returns the session (also when it was cancelled already), or null when the
 * course has no such session.
 */
export async function cancelWarmSession(contextId: string, id: string, by: string, at: Date): Promise<WarmSessionDoc | null> {
  await WarmSession.updateOne({ _id: id, contextId, state: 'scheduled', cancelledAt: null }, { $set: { cancelledAt: at, cancelledBy: by } });
  return (await WarmSession.findOne({ _id: id, contextId }).lean()) as WarmSessionDoc | null;
}

/** Ids among these whose session was cancelled (their free labs are not handed out any more). */
export async function cancelledAmong(ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  return new Set((await WarmSession.find({ _id: { $in: ids }, cancelledAt: { $ne: null } }, { _id: 1 }).lean()).map((s) => s._id));
}

export async function markWarmSessionEnded(id: string): Promise<void> {
  await WarmSession.updateOne({ _id: id, state: 'scheduled' }, { $set: { state: 'ended' } });
}
