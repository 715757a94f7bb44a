/**
 * Open websockets per user across every replica: one row per socket, counted on open. A replica
 * renews its rows now and then; rows of a replica that died expire and the sweeper removes them.
 * Taking a seat inserts first and counts after, so two opens racing for the last seat can both be
 * refused (never both let through); the user simply tries again.
 */
import { createHash } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';
import { retryUpsert } from './database.js';

export interface SocketSeatDoc {
  _id: string;
  user: string;
  /** The socket holding the row now (a reopened screen takes its row over; only the holder renews or frees it). */
  owner?: string;
  expiresAt: Date;
}

const schema = new Schema<SocketSeatDoc>(
  {
    _id: { type: String, required: true },
    user: { type: String, required: true },
    owner: { type: String },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
schema.index({ user: 1 });

export const SocketSeat = mongoose.model<SocketSeatDoc>('SocketSeat', schema, 'socket_seats');
export const socketSeatExpiryRules: ExpiryRule[] = [{ collection: 'socket_seats', field: 'expiresAt', kind: 'expiresAt' }];

/** A row lives this long unless its replica renews it (renewed every third of it); WS_SEAT_TTL_MS sets it. */
export const SEAT_TTL_MS = 90_000;

/**
 * The row of one screen: a user's socket to one channel of one machine. The same screen opened
 * again (another tab, or the page reconnecting after its replica died) takes the same row over
 * instead of adding one, so a user at the cap whose replica died gets the screens back at once.
 */
export function socketSeatId(user: string, instance: string, machine: string, channel: string): string {
  return createHash('sha256').update(JSON.stringify([user, instance, machine, channel])).digest('base64url');
}

/** True when `user` now holds seat `id` for `owner` (at most `max` live seats per user). */
export async function takeSocketSeat(id: string, user: string, max: number, now = new Date(), ttlMs = SEAT_TTL_MS, owner = id): Promise<boolean> {
  const set = { user, owner, expiresAt: new Date(now.getTime() + ttlMs) };
  // two upserts of one new row may race: the loser's retry updates the winner's row
  await retryUpsert(() => SocketSeat.updateOne({ _id: id }, { $set: set }, { upsert: true }));
  const held = await SocketSeat.countDocuments({ user, expiresAt: { $gt: now } });
  if (held <= max) return true;
  await SocketSeat.deleteOne({ _id: id, owner });
  return false;
}

/** Frees the seat unless another socket of the same screen took it over meanwhile. */
export async function releaseSocketSeat(id: string, owner = id): Promise<void> {
  await SocketSeat.deleteOne({ _id: id, owner });
}

/** Keep this replica's seats alive (those its sockets still hold). */
export async function renewSocketSeats(ids: string[], now = new Date(), ttlMs = SEAT_TTL_MS, owners: string[] = ids): Promise<void> {
  if (ids.length) await SocketSeat.updateMany({ _id: { $in: ids }, owner: { $in: owners } }, { $set: { expiresAt: new Date(now.getTime() + ttlMs) } });
}
