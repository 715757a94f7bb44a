/**
 * Keys of the development platform: its own RS256 key pair (generated once, kept in the database
 * so restarts keep the JWKS stable), and verification of JWTs signed by registered tools
 * (client assertions, deep-linking responses) against each tool's JWKS URL.
 */
import { randomUUID } from 'node:crypto';
import {
  createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, importJWK, jwtVerify,
  type JWK, type JWTPayload, type CryptoKey,
} from 'jose';
import { DevPlatformKey, DevPlatformTool, type DevPlatformToolDoc } from './models.js';
import { isDuplicateKey } from '../store/database.js';
import { Unauthorized } from '../errors.js';

export interface PlatformKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Load the platform key pair, creating it on first use (concurrent starts agree on one). */
export async function loadOrCreatePlatformKey(): Promise<PlatformKey> {
  let doc = await DevPlatformKey.findById('platform').lean();
  if (!doc) {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256' };
    try {
      await DevPlatformKey.create({ _id: 'platform', kid, privateJwk, publicJwk });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    doc = await DevPlatformKey.findById('platform').lean();
    if (!doc) throw new Error('platform key vanished');
  }
  const privateKey = (await importJWK(doc.privateJwk as JWK, 'RS256')) as CryptoKey;
  return { kid: doc.kid, privateKey, publicJwk: doc.publicJwk as JWK };
}

/** Verifies JWTs issued by registered tools; one remote JWKS cache per JWKS URL. */
export class ToolJwtVerifier {
  private readonly sets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  private jwks(url: string): ReturnType<typeof createRemoteJWKSet> {
    let set = this.sets.get(url);
    if (!set) {
      set = createRemoteJWKSet(new URL(url), { cooldownDuration: 5_000, cacheMaxAge: 60_000, timeoutDuration: 5_000 });
      this.sets.set(url, set);
    }
    return set;
  }

  /**
   * Find the tool by the token's `iss` (= its client id), then verify signature (RS256 only),
   * issuer and audience. Throws Unauthorized with a reason a developer can act on.
   */
  async verify(token: string, o: { audience: string; subjectIsIssuer?: boolean; maxTokenAge?: string }): Promise<{ tool: DevPlatformToolDoc; payload: JWTPayload }> {
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new Unauthorized('malformed JWT');
    }
    if (!iss) throw new Unauthorized('JWT has no iss');
    const tool = await DevPlatformTool.findById(iss).lean();
    if (!tool) throw new Unauthorized(`JWT iss "${iss}" is not a registered client id`);
    try {
      const { payload } = await jwtVerify(token, this.jwks(tool.jwksUrl), {
        algorithms: ['RS256'],
        issuer: tool._id,
        audience: o.audience,
        ...(o.subjectIsIssuer ? { subject: tool._id } : {}),
        ...(o.maxTokenAge ? { maxTokenAge: o.maxTokenAge } : {}),
        requiredClaims: ['exp', 'iat'],
        clockTolerance: 5,
      });
      return { tool, payload };
    } catch (err) {
      throw new Unauthorized(`JWT rejected: ${(err as Error).message}`);
    }
  }
}
