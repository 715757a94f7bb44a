/**
 * The rate limits' slots (see rateLimits.ts), shared by every replica, in one collection:
 * `<key>@<window>#<n>` is claimed slot n (an insert: a unique id is atomic on FerretDB 1.x), and
 * `<key>@<window>` holds the highest slot claimed so far (a hint that saves probing; it may lag,
 * never run ahead). Every access is by `_id`. Rows expire after the window that reads them; the
 * sweeper removes them (no TTL index on FerretDB).
 */
import mongoose, { Schema } from 'mongoose';
import type { SlotStore } from '../rateLimits.js';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface RateSlotDoc {
  _id: string;
  /** On a hint row: the highest slot claimed. */
  n?: number;
  expiresAt: Date;
}

const schema = new Schema<RateSlotDoc>(
  {
    _id: { type: String, required: true },
    n: { type: Number },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);

export const RateSlot = mongoose.model<RateSlotDoc>('RateSlot', schema, 'rate_slots');
export const rateSlotExpiryRules: ExpiryRule[] = [{ collection: 'rate_slots', field: 'expiresAt', kind: 'expiresAt' }];

function duplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 11000;
}

/** Slots in the database. */
export class DbSlots implements SlotStore {
  async highest(key: string, windowStart: number): Promise<number> {
    return (await RateSlot.findById(`${key}@${windowStart}`).lean())?.n ?? 0;
  }

  async claim(key: string, windowStart: number, n: number, expiresAt: Date): Promise<boolean> {
    try {
      await RateSlot.create({ _id: `${key}@${windowStart}#${n}`, expiresAt });
      return true;
    } catch (err) {
      if (duplicateKey(err)) return false;
      throw err;
    }
  }

  async noteHighest(key: string, windowStart: number, n: number, expiresAt: Date): Promise<void> {
    // raise only: a row already at n or above does not match, and the upsert's insert then meets its id
    await RateSlot.updateOne({ _id: `${key}@${windowStart}`, $or: [{ n: { $lt: n } }, { n: { $exists: false } }] }, { $set: { n, expiresAt } }, { upsert: true }).catch((err: unknown) => {
      if (!duplicateKey(err)) throw err;
    });
  }
}
