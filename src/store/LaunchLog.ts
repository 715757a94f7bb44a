/**
 * One row per LTI resource launch (platform, course, time): what the usage view counts. A row is a
 * plain insert (atomic on FerretDB 1.x, where a concurrent `$inc` may lose counts); rows older
 * than LAUNCH_LOG_DAYS are swept.
 */
import { randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';

export const LAUNCH_LOG_DAYS = 90;

export interface LaunchLogDoc {
  _id: string;
  /** Our platform registration id. */
  platformId: string;
  /** Our course key (Activity.contextKey). */
  contextKey: string;
  at: Date;
}

const schema = new Schema<LaunchLogDoc>(
  {
    _id: { type: String, required: true },
    platformId: { type: String, required: true },
    contextKey: { type: String, required: true },
    at: { type: Date, required: true },
  },
  { versionKey: false },
);
schema.index({ platformId: 1, contextKey: 1 });

export const LaunchLog = mongoose.model<LaunchLogDoc>('LaunchLog', schema, 'launch_log');
export const launchLogExpiryRules: ExpiryRule[] = [{ collection: 'launch_log', field: 'at', kind: 'maxAge', maxAgeMs: LAUNCH_LOG_DAYS * 86_400_000 }];

/** One row, through the driver (one per launch; the fields are all built here). */
export async function recordLaunch(platformId: string, contextKey: string, at = new Date()): Promise<void> {
  const row: LaunchLogDoc = { _id: `l${randomBytes(9).toString('base64url')}`, platformId, contextKey, at };
  await LaunchLog.collection.insertOne(row as never);
}
