/** The tool's LTI endpoints under PUBLIC_URL, and the key the registration URL carries. A leaf of lti/. */
import { createHmac } from 'node:crypto';

export interface LtiUrls {
  login: string;
  launch: string;
  deepLink: string;
  jwks: string;
  /**
   * What an admin pastes into Moodle (dynamic registration). It carries a key derived from
   * SECRET_KEY: without it anyone could register a platform and launch as its "administrator".
   */
  registration: string;
}


/** The key in the registration URL (stable for a SECRET_KEY). */
export function registrationKey(secretKey: string): string {
  return createHmac('sha256', secretKey).update('lti-dynamic-registration-v1').digest('base64url').slice(0, 32);
}

export function ltiUrls(publicUrl: string, secretKey: string): LtiUrls {
  const base = `${publicUrl.replace(/\/+$/, '')}/lti`;
  return {
    login: `${base}/login`, launch: base, deepLink: `${base}/deeplink`, jwks: `${base}/keys`,
    registration: `${base}/register?key=${registrationKey(secretKey)}`,
  };
}
