/**
 * Our id_token checks, the only ones on the launch path (ltijs's own lack most of these): RS256
 * only (signature and registered claims in jwtRs256.ts), key by kid from the platform's JWKS (one
 * rate-limited refetch), issuer = the login's, aud = our client id with no extra audiences, azp =
 * our client id when present, exp/iat with a small clock-skew allowance (Moodle sends exp = iat +
 * 60), nonce = the one bound to the login's state, message type = the route's, deployment id
 * registered for this platform (and the login's), target_link_uri = the login's, and the required
 * claims present.
 */
import type { JWTPayload } from 'jose';
import { JwtRefused, jwsHeader, verifyRs256Jwt } from './jwtRs256.js';
import { BadRequest, Unauthorized } from '../errors.js';
import type { LoginStateDoc } from '../store/LtiLogin.js';
import type { PlatformDoc } from '../store/Platform.js';
import type { JwksCache } from './jwks.js';
import type { PlatformRegistry } from './platforms.js';
import { CLAIM, DEEP_LINKING_REQUEST, RESOURCE_LINK_REQUEST, obj, str } from './claims.js';

export interface VerifiedLaunch {
  claims: JWTPayload & Record<string, unknown>;
  platform: PlatformDoc;
  messageType: typeof RESOURCE_LINK_REQUEST | typeof DEEP_LINKING_REQUEST;
  deploymentId: string;
  sub: string;
}

export interface VerifyDeps {
  registry: PlatformRegistry;
  jwks: JwksCache;
  clockSkewSeconds: number;
}

const refuse = (m: string) => new Unauthorized(`id_token refused: ${m}`, { publicMessage: `The launch was refused: ${m}.` });
const missing = (m: string) => new BadRequest(`id_token refused: ${m}`, { publicMessage: `The launch was refused: ${m}.` });

export async function verifyIdToken(
  idToken: string,
  login: LoginStateDoc,
  expected: VerifiedLaunch['messageType'],
  d: VerifyDeps,
): Promise<VerifiedLaunch> {
  let header: Record<string, unknown>;
  let unverified: Record<string, unknown>;
  try {
    header = jwsHeader(idToken);
    unverified = JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof unverified !== 'object' || unverified === null) throw new Error('claims not an object');
  } catch {
    throw missing('the id_token is not a JWT');
  }
  if (header.alg !== 'RS256') throw refuse(`alg ${String(header.alg)} is not accepted (RS256 only)`);
  if (typeof header.kid !== 'string' || !header.kid) throw refuse('the id_token has no kid');

  const aud = unverified.aud;
  const auds = Array.isArray(aud) ? aud : typeof aud === 'string' ? [aud] : [];
  const clientId = login.clientId ?? auds[0] ?? '';
  let platform = clientId ? await d.registry.find(login.issuer, clientId) : null;
  if (!platform) throw refuse('the audience is not a client id registered for this platform');

  const key = await d.jwks.key(platform.jwksUrl, header.kid);
  let claims: JWTPayload;
  try {
    claims = verifyRs256Jwt(idToken, key, {
      issuer: login.issuer, audience: platform.clientId,
      clockTolerance: d.clockSkewSeconds, maxTokenAge: 300 + d.clockSkewSeconds, requiredClaims: ['nonce'],
    });
  } catch (err) {
    const failure = err instanceof JwtRefused ? err.failure : undefined;
    const why = failure === 'expired' ? 'the id_token has expired'
      : failure === 'signature' ? 'the signature does not verify with the platform\'s key'
      : failure === 'claim' ? `claim check failed (${(err as Error).message})`
      : failure === 'key' ? 'the platform\'s key is shorter than 2048 bits'
      : 'the id_token could not be verified';
    throw refuse(why);
  }
  if (auds.length !== 1) throw refuse('the id_token names other audiences than this tool');
  if (claims.azp !== undefined && claims.azp !== platform.clientId) throw refuse('azp is not this tool\'s client id');
  if (typeof claims.iat === 'number' && claims.iat > Date.now() / 1000 + d.clockSkewSeconds) throw refuse('iat is in the future');
  if (claims.nonce !== login.nonce) throw refuse('the nonce does not belong to this login (replayed id_token?)');

  const c = claims as JWTPayload & Record<string, unknown>;
  const messageType = c[CLAIM.messageType];
  if (messageType !== RESOURCE_LINK_REQUEST && messageType !== DEEP_LINKING_REQUEST) throw missing('message_type is missing or not supported');
  if (messageType !== expected) {
    throw missing(expected === RESOURCE_LINK_REQUEST ? 'a deep-linking request was sent to the launch URL' : 'a resource-link launch was sent to the deep-linking URL');
  }
  if (c[CLAIM.version] !== '1.3.0') throw missing('version must be 1.3.0');
  const deploymentId = str(c[CLAIM.deploymentId]);
  if (!deploymentId) throw missing('deployment_id is missing');
  // a deployment added on another replica moments ago: look again before refusing
  if (!platform.deploymentIds.includes(deploymentId)) platform = (await d.registry.findFresh(platform.issuer, platform.clientId)) ?? platform;
  if (!platform.deploymentIds.includes(deploymentId)) throw refuse('deployment_id is not registered for this platform');
  if (login.deploymentId && login.deploymentId !== deploymentId) throw refuse('deployment_id differs from the login\'s');
  if (c[CLAIM.targetLinkUri] !== login.targetLinkUri) throw refuse('target_link_uri differs from the login\'s');
  const sub = str(c.sub);
  if (!sub) throw missing('sub (the user) is missing');
  if (messageType === RESOURCE_LINK_REQUEST && !str(obj(c[CLAIM.resourceLink]).id)) throw missing('the resource link id is missing');
  if (messageType === DEEP_LINKING_REQUEST && !str(obj(c[CLAIM.deepLinkingSettings]).deep_link_return_url)) throw missing('deep_link_return_url is missing');
  return { claims: c, platform, messageType, deploymentId, sub };
}
