/**
 * Platform JWKS, cached per JWKS URL and looked up by `kid`. A kid we do not know triggers one
 * refetch (a platform may have rotated its key), shared by concurrent callers and at most one per
 * `minRefetchMs` per URL, so forged kids cannot make us hammer a platform.
 */
import type { KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { rsaPublicKey } from './jwtRs256.js';
import type { Logger } from '../logger.js';
import { BackendFailure, Unauthorized } from '../errors.js';

type Key = KeyObject;

interface Entry {
  keys: Map<string, Key>;
  /** The set as fetched (usable keys only), for ltijs's own verification (ltijsJwksShim). */
  raw: { keys: JWK[] };
  fetchedAt: number;
  lastRefetchAt: number;
  loading: Promise<void> | undefined;
}

export interface JwksCacheOptions {
  /** At most one unknown-kid refetch per URL in this window. */
  minRefetchMs?: number;
  /** Refetch a set this old on next use. */
  maxAgeMs?: number;
  timeoutMs?: number;
}

export class JwksCache {
  private readonly sets = new Map<string, Entry>();
  private readonly minRefetchMs: number;
  private readonly maxAgeMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly log: Logger, o: JwksCacheOptions = {}) {
    this.minRefetchMs = o.minRefetchMs ?? 30_000;
    this.maxAgeMs = o.maxAgeMs ?? 3600_000;
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  /** The RS256 verification key `kid` of the set at `url`; Unauthorized when it is not there after one refetch. */
  async key(url: string, kid: string): Promise<Key> {
    let e = this.sets.get(url);
    if (!e) {
      e = { keys: new Map(), raw: { keys: [] }, fetchedAt: 0, lastRefetchAt: 0, loading: undefined };
      this.sets.set(url, e);
    }
    if (Date.now() - e.fetchedAt > this.maxAgeMs) await this.load(url, e, 'expired');
    const hit = e.keys.get(kid);
    if (hit) return hit;
    if (Date.now() - e.lastRefetchAt >= this.minRefetchMs) {
      e.lastRefetchAt = Date.now();
      await this.load(url, e, 'unknown-kid');
    } else if (e.loading) {
      await e.loading;
    }
    const again = e.keys.get(kid);
    if (again) return again;
    throw new Unauthorized(`unknown kid ${kid} at ${url}`, { publicMessage: 'The launch was signed with a key the platform does not publish (unknown kid).' });
  }

  /** The cached set at `url` (public keys only), if it was fetched; never fetches. */
  cachedSet(url: string): { keys: JWK[] } | undefined {
    const e = this.sets.get(url);
    return e && e.fetchedAt > 0 ? e.raw : undefined;
  }

  private load(url: string, e: Entry, reason: string): Promise<void> {
    e.loading ??= this.fetchSet(url, e, reason).finally(() => { e.loading = undefined; });
    return e.loading;
  }

  private async fetchSet(url: string, e: Entry, reason: string): Promise<void> {
    let body: { keys?: unknown };
    try {
      const res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.timeoutMs) });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      body = (await res.json()) as { keys?: unknown };
    } catch (err) {
      throw new BackendFailure(`platform JWKS ${url} unavailable: ${(err as Error).message}`, { publicMessage: 'The platform\'s keys could not be fetched; try again shortly.' });
    }
    const keys = new Map<string, Key>();
    const raw: JWK[] = [];
    for (const jwk of Array.isArray(body.keys) ? (body.keys as JWK[]) : []) {
      if (!jwk || typeof jwk.kid !== 'string' || jwk.kty !== 'RSA' || (jwk.use && jwk.use !== 'sig')) continue;
      try {
        keys.set(jwk.kid, rsaPublicKey(jwk));
        raw.push({ kty: jwk.kty, kid: jwk.kid, n: jwk.n, e: jwk.e, alg: 'RS256', use: 'sig' });
      } catch {
        /* a key we cannot use is skipped */
      }
    }
    e.keys = keys;
    e.raw = { keys: raw };
    e.fetchedAt = Date.now();
    this.log.info({ url, reason, kids: [...keys.keys()] }, 'lti.jwks_fetched');
  }
}
