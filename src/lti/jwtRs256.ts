/**
 * A compact RS256 JWT checked in one synchronous node:crypto call, then its registered claims:
 * the rules jose's jwtVerify applies (RFC 7515 §5.2 and RFC 7519 §7.2), without its WebCrypto
 * verification, which is a round trip through libuv's thread pool on every launch's path. RS256
 * only, no `crit`, keys of 2048 bits or more, strict base64url, top-level JSON objects.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';

export type JwtFailure = 'malformed' | 'signature' | 'expired' | 'claim' | 'key';

export class JwtRefused extends Error {
  constructor(readonly failure: JwtFailure, message: string) {
    super(message);
    this.name = 'JwtRefused';
  }
}

export interface ClaimRules {
  issuer: string;
  audience: string;
  /** Seconds of clock skew allowed on exp, nbf and iat. */
  clockTolerance: number;
  /** Seconds since iat after which the token is refused as expired. */
  maxTokenAge: number;
  /** Claims that must be present (iss, aud, exp and iat always are). */
  requiredClaims?: readonly string[];
}

const MIN_MODULUS_BITS = 2048;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** A platform's RSA signing key (public part only) as a KeyObject; throws on anything else. */
export function rsaPublicKey(jwk: JWK): KeyObject {
  if (jwk.kty !== 'RSA' || typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new TypeError('not an RSA public key');
  return createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
}

function jsonObject(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new JwtRefused('malformed', `${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JwtRefused('malformed', `${what} must be a top-level JSON object`);
  return v as Record<string, unknown>;
}

function numericDate(claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new JwtRefused('claim', `"${name}" claim must be a number`);
  return v;
}

/** The header of a compact JWS, unverified (for its kid). */
export function jwsHeader(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) throw new JwtRefused('malformed', 'not a compact JWS');
  return jsonObject(parts[0]!, 'the protected header');
}

/** The claims of `token` once its RS256 signature verifies with `key` and the rules hold; else JwtRefused. */
export function verifyRs256Jwt(token: string, key: KeyObject, rules: ClaimRules, now = Math.floor(Date.now() / 1000)): Record<string, unknown> {
  const header = jwsHeader(token);
  if (header.alg !== 'RS256') throw new JwtRefused('malformed', `alg ${String(header.alg)} is not accepted`);
  if (header.crit !== undefined) throw new JwtRefused('malformed', 'no critical header parameter is supported');
  const modulus = key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails?.modulusLength : undefined;
  if (modulus === undefined || modulus < MIN_MODULUS_BITS) throw new JwtRefused('key', `RS256 needs an RSA key of ${MIN_MODULUS_BITS} bits or more`);
  const dot = token.lastIndexOf('.');
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  let valid = false;
  try {
    valid = verify('sha256', Buffer.from(token.slice(0, dot), 'ascii'), key, signature);
  } catch {
    // a signature of the wrong length, for one
  }
  if (!valid) throw new JwtRefused('signature', 'signature verification failed');

  const claims = jsonObject(token.slice(token.indexOf('.') + 1, dot), 'the claims set');
  for (const name of new Set(['iss', 'aud', 'exp', 'iat', ...(rules.requiredClaims ?? [])])) {
    if (!Object.hasOwn(claims, name)) throw new JwtRefused('claim', `missing required "${name}" claim`);
  }
  if (claims.iss !== rules.issuer) throw new JwtRefused('claim', 'unexpected "iss" claim value');
  const aud = claims.aud;
  if (!(aud === rules.audience || (Array.isArray(aud) && aud.includes(rules.audience)))) throw new JwtRefused('claim', 'unexpected "aud" claim value');
  const tolerance = rules.clockTolerance;
  const iat = numericDate(claims, 'iat')!;
  const nbf = numericDate(claims, 'nbf');
  if (nbf !== undefined && nbf > now + tolerance) throw new JwtRefused('claim', '"nbf" claim timestamp check failed');
  const exp = numericDate(claims, 'exp')!;
  if (exp <= now - tolerance) throw new JwtRefused('expired', '"exp" claim timestamp check failed');
  const age = now - iat;
  if (age - tolerance > rules.maxTokenAge) throw new JwtRefused('expired', '"iat" claim timestamp check failed (too far in the past)');
  if (age < -tolerance) throw new JwtRefused('claim', '"iat" claim timestamp check failed (it should be in the past)');
  return claims;
}
