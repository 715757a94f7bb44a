/**
 * The live classroom between a teacher and the students of a course: a student raises a hand with
 * a short message (one per lab; raising again replaces it) and lowers it, or the teacher does; a
 * teacher sends a message to one student's lab or to every lab of the course. Each is stored
 * (src/store/Classroom.ts) and pushed as a lab event, so an open lab page (and a teacher watching
 * it) sees it at once and a page opened later finds it in the instance view.
 */
import { randomBytes } from 'node:crypto';
import { BadRequest } from '../errors.js';
import { ClassMessage, Hand } from '../store/Classroom.js';
import { LabInstance, type LabInstanceDoc } from '../store/LabInstance.js';
import type { LabRuntime } from './contracts.js';
import { LIVE_STATES } from './LabService.js';

/** The longest hand message and teacher message, in characters. */
export const MAX_HAND_CHARS = 280;
export const MAX_MESSAGE_CHARS = 1000;
/** Messages a lab page is given when it opens (the newest). */
const RECENT_MESSAGES = 10;
const MESSAGE_TTL_MS = 7 * 24 * 3600_000;

export interface HandView {
  message: string;
  raisedAt: string;
}

export interface MessageView {
  id: string;
  from: string;
  text: string;
  at: string;
  /** Sent to the whole course (else to this lab's student only). */
  toAll: boolean;
}

export interface ClassroomDeps {
  runtime: Pick<LabRuntime, 'emit'>;
  now?: () => Date;
}

function text(value: unknown, what: string, max: number, required: boolean): string {
  if (value === undefined || value === null) value = '';
  if (typeof value !== 'string') throw new BadRequest(`${what} must be text`);
  const t = value.trim();
  if (required && !t) throw new BadRequest(`${what} is empty`, { publicMessage: `The ${what} is empty.` });
  if (t.length > max) throw new BadRequest(`${what} longer than ${max}`, { publicMessage: `The ${what} is longer than ${max} characters.` });
  return t;
}

export class Classroom {
  constructor(private readonly d: ClassroomDeps) {}

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  async raiseHand(inst: Pick<LabInstanceDoc, '_id' | 'contextId'>, message: unknown): Promise<HandView> {
    const m = text(message, 'message', MAX_HAND_CHARS, false);
    const at = this.now();
    await Hand.updateOne({ _id: inst._id }, { $set: { contextId: inst.contextId, message: m, raisedAt: at } }, { upsert: true });
    this.d.runtime.emit({ type: 'hand', instanceId: inst._id, raised: true, message: m, at: at.toISOString() });
    return { message: m, raisedAt: at.toISOString() };
  }

  async lowerHand(inst: Pick<LabInstanceDoc, '_id'>): Promise<void> {
    const r = await Hand.deleteOne({ _id: inst._id });
    if (r.deletedCount) this.d.runtime.emit({ type: 'hand', instanceId: inst._id, raised: false, at: this.now().toISOString() });
  }

  async hand(instanceId: string): Promise<HandView | null> {
    const h = await Hand.findById(instanceId).lean();
    return h ? { message: h.message, raisedAt: h.raisedAt.toISOString() } : null;
  }

  /** The raised hands of a course, by instance id. */
  async hands(contextId: string): Promise<Map<string, HandView>> {
    const rows = await Hand.find({ contextId }).lean();
    return new Map(rows.map((h) => [h._id, { message: h.message, raisedAt: h.raisedAt.toISOString() }]));
  }

  /**
   * A teacher's message to one lab of the course (`instanceId`), or to every lab of it; returns
   * how many labs it was pushed to. The caller has checked that the sender teaches `contextId`.
   */
  async send(contextId: string, from: string, body: unknown, instanceId?: string): Promise<{ id: string; to: number }> {
    const t = text(body, 'message', MAX_MESSAGE_CHARS, true);
    const targets = instanceId
      ? await LabInstance.find({ _id: instanceId, contextId }, { _id: 1 }).lean()
      : await LabInstance.find({ contextId, state: { $in: ['requested', ...LIVE_STATES] } }, { _id: 1 }).lean();
    if (instanceId && !targets.length) throw new BadRequest(`instance ${instanceId} is not in course ${contextId}`, { publicMessage: 'That lab is not in this course.' });
    const at = this.now();
    const id = `m${randomBytes(9).toString('base64url')}`;
    await ClassMessage.create({ _id: id, contextId, instanceId: instanceId ?? null, from, text: t, at, expiresAt: new Date(at.getTime() + MESSAGE_TTL_MS) });
    for (const x of targets) this.d.runtime.emit({ type: 'message', instanceId: x._id, id, from, text: t, at: at.toISOString(), toAll: !instanceId });
    return { id, to: targets.length };
  }

  /** The newest messages for a lab: its own and the course's, since the lab was created, oldest first. */
  async messages(inst: Pick<LabInstanceDoc, '_id' | 'contextId' | 'createdAt'>): Promise<MessageView[]> {
    const rows = await ClassMessage.find({ contextId: inst.contextId, at: { $gte: inst.createdAt } }).sort({ at: -1 }).limit(200).lean();
    return rows
      .filter((r) => r.instanceId === null || r.instanceId === inst._id)
      .slice(0, RECENT_MESSAGES)
      .reverse()
      .map((r) => ({ id: r._id, from: r.from, text: r.text, at: r.at.toISOString(), toAll: r.instanceId === null }));
  }
}
