/**
 * The live classroom's records: a raised hand per lab (its row id is the instance id, so raising
 * twice is one row) and the teacher's messages (to one lab, or to the whole course when `instanceId`
 * is null). Messages expire after a week (the sweeper removes them); a hand lasts until lowered or
 * until its lab is gone.
 */
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface HandDoc {
  /** The instance whose student raised it. */
  _id: string;
  contextId: string;
  message: string;
  raisedAt: Date;
}

export interface ClassMessageDoc {
  _id: string;
  contextId: string;
  /** One lab's student, or null for everyone in the course. */
  instanceId: string | null;
  /** The sender's display name. */
  from: string;
  text: string;
  at: Date;
  expiresAt: Date;
}

const handSchema = new Schema<HandDoc>(
  {
    _id: { type: String, required: true },
    contextId: { type: String, required: true },
    message: { type: String, default: '' },
    raisedAt: { type: Date, required: true },
  },
  { versionKey: false },
);
handSchema.index({ contextId: 1 });

const messageSchema = new Schema<ClassMessageDoc>(
  {
    _id: { type: String, required: true },
    contextId: { type: String, required: true },
    instanceId: { type: String, default: null },
    from: { type: String, required: true },
    text: { type: String, required: true },
    at: { type: Date, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
messageSchema.index({ contextId: 1, at: 1 });

export const Hand = mongoose.model<HandDoc>('Hand', handSchema, 'lab_hands');
export const ClassMessage = mongoose.model<ClassMessageDoc>('ClassMessage', messageSchema, 'lab_messages');
export const classroomExpiryRules: ExpiryRule[] = [{ collection: 'lab_messages', field: 'expiresAt', kind: 'expiresAt' }];
