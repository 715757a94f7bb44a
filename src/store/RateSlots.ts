/**
 * The rate limits' slots (see rateLimits.ts), shared by every replica, in one collection:
 * `<key>@<window>#<n>` is claimed slot n (an insert: a unique id is atomic on FerretDB 1.x), and
 * `<key>@<window>` holds the highest slot claimed so far (a hint that saves probing, raised after
 * the use is answered: it may lag, never run ahead). Every access is by `_id`. Rows expire after
 * the window that reads them; the sweeper removes them (no TTL index on FerretDB).
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
  // the driver's own calls: a launch waits on these, and a model's casting and hooks add to every one
  async highest(key: string, windowStart: number): Promise<number> {
    const row = await RateSlot.collection.findOne<RateSlotDoc>({ _id: `${key}@${windowStart}` } as never, { projection: { n: 1 } });
    return typeof row?.n === 'number' ? row.n : 0;
  }

  async claim(key: string, windowStart: number, n: number, expiresAt: Date): Promise<boolean> {
    try {
      await RateSlot.collection.insertOne({ _id: `${key}@${windowStart}#${n}`, expiresAt } as never);
      return true;
    } catch (err) {
      if (duplicateKey(err)) return false;
      throw err;
    }
  }

  async noteHighest(key: string, windowStart: number, n: number, expiresAt: Date): Promise<void> {
    // raise only ($max); two raises at once on FerretDB may keep the lower one, which only lags
    await RateSlot.collection.updateOne({ _id: `${key}@${windowStart}` } as never, { $max: { n }, $set: { expiresAt } }, { upsert: true }).catch((err: unknown) => {
      if (!duplicateKey(err)) throw err;
    });
  }

  async release(key: string, windowStart: number, n: number): Promise<void> {
    await RateSlot.collection.deleteOne({ _id: `${key}@${windowStart}#${n}` } as never);
  }
}
