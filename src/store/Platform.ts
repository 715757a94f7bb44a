/**
 * LTI platforms this tool is registered with (Moodle sites, the dev platform): one per
 * (issuer, client id), with the deployment ids we accept. ltijs keeps its own platform record and
 * the tool's key pair for it (collections `platforms`, `privatekeys`, `publickeys`); this record is
 * ours: endpoints, deployments, how it was registered. Written only through src/lti/platforms.ts.
 */
import mongoose, { Schema } from 'mongoose';

export interface PlatformDoc {
  _id: string;
  issuer: string;
  clientId: string;
  name: string;
  authUrl: string;
  tokenUrl: string;
  jwksUrl: string;
  deploymentIds: string[];
  /** The kid of the tool key ltijs generated for this platform (in our JWKS). */
  kid: string;
  registeredBy: 'dynamic' | 'manual';
  createdAt: Date;
  updatedAt: Date;
}

const schema = new Schema<PlatformDoc>(
  {
    _id: { type: String, required: true },
    issuer: { type: String, required: true },
    clientId: { type: String, required: true },
    name: { type: String, required: true },
    authUrl: { type: String, required: true },
    tokenUrl: { type: String, required: true },
    jwksUrl: { type: String, required: true },
    deploymentIds: { type: [String], default: [] },
    kid: { type: String, required: true },
    registeredBy: { type: String, enum: ['dynamic', 'manual'], required: true },
  },
  { timestamps: true, versionKey: false },
);
schema.index({ issuer: 1, clientId: 1 }, { unique: true });

export const Platform = mongoose.model<PlatformDoc>('LtiPlatform', schema, 'lti_platforms');
