/**
 * Consumed websocket tickets: one document per ticket id (the `_id`), so consuming is a single
 * insert that the unique `_id` index makes atomic — of any number of concurrent uses, exactly one
 * insert succeeds. FerretDB has no TTL indexes: the ExpirySweeper purges rows after `expiresAt`
 * (an expired ticket is refused by its signed `exp` anyway, purged or not).
 */
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';
import { isDuplicateKey } from './database.js';

export interface TicketUseDoc {
  /** The ticket's jti. */
  _id: string;
  expiresAt: Date;
}

const schema = new Schema<TicketUseDoc>(
  {
    _id: { type: String, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
schema.index({ expiresAt: 1 });

export const TicketUse = mongoose.model<TicketUseDoc>('TicketUse', schema);

export const ticketUseExpiryRules: ExpiryRule[] = [{ collection: TicketUse.collection.collectionName, field: 'expiresAt', kind: 'expiresAt' }];

/** Marks a ticket id used. True for the first use, false when it was used before. */
export async function consumeTicketId(jti: string, expiresAt: Date): Promise<boolean> {
  try {
    await TicketUse.create({ _id: jti, expiresAt });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}
