/**
 * Pure parts of the development platform: the demo course and users, LTI claim names, and the
 * id_token claims it sends — shaped like Moodle 4.5's (see shared/MOODLE.md): full role URIs,
 * `exp = iat + 60`, AGS line item URLs with `?type_id=`, NRPS, iframe presentation.
 */

import { LTI, CLAIM } from '../lti/claimNames.js';
export { LTI, CLAIM };

export const SCOPE = {
  lineItem: 'https://purl.imsglobal.org/spec/lti-ags/scope/lineitem',
  lineItemReadonly: 'https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly',
  resultReadonly: 'https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly',
  score: 'https://purl.imsglobal.org/spec/lti-ags/scope/score',
  nrps: 'https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly',
} as const;
export const ALL_SCOPES: string[] = Object.values(SCOPE);

export const ROLE_URI = {
  learner: 'http://purl.imsglobal.org/vocab/lis/v2/membership#Learner',
  instructor: 'http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor',
  institutionStudent: 'http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student',
  institutionFaculty: 'http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty',
} as const;

export interface DemoUser {
  /** Like a Moodle user id: the login_hint and the `sub`. */
  id: string;
  /** 'student', 'student2', 'teacher', or learner1… of a class-sized course. */
  key: string;
  givenName: string;
  familyName: string;
  email: string;
  role: 'Learner' | 'Instructor';
}

/** The demo users: two students and a teacher, all enrolled in the demo course. */
export const DEMO_USERS: readonly DemoUser[] = [
  { id: '101', key: 'student', givenName: 'Alice', familyName: 'Student', email: 'alice@example.edu', role: 'Learner' },
  { id: '102', key: 'student2', givenName: 'Bob', familyName: 'Student', email: 'bob@example.edu', role: 'Learner' },
  { id: '201', key: 'teacher', givenName: 'Tess', familyName: 'Teacher', email: 'tess@example.edu', role: 'Instructor' },
];

export const DEMO_COURSE = { id: '2', label: 'DEMO101', title: 'Demo course: Networks 101' } as const;

/** The demo users and `classSize` more students (Learner 1…N, keys learner1…): a course of a real class's size. */
export function demoClass(classSize = 0): readonly DemoUser[] {
  const extra = Array.from({ length: classSize }, (_, i): DemoUser => (
    { id: String(1001 + i), key: `learner${i + 1}`, givenName: 'Learner', familyName: String(i + 1), email: `learner${i + 1}@example.edu`, role: 'Learner' }
  ));
  return [...DEMO_USERS, ...extra];
}

/** A demo user by id or key ('student', 'student2', 'teacher', or a class's learner1…). */
export function demoUser(idOrKey: string, users: readonly DemoUser[] = DEMO_USERS): DemoUser | undefined {
  return users.find((u) => u.id === idOrKey || u.key === idOrKey);
}

export function fullName(u: DemoUser): string {
  return `${u.givenName} ${u.familyName}`;
}

/** Full role URIs for the id_token (NRPS uses the short names). */
export function roleUris(u: DemoUser): string[] {
  return u.role === 'Instructor' ? [ROLE_URI.instructor, ROLE_URI.institutionFaculty] : [ROLE_URI.learner, ROLE_URI.institutionStudent];
}

/** Service URLs of one course for one tool, with Moodle's `?type_id=` query on line items. */
export function serviceUrls(issuer: string, contextId: string, typeId: number) {
  const base = `${issuer}/services/${encodeURIComponent(contextId)}`;
  return {
    lineItems: `${base}/lineitems?type_id=${typeId}`,
    lineItem: (id: string) => `${base}/lineitems/${encodeURIComponent(id)}/lineitem?type_id=${typeId}`,
    memberships: `${base}/memberships?type_id=${typeId}`,
  };
}

export interface LaunchClaimsInput {
  issuer: string;
  clientId: string;
  deploymentId: string;
  typeId: number;
  user: DemoUser;
  nonce: string;
  targetLinkUri: string;
  messageType: 'LtiResourceLinkRequest' | 'LtiDeepLinkingRequest';
  /** Resource-link launches only. */
  activity?: { id: string; title: string; lineItemId: string | null; custom: Record<string, string> };
  /** Deep-linking requests only. */
  deepLink?: { returnUrl: string; data: string };
  toolCustom: Record<string, string>;
  returnUrl: string;
  now: number;
  /** The user's language (Moodle: the user's or course's language, e.g. "de" or "fr_ca"). */
  locale?: string;
}

/** The id_token payload (without iss/aud/iat/exp, which the signer sets). */
export function launchClaims(i: LaunchClaimsInput): Record<string, unknown> {
  const urls = serviceUrls(i.issuer, DEMO_COURSE.id, i.typeId);
  const claims: Record<string, unknown> = {
    nonce: i.nonce,
    sub: i.user.id,
    name: fullName(i.user),
    given_name: i.user.givenName,
    family_name: i.user.familyName,
    email: i.user.email,
    locale: i.locale ?? 'en',
    [CLAIM.version]: '1.3.0',
    [CLAIM.messageType]: i.messageType,
    [CLAIM.deploymentId]: i.deploymentId,
    [CLAIM.targetLinkUri]: i.targetLinkUri,
    [CLAIM.roles]: roleUris(i.user),
    [CLAIM.context]: { id: DEMO_COURSE.id, label: DEMO_COURSE.label, title: DEMO_COURSE.title, type: ['CourseSection'] },
    [CLAIM.toolPlatform]: {
      product_family_code: 'lab-orchestrator-dev-platform',
      version: '1.0',
      guid: new URL(i.issuer).host,
      name: 'Lab Orchestrator development platform',
    },
    [CLAIM.launchPresentation]: { locale: i.locale ?? 'en', document_target: 'iframe', return_url: i.returnUrl },
    [CLAIM.lis]: { person_sourcedid: '', course_section_sourcedid: '' },
    [CLAIM.custom]: { ...i.toolCustom, ...(i.activity?.custom ?? {}) },
    [CLAIM.ags]: {
      scope: [SCOPE.lineItem, SCOPE.lineItemReadonly, SCOPE.resultReadonly, SCOPE.score],
      lineitems: urls.lineItems,
      ...(i.activity?.lineItemId ? { lineitem: urls.lineItem(i.activity.lineItemId) } : {}),
    },
    [CLAIM.nrps]: { context_memberships_url: urls.memberships, service_versions: ['1.0', '2.0'] },
  };
  if (i.activity) {
    claims[CLAIM.resourceLink] = { id: i.activity.id, title: i.activity.title, description: '' };
  }
  if (i.deepLink) {
    claims[CLAIM.deepLinkingSettings] = {
      deep_link_return_url: i.deepLink.returnUrl,
      accept_types: ['ltiResourceLink'],
      accept_presentation_document_targets: ['frame', 'iframe', 'window'],
      accept_copy_advice: false,
      accept_multiple: true,
      accept_unsigned: false,
      accept_lineitem: true,
      auto_create: false,
      can_confirm: false,
      title: '',
      text: '',
      data: i.deepLink.data,
    };
  }
  return claims;
}

export const TOOL_CONFIG = 'https://purl.imsglobal.org/spec/lti-tool-configuration';

/** Problems with a registration request, as Moodle checks them; empty when valid. */
export function registrationProblems(b: Record<string, unknown>): string[] {
  const p: string[] = [];
  const conf = b[TOOL_CONFIG] as Record<string, unknown> | undefined;
  if (b.token_endpoint_auth_method !== 'private_key_jwt') p.push('token_endpoint_auth_method must be private_key_jwt');
  if (!Array.isArray(b.response_types) || !b.response_types.includes('id_token')) p.push('response_types must contain id_token');
  if (typeof b.initiate_login_uri !== 'string') p.push('initiate_login_uri is required');
  if (!Array.isArray(b.redirect_uris) || !b.redirect_uris.length || !b.redirect_uris.every((u) => typeof u === 'string')) p.push('redirect_uris is required');
  if (typeof b.jwks_uri !== 'string') p.push('jwks_uri is required');
  if (!conf || typeof conf !== 'object') {
    p.push(`${TOOL_CONFIG} is required`);
    return p;
  }
  if (typeof conf.target_link_uri !== 'string') p.push('target_link_uri is required');
  else {
    let host = '';
    try {
      host = new URL(conf.target_link_uri).host;
    } catch {
      p.push('target_link_uri is not a URL');
    }
    if (host && conf.domain !== host) p.push(`domain must equal the target_link_uri host including the port (${host})`);
  }
  return p;
}
