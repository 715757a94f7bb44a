/**
 * An activity: one resource link of one course on one platform deployment, with the lab it runs
 * and its settings. Identified by (issuer, clientId, deploymentId, contextId, resourceLinkId),
 * unique and upserted on exactly those keys. The AGS line item URL is kept exactly as sent
 * (Moodle's carries a `?type_id=` query).
 */
import { createHash, randomBytes } from 'node:crypto';
import mongoose, { Schema } from 'mongoose';
import { retryUpsert } from './database.js';

export const GRADING_MODES = ['steps', 'checks'] as const;
export type GradingMode = (typeof GRADING_MODES)[number];

export interface ActivitySettings {
  timeLimitMinutes: number | null;
  maxScore: number | null;
  gradingMode: GradingMode | null;
  /** Days a stopped lab keeps its disks (deep-linking option); null/absent = the lab's own. */
  keepDays?: number | null;
}

export interface ActivityDoc {
  _id: string;
  issuer: string;
  clientId: string;
  deploymentId: string;
  /** The platform's context (course) id. */
  contextId: string;
  /** Our course key (hash of platform, deployment and context id): what sessions and instances carry. */
  contextKey: string;
  contextTitle: string;
  resourceLinkId: string;
  title: string;
  /** From the custom claim `lab_id` (set by deep linking); null when the activity has none. */
  labId: string | null;
  settings: ActivitySettings;
  lineItemUrl: string | null;
  lineItemsUrl: string | null;
  agsScopes: string[];
  membershipsUrl: string | null;
  createdAt: Date;
  updatedAt: Date;
}

const schema = new Schema<ActivityDoc>(
  {
    _id: { type: String, required: true },
    issuer: { type: String, required: true },
    clientId: { type: String, required: true },
    deploymentId: { type: String, required: true },
    contextId: { type: String, required: true },
    contextKey: { type: String, required: true },
    contextTitle: { type: String, default: '' },
    resourceLinkId: { type: String, required: true },
    title: { type: String, default: '' },
    labId: { type: String, default: null },
    settings: { type: Schema.Types.Mixed, default: () => ({ timeLimitMinutes: null, maxScore: null, gradingMode: null }) },
    lineItemUrl: { type: String, default: null },
    lineItemsUrl: { type: String, default: null },
    agsScopes: { type: [String], default: [] },
    membershipsUrl: { type: String, default: null },
  },
  { timestamps: true, versionKey: false, minimize: false },
);
schema.index({ issuer: 1, clientId: 1, deploymentId: 1, contextId: 1, resourceLinkId: 1 }, { unique: true });
schema.index({ contextKey: 1 });

export const Activity = mongoose.model<ActivityDoc>('LtiActivity', schema, 'activities');

/** Our course key: stable, opaque, URL-safe. */
export function contextKeyFor(issuer: string, clientId: string, deploymentId: string, contextId: string): string {
  return `c${createHash('sha256').update(JSON.stringify([issuer, clientId, deploymentId, contextId])).digest('base64url').slice(0, 22)}`;
}

export type ActivityKey = Pick<ActivityDoc, 'issuer' | 'clientId' | 'deploymentId' | 'contextId' | 'resourceLinkId'>;
export type ActivityFields = Pick<ActivityDoc, 'contextTitle' | 'title' | 'labId' | 'settings' | 'lineItemUrl' | 'lineItemsUrl' | 'agsScopes' | 'membershipsUrl'>;

/** The activity for these keys, created if missing (exactly one under concurrency), fields refreshed from the launch. */
export async function upsertActivity(key: ActivityKey, fields: ActivityFields): Promise<ActivityDoc> {
  const doc = await retryUpsert(() =>
    Activity.findOneAndUpdate(
      { issuer: key.issuer, clientId: key.clientId, deploymentId: key.deploymentId, contextId: key.contextId, resourceLinkId: key.resourceLinkId },
      {
        $set: fields,
        $setOnInsert: { _id: `a${randomBytes(12).toString('base64url')}`, contextKey: contextKeyFor(key.issuer, key.clientId, key.deploymentId, key.contextId) },
      },
      { upsert: true, new: true, lean: true },
    ),
  );
  if (!doc) throw new Error('activity upsert returned no document');
  return doc as ActivityDoc;
}
