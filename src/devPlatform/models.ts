/**
 * Storage for the built-in development LTI platform (src/lti/devPlatform). Only that module uses
 * these models. Expiring records (launch states, access tokens, used jtis, registration tokens)
 * carry `expiresAt` and are purged by the ExpirySweeper (FerretDB has no TTL indexes); code never
 * trusts a record past its `expiresAt` even if the sweeper has not run yet.
 */
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from '../store/ExpirySweeper.js';

/** The platform's RS256 key pair, generated once (`_id: 'platform'`). */
export interface DevPlatformKeyDoc {
  _id: string;
  kid: string;
  privateJwk: Record<string, unknown>;
  publicJwk: Record<string, unknown>;
  createdAt: Date;
}
const keySchema = new Schema<DevPlatformKeyDoc>(
  {
    _id: String,
    kid: { type: String, required: true },
    privateJwk: { type: Schema.Types.Mixed, required: true },
    publicJwk: { type: Schema.Types.Mixed, required: true },
    createdAt: { type: Date, default: () => new Date() },
  },
  { versionKey: false, minimize: false },
);
export const DevPlatformKey = mongoose.model<DevPlatformKeyDoc>('DevPlatformKey', keySchema);

/** A tool registered with the platform (like a Moodle "tool type"). `_id` is the client id. */
export interface DevPlatformToolDoc {
  _id: string;
  /** Numeric, like Moodle's tool type id; the deployment id is its decimal string. */
  typeId: number;
  deploymentId: string;
  name: string;
  loginUrl: string;
  /** The resource-link launch URL (target_link_uri of plain launches). */
  targetLinkUri: string;
  redirectUris: string[];
  jwksUrl: string;
  deepLinkUrl: string | null;
  scopes: string[];
  custom: Record<string, string>;
  registeredBy: 'manual' | 'dynamic';
  /** For dynamic registration: the tool's registration URL it was registered through. */
  registrationUrl: string | null;
  createdAt: Date;
}
const toolSchema = new Schema<DevPlatformToolDoc>(
  {
    _id: String,
    typeId: { type: Number, required: true },
    deploymentId: { type: String, required: true },
    name: { type: String, required: true },
    loginUrl: { type: String, required: true },
    targetLinkUri: { type: String, required: true },
    redirectUris: { type: [String], default: [] },
    jwksUrl: { type: String, required: true },
    deepLinkUrl: { type: String, default: null },
    scopes: { type: [String], default: [] },
    custom: { type: Schema.Types.Mixed, default: {} },
    registeredBy: { type: String, default: 'manual' },
    registrationUrl: { type: String, default: null },
    createdAt: { type: Date, default: () => new Date() },
  },
  { versionKey: false, minimize: false },
);
toolSchema.index({ typeId: 1 }, { unique: true });
export const DevPlatformTool = mongoose.model<DevPlatformToolDoc>('DevPlatformTool', toolSchema);

/** An activity in the demo course: a resource link to a tool. `_id` is the resource link id. */
export interface DevPlatformActivityDoc {
  _id: string;
  clientId: string;
  contextId: string;
  title: string;
  /** Overrides the tool's launch URL (a deep-linked item's url). */
  url: string | null;
  custom: Record<string, string>;
  lineItemId: string | null;
  createdAt: Date;
}
const activitySchema = new Schema<DevPlatformActivityDoc>(
  {
    _id: String,
    clientId: { type: String, required: true },
    contextId: { type: String, required: true },
    title: { type: String, required: true },
    url: { type: String, default: null },
    custom: { type: Schema.Types.Mixed, default: {} },
    lineItemId: { type: String, default: null },
    createdAt: { type: Date, default: () => new Date() },
  },
  { versionKey: false, minimize: false },
);
activitySchema.index({ contextId: 1, createdAt: 1 });
export const DevPlatformActivity = mongoose.model<DevPlatformActivityDoc>('DevPlatformActivity', activitySchema);

/** A started launch (login initiation sent, authorization not yet answered). Single use. */
export interface DevPlatformLaunchDoc {
  _id: string;
  clientId: string;
  userId: string;
  contextId: string;
  activityId: string | null;
  messageType: 'LtiResourceLinkRequest' | 'LtiDeepLinkingRequest';
  /** The browser session (cookie) that started it; /auth requires the same one, like Moodle. */
  sessionId: string;
  targetLinkUri: string;
  /** The user's language sent in the launch (launch_presentation.locale), as Moodle sends the user's language. */
  locale: string;
  usedAt: Date | null;
  expiresAt: Date;
}
const launchSchema = new Schema<DevPlatformLaunchDoc>(
  {
    _id: String,
    clientId: { type: String, required: true },
    userId: { type: String, required: true },
    contextId: { type: String, required: true },
    activityId: { type: String, default: null },
    messageType: { type: String, required: true },
    sessionId: { type: String, required: true },
    targetLinkUri: { type: String, required: true },
    locale: { type: String, default: 'en' },
    usedAt: { type: Date, default: null },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
launchSchema.index({ expiresAt: 1 });
export const DevPlatformLaunch = mongoose.model<DevPlatformLaunchDoc>('DevPlatformLaunch', launchSchema);

/** An AGS line item (a gradebook column). */
export interface DevPlatformLineItemDoc {
  _id: string;
  clientId: string;
  contextId: string;
  label: string;
  scoreMaximum: number;
  resourceId: string | null;
  resourceLinkId: string | null;
  tag: string | null;
  startDateTime: string | null;
  endDateTime: string | null;
  createdAt: Date;
}
const lineItemSchema = new Schema<DevPlatformLineItemDoc>(
  {
    _id: String,
    clientId: { type: String, required: true },
    contextId: { type: String, required: true },
    label: { type: String, required: true },
    scoreMaximum: { type: Number, required: true },
    resourceId: { type: String, default: null },
    resourceLinkId: { type: String, default: null },
    tag: { type: String, default: null },
    startDateTime: { type: String, default: null },
    endDateTime: { type: String, default: null },
    createdAt: { type: Date, default: () => new Date() },
  },
  { versionKey: false },
);
lineItemSchema.index({ contextId: 1, clientId: 1 });
export const DevPlatformLineItem = mongoose.model<DevPlatformLineItemDoc>('DevPlatformLineItem', lineItemSchema);

/** Every score received, in arrival order (`seq`); the gradebook shows the latest per user. */
export interface DevPlatformScoreDoc {
  _id: mongoose.Types.ObjectId;
  lineItemId: string;
  userId: string;
  scoreGiven: number | null;
  scoreMaximum: number | null;
  activityProgress: string;
  gradingProgress: string;
  comment: string | null;
  timestamp: Date;
  receivedAt: Date;
  seq: number;
}
const scoreSchema = new Schema<DevPlatformScoreDoc>(
  {
    lineItemId: { type: String, required: true },
    userId: { type: String, required: true },
    scoreGiven: { type: Number, default: null },
    scoreMaximum: { type: Number, default: null },
    activityProgress: { type: String, required: true },
    gradingProgress: { type: String, required: true },
    comment: { type: String, default: null },
    timestamp: { type: Date, required: true },
    receivedAt: { type: Date, default: () => new Date() },
    seq: { type: Number, required: true },
  },
  { versionKey: false },
);
scoreSchema.index({ lineItemId: 1, userId: 1, seq: 1 }, { unique: true });
export const DevPlatformScore = mongoose.model<DevPlatformScoreDoc>('DevPlatformScore', scoreSchema);

/**
 * Short-lived secrets and replay guards, one collection: access tokens (`kind: 'access'`, `_id` =
 * SHA-256 of the token), used JWT ids (`kind: 'jti'`), registration tokens (`kind: 'registration'`).
 */
export interface DevPlatformGrantDoc {
  _id: string;
  kind: 'access' | 'jti' | 'registration';
  clientId: string | null;
  scopes: string[];
  /** Registration tokens: the tool registration URL it was issued for. */
  registrationUrl: string | null;
  usedAt: Date | null;
  expiresAt: Date;
}
const grantSchema = new Schema<DevPlatformGrantDoc>(
  {
    _id: String,
    kind: { type: String, required: true },
    clientId: { type: String, default: null },
    scopes: { type: [String], default: [] },
    registrationUrl: { type: String, default: null },
    usedAt: { type: Date, default: null },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
grantSchema.index({ expiresAt: 1 });
export const DevPlatformGrant = mongoose.model<DevPlatformGrantDoc>('DevPlatformGrant', grantSchema);

/** Content items returned by a tool's deep-linking response, until a teacher saves them. */
export interface DevPlatformContentItemDoc {
  _id: string;
  clientId: string;
  contextId: string;
  item: Record<string, unknown>;
  activityId: string | null;
  receivedAt: Date;
}
const contentItemSchema = new Schema<DevPlatformContentItemDoc>(
  {
    _id: String,
    clientId: { type: String, required: true },
    contextId: { type: String, required: true },
    item: { type: Schema.Types.Mixed, required: true },
    activityId: { type: String, default: null },
    receivedAt: { type: Date, default: () => new Date() },
  },
  { versionKey: false, minimize: false },
);
contentItemSchema.index({ contextId: 1, receivedAt: 1 });
export const DevPlatformContentItem = mongoose.model<DevPlatformContentItemDoc>('DevPlatformContentItem', contentItemSchema);

/** Register in ensureIndexes([...]) at start-up. */
export const devPlatformModels = [
  DevPlatformKey, DevPlatformTool, DevPlatformActivity, DevPlatformLaunch,
  DevPlatformLineItem, DevPlatformScore, DevPlatformGrant, DevPlatformContentItem,
];

/** Rules for the ExpirySweeper. */
export const devPlatformExpiryRules: ExpiryRule[] = [
  { collection: DevPlatformLaunch.collection.collectionName, field: 'expiresAt', kind: 'expiresAt' },
  { collection: DevPlatformGrant.collection.collectionName, field: 'expiresAt', kind: 'expiresAt' },
];
