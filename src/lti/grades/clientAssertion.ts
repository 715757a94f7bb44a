/** A `private_key_jwt` client assertion (RFC 7523) as LTI Advantage token endpoints expect it. */
import { randomUUID } from 'node:crypto';
import { SignJWT, type CryptoKey, type KeyObject } from 'jose';
import type { PlatformEndpoints, ToolKeyProvider } from './types.js';

/** RS256, iss = sub = clientId, aud = tokenUrl, valid for `ttlSeconds` (default 300), fresh jti. */
export function signClientAssertion(
  platform: PlatformEndpoints,
  key: { privateKey: CryptoKey | KeyObject; kid: string },
  ttlSeconds = 300,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
    .setIssuer(platform.clientId)
    .setSubject(platform.clientId)
    .setAudience(platform.tokenUrl)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/** A ToolKeyProvider over a key lookup (e.g. ltijs's per-platform key). */
export function keyProviderFrom(lookup: (p: PlatformEndpoints) => Promise<{ privateKey: CryptoKey | KeyObject; kid: string }>): ToolKeyProvider {
  return { clientAssertion: async (p) => signClientAssertion(p, await lookup(p)) };
}
