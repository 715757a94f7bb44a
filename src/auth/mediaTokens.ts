/**
 * Signed media URLs. Instruction pages load a lab's images with plain `<img src>` requests, which
 * carry no session (sessions are Bearer tokens kept by the page, never cookies), so the page's
 * media URLs carry a short token instead: HMAC-signed (a key derived from SECRET_KEY, apart from
 * sessions and tickets) over the lab, its version, the viewer it was issued to and an expiry. The
 * media route serves a lab's media to that viewer only when the catalog rule (tenancy.ts
 * mayUseLab) lets the viewer see the lab. Expiry is rounded to the hour, so a page's URLs stay the
 * same for an hour and the browser's private cache works.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CatalogViewer } from './tenancy.js';

const HOUR_MS = 3600_000;

export class MediaTokens {
  private readonly key: Buffer;
  constructor(secretKey: string) {
    this.key = createHmac('sha256', secretKey).update('media-url-v1').digest();
  }

  /** A token for `viewer` on labId@version, valid one to two hours from now. */
  issue(labId: string, version: string, viewer: CatalogViewer, now = Date.now()): string {
    const exp = Math.ceil(now / HOUR_MS) * HOUR_MS + HOUR_MS;
    const who = encodeViewer(viewer);
    return `${exp.toString(36)}.${who}.${this.sign(labId, version, who, exp)}`;
  }

  /** The viewer a valid, unexpired token for labId@version was issued to; undefined otherwise. */
  verify(labId: string, version: string, token: string, now = Date.now()): CatalogViewer | undefined {
    const [expS, who, sig, ...rest] = token.split('.');
    if (!expS || who === undefined || !sig || rest.length) return undefined;
    const exp = parseInt(expS, 36);
    if (!Number.isSafeInteger(exp) || exp <= now) return undefined;
    const want = Buffer.from(this.sign(labId, version, who, exp));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    return decodeViewer(who);
  }

  private sign(labId: string, version: string, who: string, exp: number): string {
    return createHmac('sha256', this.key).update(`${labId}\n${version}\n${who}\n${exp}`).digest('base64url');
  }
}

function encodeViewer(v: CatalogViewer): string {
  if (v.kind === 'operator') return 'o';
  if (v.kind === 'public') return '-';
  return `p${Buffer.from(v.platformId).toString('base64url')}`;
}

function decodeViewer(s: string): CatalogViewer | undefined {
  if (s === 'o') return { kind: 'operator' };
  if (s === '-') return { kind: 'public' };
  if (s.startsWith('p') && s.length > 1) return { kind: 'platform', platformId: Buffer.from(s.slice(1), 'base64url').toString() };
  return undefined;
}
