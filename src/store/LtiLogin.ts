/**
 * OIDC login state, bound to its nonce: written at /lti/login, read when the id_token comes back
 * and removed once that is answered. Used nonces are recorded under a unique _id (the once-only
 * gate) so an id_token can never be accepted twice, even across states. FerretDB has no TTL indexes: both
 * carry `expiresAt` and the ExpirySweeper purges them; code never trusts a record past it.
 */
import mongoose, { Schema } from 'mongoose';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface LoginStateDoc {
  /** The OIDC state. */
  _id: string;
  nonce: string;
  issuer: string;
  /** client_id from the login initiation, when the platform sent one (Moodle does). */
  clientId: string | null;
  /** lti_deployment_id from the login initiation, if sent. */
  deploymentId: string | null;
  /** target_link_uri exactly as received. */
  targetLinkUri: string;
  expiresAt: Date;
}

const loginSchema = new Schema<LoginStateDoc>(
  {
    _id: { type: String, required: true },
    nonce: { type: String, required: true },
    issuer: { type: String, required: true },
    clientId: { type: String, default: null },
    deploymentId: { type: String, default: null },
    targetLinkUri: { type: String, required: true },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);
export const LoginState = mongoose.model<LoginStateDoc>('LtiLoginState', loginSchema, 'lti_login_states');

export interface UsedNonceDoc {
  /** sha256(issuer + nonce). */
  _id: string;
  expiresAt: Date;
}
const nonceSchema = new Schema<UsedNonceDoc>({ _id: { type: String, required: true }, expiresAt: { type: Date, required: true } }, { versionKey: false });
export const UsedNonce = mongoose.model<UsedNonceDoc>('LtiUsedNonce', nonceSchema, 'lti_used_nonces');

/**
 * Login states on every login's path, through the driver: mongoose's document, validation and hooks
 * would add to writes whose fields the caller builds in full.
 */
export async function insertLoginState(doc: LoginStateDoc): Promise<void> {
  await LoginState.collection.insertOne({ ...doc } as never);
}

export async function removeLoginState(id: string): Promise<void> {
  await LoginState.collection.deleteOne({ _id: id } as never);
}

/**
 * Records a used nonce; a second record of the same id is refused by the unique _id (a duplicate-key
 * error). Through the driver: it is on every launch's path, and mongoose's document, validation and
 * save hooks would add ~0.8 ms to a write whose fields are built right here.
 */
export async function insertUsedNonce(doc: UsedNonceDoc): Promise<void> {
  await UsedNonce.collection.insertOne({ _id: doc._id, expiresAt: doc.expiresAt } as never);
}

/** Takes back a nonce record this process wrote for a launch it then refused. */
export async function removeUsedNonce(id: string): Promise<void> {
  await UsedNonce.collection.deleteOne({ _id: id } as never);
}

/** Ours, and the ltijs collections it expects TTL indexes for (its schema `expires` values). */
export const ltiExpiryRules: ExpiryRule[] = [
  { collection: 'lti_login_states', field: 'expiresAt', kind: 'expiresAt' },
  { collection: 'lti_used_nonces', field: 'expiresAt', kind: 'expiresAt' },
  { collection: 'lti_deep_link_requests', field: 'expiresAt', kind: 'expiresAt' },
  { collection: 'nonces', field: 'createdAt', kind: 'maxAge', maxAgeMs: 10 * 60_000 },
  { collection: 'states', field: 'createdAt', kind: 'maxAge', maxAgeMs: 600_000 },
  { collection: 'idtokens', field: 'createdAt', kind: 'maxAge', maxAgeMs: 24 * 3600_000 },
  { collection: 'contexttokens', field: 'createdAt', kind: 'maxAge', maxAgeMs: 24 * 3600_000 },
  { collection: 'accesstokens', field: 'createdAt', kind: 'maxAge', maxAgeMs: 3600_000 },
];
