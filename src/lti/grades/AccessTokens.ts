/**
 * OAuth 2 access tokens for LTI Advantage services (client_credentials + private_key_jwt),
 * cached per (platform, scope) until shortly before they expire. Concurrent callers share one
 * request. Callers that get a 401 from a service call invalidate() once and ask again.
 */
import type { Logger } from '../../logger.js';
import type { PlatformDirectory, PlatformRef, ToolKeyProvider } from './types.js';

/** A failure to obtain a token. Always worth retrying later (an admin may fix the registration). */
export class TokenError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface AccessTokenPorts {
  keys?: ToolKeyProvider;
  platforms?: PlatformDirectory;
}

const EARLY_REFRESH_MS = 60_000;
const REQUEST_TIMEOUT_MS = 15_000;

export class AccessTokens {
  private readonly cache = new Map<string, { token: string; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<string>>();

  /** `ports` is read at call time, so implementations can be plugged in after construction. */
  constructor(private readonly ports: AccessTokenPorts, private readonly log: Logger) {}

  private key(p: PlatformRef, scope: string): string {
    return `${p.issuer}\n${p.clientId}\n${scope}`;
  }

  /** A valid token for the scope, from the cache or the platform's token endpoint. */
  get(platform: PlatformRef, scope: string): Promise<string> {
    const k = this.key(platform, scope);
    const hit = this.cache.get(k);
    if (hit && hit.expiresAt > Date.now()) return Promise.resolve(hit.token);
    let p = this.inflight.get(k);
    if (!p) {
      p = this.fetchToken(platform, scope).finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    return p;
  }

  /** Forget `token` (the platform refused it); a newer cached token is kept. */
  invalidate(platform: PlatformRef, scope: string, token: string): void {
    const k = this.key(platform, scope);
    if (this.cache.get(k)?.token === token) this.cache.delete(k);
  }

  private async fetchToken(platform: PlatformRef, scope: string): Promise<string> {
    const { keys, platforms } = this.ports;
    if (!keys) throw new TokenError('no tool key provider is configured');
    if (!platforms) throw new TokenError('no platform directory is configured');
    const tokenUrl = await platforms.tokenUrl(platform);
    if (!tokenUrl) throw new TokenError(`platform ${platform.issuer} (client ${platform.clientId}) is not registered`);
    const assertion = await keys.clientAssertion({ ...platform, tokenUrl });
    let res: Response;
    try {
      res = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
          scope,
        }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new TokenError(`token endpoint unreachable: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new TokenError(`token endpoint answered ${res.status}: ${text.slice(0, 200)}`, res.status);
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new TokenError('token endpoint answered with something that is not JSON');
    }
    if (typeof body.access_token !== 'string' || !body.access_token) throw new TokenError('token endpoint answered without access_token');
    const lifetimeMs = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600) * 1000;
    this.cache.set(this.key(platform, scope), { token: body.access_token, expiresAt: Date.now() + Math.max(lifetimeMs - EARLY_REFRESH_MS, lifetimeMs / 2) });
    this.log.debug({ issuer: platform.issuer, scope }, 'lti.access_token_obtained');
    return body.access_token;
  }
}
