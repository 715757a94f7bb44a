/**
 * People who launched the tool: one per (issuer, sub), with our own user id (never the platform's
 * sub outside this record). Name, email and the role of the latest launch are kept up to date.
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import { retryUpsert } from './database.js';
/** The tool's role for a user in a context, mapped from LTI roles at launch. */
export type Role = 'learner' | 'instructor' | 'administrator';

export interface UserDoc {
  _id: string;
  issuer: string;
  sub: string;
  name: string;
  email: string | null;
  /** Role of the latest launch (roles are per course; the session carries the launch's own). */
  role: Role;
  createdAt: Date;
  updatedAt: Date;
}

const schema = new Schema<UserDoc>(
  {
    _id: { type: String, required: true },
    issuer: { type: String, required: true },
    sub: { type: String, required: true },
    name: { type: String, default: '' },
    email: { type: String, default: null },
    role: { type: String, enum: ['learner', 'instructor', 'administrator'], default: 'learner' },
  },
  { timestamps: true, versionKey: false },
);
schema.index({ issuer: 1, sub: 1 }, { unique: true });

export const User = mongoose.model<UserDoc>('LtiUser', schema, 'users');

export function newUserId(): string {
  return `u${randomBytes(12).toString('base64url')}`;
}

/** The user for (issuer, sub), created if missing (exactly one under concurrency), profile updated. */
export async function upsertUser(u: { issuer: string; sub: string; name: string; email: string | null; role: Role }): Promise<UserDoc> {
  const doc = await retryUpsert(() =>
    User.findOneAndUpdate(
      { issuer: u.issuer, sub: u.sub },
      { $set: { name: u.name, email: u.email, role: u.role }, $setOnInsert: { _id: newUserId() } },
      { upsert: true, new: true, lean: true },
    ),
  );
  if (!doc) throw new Error('user upsert returned no document');
  return doc as UserDoc;
}

/** Display names by user id (empty names left out), for teacher overviews. */
export async function userNames(ids: string[]): Promise<Record<string, string>> {
  const docs = await User.find({ _id: { $in: ids } }, { name: 1 }).lean();
  return Object.fromEntries(docs.filter((d) => d.name).map((d) => [d._id, d.name]));
}
