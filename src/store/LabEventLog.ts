/**
 * Lab events shared by replicas: every event a replica publishes is also a row here, and replicas
 * with subscribers for an instance read the rows other replicas wrote (FerretDB 1.x has no change
 * streams, so they poll). Rows carry a random id, so a reader that sees a row twice (its read
 * windows overlap) delivers it once. Rows expire after a few minutes (the sweeper removes them).
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface LabEventRowDoc {
  _id: string;
  instanceId: string;
  /** The replica that published it (its readers skip their own). */
  origin: string;
  at: Date;
  /** Order among one writer's rows stamped in the same millisecond (publish order). */
  seq: number;
  /** The event as published (a LabEvent of src/labs/contracts.ts). */
  event: Record<string, unknown>;
  expiresAt: Date;
}

const schema = new Schema<LabEventRowDoc>(
  {
    _id: { type: String, required: true },
    instanceId: { type: String, required: true },
    origin: { type: String, required: true },
    at: { type: Date, required: true },
    seq: { type: Number, required: true },
    event: { type: Schema.Types.Mixed, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false, minimize: false },
);
schema.index({ at: 1, instanceId: 1 });

export const LabEventRow = mongoose.model<LabEventRowDoc>('LabEventRow', schema, 'lab_events');
export const labEventExpiryRules: ExpiryRule[] = [{ collection: 'lab_events', field: 'expiresAt', kind: 'expiresAt' }];

/** How long a row stays readable (far longer than any reader's poll interval). */
export const LAB_EVENT_TTL_MS = 5 * 60_000;

/** Rows of one process in publish order: inserts run concurrently and may land in any order. */
let nextSeq = 0;

export async function appendLabEvent(origin: string, event: { instanceId: string }, now = new Date()): Promise<string> {
  const _id = `e${randomBytes(12).toString('base64url')}`;
  const seq = nextSeq++;
  await LabEventRow.collection.insertOne({ _id, instanceId: event.instanceId, origin, at: now, seq, event, expiresAt: new Date(now.getTime() + LAB_EVENT_TTL_MS) } as never);
  return _id;
}

/** Rows of these instances written by other replicas at or after `since`, oldest first (one writer's rows of the same millisecond in publish order). */
export async function labEventsSince(instanceIds: string[], origin: string, since: Date, limit = 1000): Promise<LabEventRowDoc[]> {
  if (!instanceIds.length) return [];
  return LabEventRow.find({ at: { $gte: since }, instanceId: { $in: instanceIds }, origin: { $ne: origin } }).sort({ at: 1, seq: 1 }).limit(limit).lean<LabEventRowDoc[]>();
}
