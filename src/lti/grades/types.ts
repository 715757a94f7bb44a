/**
 * The ports GradeService and the NRPS client need from the rest of the LTI module. The tool side
 * (ltijs setup: platform registry and the tool's private keys) implements them and plugs them in
 * with `GradeService.use({...})` in the composition root; tests plug in their own.
 */

/** A platform registration as the services see it: who issued, and our client id there. */
export interface PlatformRef {
  issuer: string;
  clientId: string;
}

export interface PlatformEndpoints extends PlatformRef {
  /** The platform's OAuth 2 token endpoint (also the client assertion's `aud`). */
  tokenUrl: string;
}

/**
 * Signs `private_key_jwt` client assertions with the tool's private key for that platform:
 * RS256, `iss` = `sub` = clientId, `aud` = tokenUrl, short `exp`, fresh `jti`, and the `kid` the
 * tool's JWKS publishes. See signClientAssertion() for a ready implementation over a CryptoKey.
 */
export interface ToolKeyProvider {
  clientAssertion(platform: PlatformEndpoints): Promise<string>;
}

/** Looks up a registered platform's token endpoint; undefined when the platform is unknown. */
export interface PlatformDirectory {
  tokenUrl(platform: PlatformRef): Promise<string | undefined>;
}

/** Where one user's score for one activity goes: the line item stored at launch and the user's `sub`. */
export interface GradeTarget extends PlatformRef {
  lineItemUrl: string;
  userSub: string;
  /** The activity's maximum score (the teacher's choice when adding the lab): scores are sent on this scale. */
  scoreMaximum?: number | null;
}

/** Maps a lab instance to its grade target (from the launch that created it). */
export interface GradeTargetResolver {
  targetFor(instanceId: string): Promise<GradeTarget | undefined>;
}

export { ACTIVITY_PROGRESS, GRADING_PROGRESS, type ScoreInput } from '../../labs/score.js';

export const AGS_SCORE_SCOPE = 'https://purl.imsglobal.org/spec/lti-ags/scope/score';
export const NRPS_SCOPE = 'https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly';
