/**
 * The durable grade outbox: every score is written here first, then delivered by GradeService.
 * A *stream* is one (line item, user). Timestamps are assigned at write and strictly increase per
 * stream — the unique index on (stream, timestamp) enforces it even with concurrent writers —
 * and a stream is delivered strictly in timestamp order.
 */
import { createHash, randomInt } from 'node:crypto';
import { KeyedMutex } from '../KeyedMutex.js';
import mongoose, { Schema } from 'mongoose';
import { isDuplicateKey } from './database.js';
import type { ExpiryRule } from './ExpirySweeper.js';

export type OutboxState = 'pending' | 'delivered' | 'rejected';

export interface GradeOutboxDoc {
  _id: mongoose.Types.ObjectId;
  stream: string;
  issuer: string;
  clientId: string;
  lineItemUrl: string;
  userSub: string;
  instanceId: string | null;
  timestamp: Date;
  score: {
    scoreGiven?: number;
    scoreMaximum?: number;
    activityProgress: string;
    gradingProgress: string;
    comment?: string;
  };
  state: OutboxState;
  /** Send attempts made so far. */
  attempts: number;
  nextAttemptAt: Date;
  /** A worker holds the entry until then (Date(0) = free); released on shutdown. */
  leaseUntil: Date;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

const schema = new Schema<GradeOutboxDoc>(
  {
    stream: { type: String, required: true },
    issuer: { type: String, required: true },
    clientId: { type: String, required: true },
    lineItemUrl: { type: String, required: true },
    userSub: { type: String, required: true },
    instanceId: { type: String, default: null },
    timestamp: { type: Date, required: true },
    score: { type: Schema.Types.Mixed, required: true },
    state: { type: String, enum: ['pending', 'delivered', 'rejected'], default: 'pending' },
    attempts: { type: Number, default: 0 },
    nextAttemptAt: { type: Date, default: () => new Date() },
    leaseUntil: { type: Date, default: () => new Date(0) },
    lastError: { type: String, default: null },
    createdAt: { type: Date, default: () => new Date() },
    deliveredAt: { type: Date, default: null },
  },
  { versionKey: false, minimize: false },
);
schema.index({ stream: 1, timestamp: 1 }, { unique: true });
schema.index({ state: 1, nextAttemptAt: 1 });

export const GradeOutbox = mongoose.model<GradeOutboxDoc>('GradeOutbox', schema);

/** Delivered or rejected entries are kept for a month (history for admins), then swept. */
export const gradeOutboxExpiryRules: ExpiryRule[] = [
  { collection: GradeOutbox.collection.collectionName, field: 'deliveredAt', kind: 'maxAge', maxAgeMs: 30 * 24 * 3600_000 },
];

export function streamKey(lineItemUrl: string, userSub: string): string {
  return createHash('sha256').update(`${lineItemUrl}\n${userSub}`).digest('base64url');
}

export type OutboxInput = Pick<GradeOutboxDoc, 'issuer' | 'clientId' | 'lineItemUrl' | 'userSub' | 'instanceId' | 'score'>;

/**
 * Append a score: its timestamp is now, or 1 ms after the stream's latest if that is not earlier
 * (clock steps, bursts within a millisecond). Concurrent appends to one stream are serialized by
 * the unique index: the loser recomputes and retries.
 */
export function appendToOutbox(input: OutboxInput, now = () => Date.now()): Promise<GradeOutboxDoc> {
  const stream = streamKey(input.lineItemUrl, input.userSub);
  // appends of one stream in this process take turns: each reads the latest timestamp after the
  // previous one is written, so a score can never be stamped earlier than one already sent
  // (the platform would refuse it with 409). The unique index still guards other replicas.
  return appends.run(stream, () => appendOnce(input, stream, now));
}

const appends = new KeyedMutex();

async function appendOnce(input: OutboxInput, stream: string, now: () => number): Promise<GradeOutboxDoc> {
  for (let attempt = 0; ; attempt++) {
    const last = await GradeOutbox.findOne({ stream }, { timestamp: 1 }).sort({ timestamp: -1 }).lean();
    // after a collision, spread contenders over a few ms so a burst does not collide again and again
    // (concurrent publishes have no order of their own; sequential ones still get increasing times)
    const spread = attempt === 0 ? 0 : randomInt(0, 2 ** Math.min(attempt, 8));
    const ts = Math.max(now(), (last?.timestamp.getTime() ?? 0) + 1) + spread;
    try {
      const doc = await GradeOutbox.create({ ...input, stream, timestamp: new Date(ts), nextAttemptAt: new Date() });
      return doc.toObject();
    } catch (err) {
      if (!isDuplicateKey(err) || attempt >= 50) throw err;
    }
  }
}
