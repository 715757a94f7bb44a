/**
 * "One check run per lab instance at a time" across replicas: a run holds a row whose `_id` is the
 * instance id, so taking it is a single insert the unique `_id` index makes atomic (FerretDB's
 * filtered updates are not compare-and-set; inserts are). A row left by a crashed process expires:
 * it is removed once past `expiresAt` and the insert is tried again.
 */
import mongoose, { Schema } from 'mongoose';
import { isDuplicateKey } from './database.js';

export interface CheckRunLockDoc {
  /** The instance id. */
  _id: string;
  /** Who holds it (process + run), so only the holder releases it. */
  owner: string;
  expiresAt: Date;
}

const schema = new Schema<CheckRunLockDoc>(
  {
    _id: { type: String, required: true },
    owner: { type: String, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);

export const CheckRunLock = mongoose.model<CheckRunLockDoc>('CheckRunLock', schema);

/** True when this caller now holds the instance's run lock until `expiresAt`. */
export async function takeCheckRunLock(instanceId: string, owner: string, expiresAt: Date, now = new Date()): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await CheckRunLock.create({ _id: instanceId, owner, expiresAt });
      return true;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // held: by a live run (give up) or left behind by a crashed one (clear it and try once more)
      const gone = await CheckRunLock.deleteOne({ _id: instanceId, expiresAt: { $lt: now } });
      if (gone.deletedCount !== 1) return false;
    }
  }
  return false;
}

export async function releaseCheckRunLock(instanceId: string, owner: string): Promise<void> {
  await CheckRunLock.deleteOne({ _id: instanceId, owner });
}
