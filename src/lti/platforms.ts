/**
 * The platform registry: what we know about each LTI platform registration (issuer + client id),
 * kept in two places that this file keeps in step: ltijs's platform record (it owns the tool's
 * key pair for that platform, served in our JWKS) and our `lti_platforms` record (endpoints,
 * deployment ids, how it was registered). Registering the same (issuer, client id) again updates
 * it, but only for the operator: anyone else (a dynamic registration) gets a Conflict unless the
 * registration is exactly the stored one, so nobody can swap a platform's JWKS or endpoints and
 * sign launches as its users.
 */
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import mongoose from 'mongoose';
import type { LtijsProvider } from 'ltijs';
import type { Logger } from '../logger.js';
import { Conflict, ValidationFailed } from '../errors.js';
import { retryUpsert } from '../store/database.js';
import { Platform, type PlatformDoc } from '../store/Platform.js';
import { httpUrl } from './httpUrl.js';

export interface PlatformInput {
  issuer: string;
  clientId: string;
  name?: string;
  authUrl: string;
  tokenUrl: string;
  jwksUrl: string;
  deploymentIds: string[];
  registeredBy: 'dynamic' | 'manual';
}

/** Validate a registration; throws ValidationFailed naming every problem. */
export function validatePlatformInput(i: Partial<Record<keyof PlatformInput, unknown>>): PlatformInput {
  const p: string[] = [];
  const issuer = httpUrl(i.issuer, 'issuer', p);
  const authUrl = httpUrl(i.authUrl, 'authUrl', p);
  const tokenUrl = httpUrl(i.tokenUrl, 'tokenUrl', p);
  const jwksUrl = httpUrl(i.jwksUrl, 'jwksUrl', p);
  const clientId = typeof i.clientId === 'string' ? i.clientId.trim() : '';
  if (!clientId) p.push('clientId: required');
  const deps = Array.isArray(i.deploymentIds) ? i.deploymentIds : typeof i.deploymentIds === 'string' ? [i.deploymentIds] : [];
  const deploymentIds = [...new Set(deps.map((d) => (typeof d === 'string' ? d.trim() : '')))];
  if (!deploymentIds.length || deploymentIds.some((d) => !d)) p.push('deploymentIds: one or more non-empty deployment ids required');
  if (p.length) throw new ValidationFailed(`invalid platform registration: ${p.join('; ')}`, p, { messageKey: 'admin.invalidPlatform', messageVars: { problems: p.join('; ') } });
  return {
    issuer, clientId, authUrl, tokenUrl, jwksUrl, deploymentIds,
    name: typeof i.name === 'string' && i.name.trim() ? i.name.trim() : new URL(issuer).host,
    registeredBy: i.registeredBy === 'dynamic' ? 'dynamic' : 'manual',
  };
}

/** How long another replica's registration may go unseen here (a platform unknown here is read at once). */
const RELOAD_MS = 5_000;

export class PlatformRegistry {
  private origins: string[] = [];
  /** Every platform by issuer + client id, read as a whole: a launch reads no platform from the database. */
  private byKey = new Map<string, PlatformDoc>();
  private loadedAt = 0;
  private reloading: Promise<void> | null = null;
  private readonly keyCache = new Map<string, { privateKey: KeyObject; kid: string }>();
  private readonly inflight = new Map<string, Promise<PlatformDoc>>();

  constructor(private readonly lti: LtijsProvider, private readonly log: Logger) {}

  /** Create ltijs's unique indexes (platform, keys) and load the frame-ancestor origins. */
  async init(): Promise<void> {
    for (const name of ['platform', 'platformStatus', 'privatekey', 'publickey']) await mongoose.model(name).createIndexes();
    await this.reload();
  }

  /**
   * Register, or update an existing registration when `byOperator` (the admin API behind the
   * operator's credentials, the CLI). Otherwise an existing (issuer, client id) is returned as it
   * is when nothing would change, and refused with Conflict when something would. Concurrent
   * calls for the same platform share one.
   */
  register(input: PlatformInput, o: { byOperator?: boolean } = {}): Promise<PlatformDoc> {
    const v = validatePlatformInput(input);
    const k = `${v.issuer}\n${v.clientId}`;
    let p = this.inflight.get(k);
    if (!p) {
      p = this.guarded(v, o.byOperator === true).finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    return p;
  }

  private async guarded(v: PlatformInput, byOperator: boolean): Promise<PlatformDoc> {
    const existing = await this.find(v.issuer, v.clientId);
    if (!existing || byOperator) return this.doRegister(v);
    const same = existing.authUrl === v.authUrl && existing.tokenUrl === v.tokenUrl && existing.jwksUrl === v.jwksUrl
      && v.deploymentIds.every((d) => existing.deploymentIds.includes(d));
    if (same) return existing;
    this.log.warn({ issuer: v.issuer, clientId: v.clientId, registeredBy: v.registeredBy }, 'lti.platform_change_refused');
    throw new Conflict(`platform ${v.issuer} (client ${v.clientId}) is already registered`, {
      publicMessage: 'This platform and client id are already registered with the tool. Only the operator of the tool can change a registration.',
      messageKey: 'admin.platformRegistered',
    });
  }

  private async doRegister(v: PlatformInput): Promise<PlatformDoc> {
    const lp = await this.lti.registerPlatform({
      url: v.issuer, name: v.name ?? v.issuer, clientId: v.clientId,
      authenticationEndpoint: v.authUrl, accesstokenEndpoint: v.tokenUrl, authorizationServer: v.tokenUrl,
      authConfig: { method: 'JWK_SET', key: v.jwksUrl },
    });
    const kid = await lp.platformKid();
    const doc = await retryUpsert(() =>
      Platform.findOneAndUpdate(
        { issuer: v.issuer, clientId: v.clientId },
        {
          $set: { name: v.name, authUrl: v.authUrl, tokenUrl: v.tokenUrl, jwksUrl: v.jwksUrl, kid, registeredBy: v.registeredBy },
          $addToSet: { deploymentIds: { $each: v.deploymentIds } },
          $setOnInsert: { _id: `p${randomBytes(9).toString('base64url')}` },
        },
        { upsert: true, new: true, lean: true },
      ),
    );
    if (!doc) throw new Error('platform upsert returned no document');
    this.keyCache.delete(`${v.issuer}\n${v.clientId}`);
    // a read that starts after this write (a reload already under way may have started before it)
    await this.readAll();
    this.log.info({ issuer: v.issuer, clientId: v.clientId, deploymentIds: doc.deploymentIds, kid, registeredBy: v.registeredBy }, 'lti.platform_registered');
    return doc as PlatformDoc;
  }

  /** From memory; a platform not known here is looked up (registered by another replica meanwhile). */
  async find(issuer: string, clientId: string): Promise<PlatformDoc | null> {
    this.reloadIfOld();
    const hit = this.byKey.get(`${issuer}\n${clientId}`);
    if (hit) return hit;
    const doc = await Platform.findOne({ issuer, clientId }).lean<PlatformDoc>().exec();
    if (doc) this.byKey.set(`${issuer}\n${clientId}`, doc);
    return doc;
  }

  /** As find, after reading every platform again: for a second look before refusing on what may be stale. */
  async findFresh(issuer: string, clientId: string): Promise<PlatformDoc | null> {
    await this.reload();
    return this.find(issuer, clientId);
  }

  async byIssuer(issuer: string): Promise<PlatformDoc[]> {
    this.reloadIfOld();
    const hits = [...this.byKey.values()].filter((p) => p.issuer === issuer);
    return hits.length ? hits : Platform.find({ issuer }).lean<PlatformDoc[]>().exec();
  }

  list(): Promise<PlatformDoc[]> {
    return Platform.find({}).sort({ createdAt: 1 }).lean<PlatformDoc[]>().exec();
  }

  /** Origins allowed to frame our pages (CSP frame-ancestors): every registered platform's. */
  frameAncestors(): string[] {
    this.reloadIfOld();
    return this.origins;
  }

  /** Read every platform again (at once after a registration here; every few seconds for other replicas'). */
  reload(): Promise<void> {
    this.reloading ??= this.readAll().finally(() => { this.reloading = null; });
    return this.reloading;
  }

  private reloadIfOld(): void {
    if (Date.now() - this.loadedAt > RELOAD_MS && !this.reloading) {
      this.reload().catch((err: unknown) => this.log.warn({ err }, 'lti.platforms_reload_failed'));
    }
  }

  private async readAll(): Promise<void> {
    const all = await Platform.find({}).lean<PlatformDoc[]>().exec();
    const set = new Set<string>();
    for (const p of all) for (const u of [p.issuer, p.authUrl]) {
      try {
        set.add(new URL(u).origin);
      } catch { /* validated on write */ }
    }
    this.byKey = new Map(all.map((p) => [`${p.issuer}\n${p.clientId}`, p]));
    this.origins = [...set].sort();
    this.loadedAt = Date.now();
  }

  /** The tool's private key for this platform (ltijs's, decrypted) and its kid as our JWKS shows it. */
  async toolKey(issuer: string, clientId: string): Promise<{ privateKey: KeyObject; kid: string }> {
    const k = `${issuer}\n${clientId}`;
    const hit = this.keyCache.get(k);
    if (hit) return hit;
    const lp = await this.lti.getPlatform(issuer, clientId);
    if (!lp) throw new Error(`no tool key: platform ${issuer} (client ${clientId}) is not registered`);
    const key = { privateKey: createPrivateKey(await lp.platformPrivateKey()), kid: await lp.platformKid() };
    this.keyCache.set(k, key);
    return key;
  }
}
