/**
 * The check-run limit per user across every replica: a sliding window over rows in the database
 * (one per run, expiring with the window). Counted before the run is recorded, so concurrent runs
 * on several replicas may pass the limit by the few that raced; never by a whole replica's worth.
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface CheckRateDoc {
  _id: string;
  user: string;
  at: Date;
  expiresAt: Date;
}

const schema = new Schema<CheckRateDoc>(
  {
    _id: { type: String, required: true },
    user: { type: String, required: true },
    at: { type: Date, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
schema.index({ user: 1, at: 1 });

export const CheckRate = mongoose.model<CheckRateDoc>('CheckRate', schema, 'check_rate');
export const checkRateExpiryRules: ExpiryRule[] = [{ collection: 'check_rate', field: 'expiresAt', kind: 'expiresAt' }];

/**
 * Count one use of `user` in the window ending `now`; returns 0 when it is allowed, else the
 * seconds until the oldest use in the window leaves it.
 */
export async function takeCheckRate(user: string, max: number, windowMs: number, now = new Date()): Promise<number> {
  const since = new Date(now.getTime() - windowMs);
  const recent = await CheckRate.find({ user, at: { $gt: since } }, { at: 1 }).sort({ at: 1 }).limit(max).lean();
  if (recent.length >= max) return Math.max(1, Math.ceil((recent[0]!.at.getTime() + windowMs - now.getTime()) / 1000));
  await CheckRate.create({ _id: `c${randomBytes(9).toString('base64url')}`, user, at: now, expiresAt: new Date(now.getTime() + windowMs) });
  return 0;
}
