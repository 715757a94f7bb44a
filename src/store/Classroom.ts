/**
 * The live classroom's records: a raised hand per lab (its row id is the instance id, so raising
 * twice is one row) and the teacher's messages (to one lab, or to the whole course when `instanceId`
 * is null). Messages expire after a week (the sweeper removes them); a hand lasts until lowered or
 * until its lab is gone. A teacher's take-over of a lab (asked, then active once the student
 * accepts) and the log of every take-over.
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

/** A teacher's take-over of a lab: asked for, then active once the student accepts (one per lab). */
export interface TakeoverDoc {
  /** The instance. */
  _id: string;
  /** The teacher's user id and display name. */
  by: string;
  name: string;
  state: 'requested' | 'active';
  requestedAt: Date;
  since: Date | null;
  /** Its row in the take-over log while active. */
  logId: string | null;
}

/** Every take-over that happened: who, from when, until when (null while it lasts). Kept with the lab. */
export interface TakeoverLogDoc {
  _id: string;
  instanceId: string;
  by: string;
  name: string;
  from: Date;
  to: Date | null;
}

const takeoverSchema = new Schema<TakeoverDoc>(
  {
    _id: { type: String, required: true },
    by: { type: String, required: true },
    name: { type: String, required: true },
    state: { type: String, enum: ['requested', 'active'], required: true },
    requestedAt: { type: Date, required: true },
    since: { type: Date, default: null },
    logId: { type: String, default: null },
  },
  { versionKey: false },
);

const takeoverLogSchema = new Schema<TakeoverLogDoc>(
  {
    _id: { type: String, required: true },
    instanceId: { type: String, required: true },
    by: { type: String, required: true },
    name: { type: String, required: true },
    from: { type: Date, required: true },
    to: { type: Date, default: null },
  },
  { versionKey: false },
);
takeoverLogSchema.index({ instanceId: 1 });

export const Takeover = mongoose.model<TakeoverDoc>('Takeover', takeoverSchema, 'lab_takeovers');
export const TakeoverLog = mongoose.model<TakeoverLogDoc>('TakeoverLog', takeoverLogSchema, 'lab_takeover_log');
