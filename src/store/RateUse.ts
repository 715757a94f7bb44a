/**
 * The rate limits' uses, shared by every replica: one row per use, inserted first and counted
 * after (the SocketSeat pattern). FerretDB 1.x has no transactions and its `$inc` loses updates
 * under concurrency, but an insert is atomic: whatever races, the rows that stay in a window are
 * never more than the limit. Rows expire with their window; the sweeper removes them (no TTL).
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { UseLog } from '../rateLimits.js';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface RateUseDoc {
  _id: string;
  /** `<scope>\n<key>`, e.g. `ticket:user\n<platform>\n<user>`. */
  key: string;
  at: Date;
  expiresAt: Date;
}

const schema = new Schema<RateUseDoc>(
  {
    _id: { type: String, required: true },
    key: { type: String, required: true },
    at: { type: Date, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
schema.index({ key: 1, at: 1 });

export const RateUse = mongoose.model<RateUseDoc>('RateUse', schema, 'rate_uses');
export const rateUseExpiryRules: ExpiryRule[] = [{ collection: 'rate_uses', field: 'expiresAt', kind: 'expiresAt' }];

/** Uses in the database. */
export class DbUseLog implements UseLog {
  async take(key: string, now: number, windowMs: number, max: number): Promise<number> {
    const id = `r${randomBytes(9).toString('base64url')}`;
    const since = new Date(now - windowMs);
    await RateUse.create({ _id: id, key, at: new Date(now), expiresAt: new Date(now + windowMs) });
    const held = await RateUse.countDocuments({ key, at: { $gt: since } });
    if (held <= max) return 0;
    await RateUse.deleteOne({ _id: id });
    const oldest = await RateUse.findOne({ key, at: { $gt: since } }, { at: 1 }).sort({ at: 1 }).lean();
    return Math.max(1, (oldest ? oldest.at.getTime() : now) + windowMs - now);
  }
}
