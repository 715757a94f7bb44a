/**
 * ltijs verifies every id_token again after our checks and, for JWKS-registered platforms, fetches
 * the platform's JWKS on *every* launch (its shared `got` client, no cache). This shim answers those
 * fetches from our JwksCache when it holds that URL (it always does by then: our check ran first and
 * loaded the kid), so a launch costs the platform no JWKS request at all, and both checks use the
 * same keys. Any other request goes to ltijs's client unchanged. ltijs is pinned (5.9.9); the shim
 * checks the shape it patches and does nothing if that changed.
 */
import { createRequire } from 'node:module';
import type { JwksCache } from './jwks.js';

type GotGet = (url: string, ...rest: unknown[]) => { json(): Promise<unknown> };

const caches = new Set<JwksCache>();
let installed = false;

/** Route ltijs's JWKS fetches through `cache` until the returned function is called. */
export function shareJwksWithLtijs(cache: JwksCache): () => void {
  if (!installed) {
    installed = true;
    const http = createRequire(import.meta.url)('ltijs/dist/Utils/Http.js') as { get?: GotGet };
    const original = http.get;
    if (typeof original === 'function') {
      http.get = (url: string, ...rest: unknown[]) => {
        for (const c of caches) {
          const set = c.cachedSet(url);
          if (set) return { json: async () => set };
        }
        return original(url, ...rest);
      };
    }
  }
  caches.add(cache);
  return () => { caches.delete(cache); };
}
