/** The development platform's shared types: what its route groups share, and the handle it returns. */
import type { Router } from 'express';
import type { JWK, JWTHeaderParameters, JWTPayload } from 'jose';
import type { Logger } from '../logger.js';
import type { DevPlatformScoreDoc, DevPlatformToolDoc } from './models.js';
import type { PlatformKey, ToolJwtVerifier } from './keys.js';
import type { DemoUser } from './claims.js';
import type { registerTool, createActivity, ToolRegistration, ActivityInput } from './registry.js';

export interface PlatformUrls {
  issuer: string;
  page: string;
  openidConfiguration: string;
  jwks: string;
  auth: string;
  token: string;
  registration: string;
  deepLinkReturn: string;
}

/** What every route group of the platform shares. */
export interface PlatformContext {
  urls: PlatformUrls;
  key: PlatformKey;
  verifier: ToolJwtVerifier;
  log: Logger;
  /** Cookies get `Secure` when the platform is served over https. */
  secureCookies: boolean;
  /** The course's users: the demo users, and the learners of a class-sized course when asked for. */
  users: readonly DemoUser[];
  /** Test switch: while false, the scores endpoint answers 503 (a platform outage). */
  scoresAvailable: boolean;
}

export interface DevPlatform {
  router: Router;
  urls: PlatformUrls;
  registerTool(r: ToolRegistration): ReturnType<typeof registerTool>;
  createActivity(a: ActivityInput): ReturnType<typeof createActivity>;
  /**
   * Dynamic registration driven from the server: opens the tool's registration URL with a fresh
   * registration token and returns the tool that registered with it. Throws BackendFailure if none did.
   */
  registerByUrl(toolRegistrationUrl: string): Promise<DevPlatformToolDoc>;
  /** The tool registered through this registration URL, registering it first if there is none (demo start-up). */
  ensureRegistered(toolRegistrationUrl: string): Promise<DevPlatformToolDoc>;
  /**
   * Sign any payload with the platform's key (RS256, its kid unless the header says otherwise), as
   * is. In-process only, for tests that forge id_tokens the real platform would never send
   * (expired, wrong aud, missing claims…) and check that the tool refuses them.
   */
  signJwt(payload: JWTPayload, header?: Partial<JWTHeaderParameters>): Promise<string>;
  /** The platform's public JWK (e.g. to forge an HS256 token keyed with it). */
  publicJwk: JWK;
  /** Simulate a platform outage of the scores endpoint (503) or end it. */
  setScoresAvailable(available: boolean): void;
  /** Every score received for a line item (optionally one user), in arrival order. */
  receivedScores(lineItemId: string, userId?: string): Promise<DevPlatformScoreDoc[]>;
}

