/**
 * A deep-linking request between the verified LtiDeepLinkingRequest and the teacher's choice on
 * our catalog page. Its random _id is the capability the catalog form carries (no ltik, no
 * cookie); it is used at most once and expires after an hour (ExpirySweeper).
 */
import mongoose, { Schema } from 'mongoose';

export interface DeepLinkRequestDoc {
  _id: string;
  issuer: string;
  clientId: string;
  deploymentId: string;
  returnUrl: string;
  /** The platform's opaque `data`, echoed back. */
  data: string | null;
  acceptTypes: string[];
  userId: string;
  usedAt: Date | null;
  expiresAt: Date;
}

const schema = new Schema<DeepLinkRequestDoc>(
  {
    _id: { type: String, required: true },
    issuer: { type: String, required: true },
    clientId: { type: String, required: true },
    deploymentId: { type: String, required: true },
    returnUrl: { type: String, required: true },
    data: { type: String, default: null },
    acceptTypes: { type: [String], default: [] },
    userId: { type: String, required: true },
    usedAt: { type: Date, default: null },
    expiresAt: { type: Date, required: true },
  },
  { versionKey: false },
);

export const DeepLinkRequest = mongoose.model<DeepLinkRequestDoc>('LtiDeepLinkRequest', schema, 'lti_deep_link_requests');
