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
  /** Who claimed it, when the claimer must recognise its own claim after a crash (a warm hand-out). */
  owner?: string;
  createdAt: Date;
}

const schema = new Schema<LabGenerationDoc>(
  { instanceId: { type: String, required: true }, generation: { type: Number, required: true }, owner: { type: String }, createdAt: { type: Date, default: () => new Date() } },
  { versionKey: false },
);
schema.index({ instanceId: 1, generation: 1 }, { unique: true });

export const LabGeneration = mongoose.model<LabGenerationDoc>('LabGeneration', schema);

/**
 * True for exactly one caller per (instance, generation). With `owner`, a caller that claimed it
 * before (and crashed before finishing) is told true again; nobody else is.
 */
export async function claimGeneration(instanceId: string, generation: number, owner?: string): Promise<boolean> {
  try {
    await LabGeneration.create({ instanceId, generation, ...(owner ? { owner } : {}) });
    return true;
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return owner ? (await LabGeneration.exists({ instanceId, generation, owner })) !== null : false;
  }
}

/** Gives back a generation `owner` claimed but did not use, so the next start can claim it. */
export async function releaseGeneration(instanceId: string, generation: number, owner: string): Promise<void> {
  await LabGeneration.deleteOne({ instanceId, generation, owner });
}
