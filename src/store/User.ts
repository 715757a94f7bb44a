/**
 * People who launched the tool: one per (issuer, sub), with our own user id (never the platform's
 * sub outside this record). Name, email and the role of the latest launch are kept up to date.
 */
import { createHmac, randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import { isDuplicateKey, retryUpsert } from './database.js';
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

/**
 * Our id for (issuer, sub): a keyed hash (HMAC-SHA256 under a key derived from the tool's secret),
 * so a launch finds its user by `_id` — the one filter FerretDB answers from an index; a filter on
 * issuer and sub reads every user there — and nobody can tell the platform's sub from our id.
 */
export class UserIds {
  private readonly key: Buffer;

  constructor(secretKey: string) {
    this.key = createHmac('sha256', secretKey).update('lab-orchestrator user id').digest();
  }

  of(issuer: string, sub: string): string {
    return `u${createHmac('sha256', this.key).update(`${issuer}\n${sub}`).digest('base64url').slice(0, 16)}`;
  }
}

type UserFields = { issuer: string; sub: string; name: string; email: string | null; role: Role };

/**
 * The user for (issuer, sub), created if missing (exactly one under concurrency: the unique
 * (issuer, sub) index), profile updated. Found by the id `ids` derive; a user created before ids
 * were derived (or under another secret) keeps its id: the insert of the derived one is refused by
 * that index, and the user is then found by issuer and sub.
 */
export async function upsertUser(u: UserFields, ids: UserIds): Promise<UserDoc> {
  const profile = { $set: { name: u.name, email: u.email, role: u.role } };
  let doc: unknown;
  try {
    doc = await User.findOneAndUpdate({ _id: ids.of(u.issuer, u.sub) }, { ...profile, $setOnInsert: { issuer: u.issuer, sub: u.sub } }, { upsert: true, new: true, lean: true });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    doc = await retryUpsert(() => User.findOneAndUpdate({ issuer: u.issuer, sub: u.sub }, { ...profile, $setOnInsert: { _id: newUserId() } }, { upsert: true, new: true, lean: true }));
  }
  if (!doc) throw new Error('user upsert returned no document');
  return doc as UserDoc;
}

/** Display names by user id (empty names left out), for teacher overviews. */
export async function userNames(ids: string[]): Promise<Record<string, string>> {
  const docs = await User.find({ _id: { $in: ids } }, { name: 1 }).lean();
  return Object.fromEntries(docs.filter((d) => d.name).map((d) => [d._id, d.name]));
}
