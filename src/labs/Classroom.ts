/**
 * The live classroom between a teacher and the students of a course: a student raises a hand with
 * a short message (one per lab; raising again replaces it) and lowers it, or the teacher does; a
 * teacher sends a message to one student's lab or to every lab of the course. Each is stored
 * (src/store/Classroom.ts) and pushed as a lab event, so an open lab page (and a teacher watching
 * it) sees it at once and a page opened later finds it in the instance view.
 */
import { randomBytes } from 'node:crypto';
import { BadRequest, Conflict } from '../errors.js';
import { ClassMessage, Hand, Takeover, TakeoverLog } from '../store/Classroom.js';
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

export interface TakeoverView {
  state: 'requested' | 'active';
  /** The teacher's user id and name. */
  by: string;
  name: string;
  requestedAt: string;
  since: string | null;
}

export interface TakeoverRecord {
  name: string;
  from: string;
  to: string | null;
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
      : await LabInstance.find({ contextId, warmSession: null, state: { $in: ['requested', ...LIVE_STATES] } }, { _id: 1 }).lean();
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

  /**
   * A teacher asks to take control of a lab (the caller has checked that they teach its course). The
   * student sees the request and accepts or declines; asking again while asked is the same request.
   */
  async requestTakeover(inst: Pick<LabInstanceDoc, '_id'>, teacher: { userId: string; name: string }): Promise<TakeoverView> {
    const cur = await Takeover.findById(inst._id).lean();
    if (cur?.state === 'active') throw new Conflict(`take-over of ${inst._id} is active`, { publicMessage: `${cur.name} has control of this lab already.` });
    const at = this.now();
    await Takeover.updateOne({ _id: inst._id }, { $set: { by: teacher.userId, name: teacher.name, state: 'requested', requestedAt: at, since: null, logId: null } }, { upsert: true });
    this.d.runtime.emit({ type: 'takeover', instanceId: inst._id, state: 'requested', by: teacher.userId, name: teacher.name, at: at.toISOString() });
    return { state: 'requested', by: teacher.userId, name: teacher.name, requestedAt: at.toISOString(), since: null };
  }

  /** The student's answer to a request: accepted, the teacher gets control (and it is logged); declined, the request is gone. */
  async answerTakeover(inst: Pick<LabInstanceDoc, '_id'>, accept: boolean): Promise<TakeoverView | null> {
    const cur = await Takeover.findById(inst._id).lean();
    if (!cur || cur.state !== 'requested') throw new Conflict(`no take-over request for ${inst._id}`, { publicMessage: 'Nobody is asking to take control of this lab.' });
    const at = this.now();
    if (!accept) {
      await Takeover.deleteOne({ _id: inst._id });
      this.d.runtime.emit({ type: 'takeover', instanceId: inst._id, state: 'declined', by: cur.by, name: cur.name, at: at.toISOString() });
      return null;
    }
    const logId = `t${randomBytes(9).toString('base64url')}`;
    await TakeoverLog.create({ _id: logId, instanceId: inst._id, by: cur.by, name: cur.name, from: at, to: null });
    await Takeover.updateOne({ _id: inst._id }, { $set: { state: 'active', since: at, logId } });
    this.d.runtime.emit({ type: 'takeover', instanceId: inst._id, state: 'active', by: cur.by, name: cur.name, at: at.toISOString() });
    return { state: 'active', by: cur.by, name: cur.name, requestedAt: cur.requestedAt.toISOString(), since: at.toISOString() };
  }

  /** End a take-over (the student, or the teacher giving control back) or withdraw a request; nothing to end is fine. */
  async endTakeover(inst: Pick<LabInstanceDoc, '_id'>): Promise<void> {
    const cur = await Takeover.findById(inst._id).lean();
    if (!cur) return;
    const at = this.now();
    if (cur.logId) await TakeoverLog.updateOne({ _id: cur.logId }, { $set: { to: at } });
    await Takeover.deleteOne({ _id: inst._id });
    this.d.runtime.emit({ type: 'takeover', instanceId: inst._id, state: 'ended', by: cur.by, name: cur.name, at: at.toISOString() });
  }

  async takeover(instanceId: string): Promise<TakeoverView | null> {
    const t = await Takeover.findById(instanceId).lean();
    return t ? { state: t.state, by: t.by, name: t.name, requestedAt: t.requestedAt.toISOString(), since: t.since ? t.since.toISOString() : null } : null;
  }

  /** Whether `userId` (not the owner) has control of the lab now through an accepted take-over. */
  async controls(instanceId: string, userId: string): Promise<boolean> {
    const t = await Takeover.findById(instanceId).lean();
    return t?.state === 'active' && t.by === userId;
  }

  /** Every take-over of the lab, oldest first: who, from, until (null while it lasts). */
  async takeoverLog(instanceId: string): Promise<TakeoverRecord[]> {
    const rows = await TakeoverLog.find({ instanceId }).lean();
    return rows.sort((a, b) => a.from.getTime() - b.from.getTime()).map((r) => ({ name: r.name, from: r.from.toISOString(), to: r.to ? r.to.toISOString() : null }));
  }

}
