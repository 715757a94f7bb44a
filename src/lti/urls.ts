/** The tool's LTI endpoints under PUBLIC_URL. A leaf of lti/. */

export interface LtiUrls {
  login: string;
  launch: string;
  deepLink: string;
  jwks: string;
  /**
   * Dynamic registration, without its key. What an operator pastes into Moodle is this URL with
   * `?key=` (registrationUrl): without the key anyone could register a platform and launch as its
   * administrator, so the full URL is shown to operators only (registrationKey.ts).
   */
  register: string;
}

export function ltiUrls(publicUrl: string): LtiUrls {
  const base = `${publicUrl.replace(/\/+$/, '')}/lti`;
  return { login: `${base}/login`, launch: base, deepLink: `${base}/deeplink`, jwks: `${base}/keys`, register: `${base}/register` };
}

/** The registration URL an operator pastes into the LMS. */
export function registrationUrl(urls: LtiUrls, key: string): string {
  return `${urls.register}?key=${encodeURIComponent(key)}`;
}
