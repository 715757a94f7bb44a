/**
 * Open websockets per user across every replica: one row per socket, counted on open. A replica
 * renews its rows now and then; rows of a replica that died expire and the sweeper removes them.
 * Taking a seat inserts first and counts after, so two opens racing for the last seat can both be
 * refused (never both let through); the user simply tries again.
 */
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface SocketSeatDoc {
  _id: string;
  user: string;
  expiresAt: Date;
}

const schema = new Schema<SocketSeatDoc>(
  {
    _id: { type: String, required: true },
    user: { type: String, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
schema.index({ user: 1 });

export const SocketSeat = mongoose.model<SocketSeatDoc>('SocketSeat', schema, 'socket_seats');
export const socketSeatExpiryRules: ExpiryRule[] = [{ collection: 'socket_seats', field: 'expiresAt', kind: 'expiresAt' }];

/** A row lives this long unless its replica renews it (renewed every third of it). */
export const SEAT_TTL_MS = 90_000;

/** True when `user` now holds seat `id` (at most `max` live seats per user). */
export async function takeSocketSeat(id: string, user: string, max: number, now = new Date()): Promise<boolean> {
  await SocketSeat.create({ _id: id, user, expiresAt: new Date(now.getTime() + SEAT_TTL_MS) });
  const held = await SocketSeat.countDocuments({ user, expiresAt: { $gt: now } });
  if (held <= max) return true;
  await SocketSeat.deleteOne({ _id: id });
  return false;
}

export async function releaseSocketSeat(id: string): Promise<void> {
  await SocketSeat.deleteOne({ _id: id });
}

/** Keep this replica's seats alive. */
export async function renewSocketSeats(ids: string[], now = new Date()): Promise<void> {
  if (ids.length) await SocketSeat.updateMany({ _id: { $in: ids } }, { $set: { expiresAt: new Date(now.getTime() + SEAT_TTL_MS) } });
}
