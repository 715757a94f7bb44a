/** LTI 1.3 claim names and the role mapping, shared by the launch, deep-linking and registration code. */
import type { Role } from '../auth/session.js';
import { ourRole } from './nrps.js';

export { CLAIM } from './claimNames.js';

export const RESOURCE_LINK_REQUEST = 'LtiResourceLinkRequest';
export const DEEP_LINKING_REQUEST = 'LtiDeepLinkingRequest';

/** The service scopes we ask for at registration: scores (AGS) and rosters (NRPS), nothing else. */
export const TOOL_SCOPES = [
  'https://purl.imsglobal.org/spec/lti-ags/scope/score',
  'https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly',
];

/** LTI roles (full URIs or short names) to our three roles, the same mapping NRPS uses; unknown or none = learner. */
export function mapRoles(roles: unknown): Role {
  return ourRole(Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : []);
}

export function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
