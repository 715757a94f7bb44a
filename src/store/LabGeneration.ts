/**
 * One document per (instance, generation), inserted by whoever starts that generation: the unique
 * index makes exactly one caller win even across tool replicas and on FerretDB (which has no
 * transactions and no atomic compare-and-set across concurrent updates).
 */
import mongoose, { Schema } from 'mongoose';
import { isDuplicateKey } from './database.js';

interface LabGenerationDoc {
  instanceId: string;
  generation: number;
  createdAt: Date;
}

const schema = new Schema<LabGenerationDoc>(
  { instanceId: { type: String, required: true }, generation: { type: Number, required: true }, createdAt: { type: Date, default: () => new Date() } },
  { versionKey: false },
);
schema.index({ instanceId: 1, generation: 1 }, { unique: true });

export const LabGeneration = mongoose.model<LabGenerationDoc>('LabGeneration', schema);

/** True for exactly one caller per (instance, generation). */
export async function claimGeneration(instanceId: string, generation: number): Promise<boolean> {
  try {
    await LabGeneration.create({ instanceId, generation });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}
