/**
 * ltijs 5.9.9 set up in serverless mode, as a sub-app we mount at /lti.
 *
 * - One Provider per tool start: the package exports a singleton whose setup() may run only once
 *   per process, so we construct our own from its class (tests start several tools in one process).
 * - One database connection: ltijs's Database uses mongoose's *default* connection and only
 *   connects when it is closed (readyState 0). Ours is open (connectDatabase), so ltijs shares it.
 *   Its setup() also attaches listeners that would `mongoose.disconnect()` on any error and
 *   reconnect on its own after a disconnect (so a shutdown would reconnect!); we remove exactly
 *   those listeners again, and its Close() is a no-op: the composition root owns the connection.
 * - deploy() adds a SIGINT handler that calls process.exit(); we remove it too (the CLI owns signals).
 */
import { createHmac } from 'node:crypto';
import mongoose from 'mongoose';
import type { Express } from 'express';
import ltijs, { type LtijsOptions, type LtijsProvider } from 'ltijs';
import LtijsDatabase from 'ltijs/dist/Utils/Database.js';
import { installAsyncToolKeys } from './ltijsKeyShim.js';

const DB_EVENTS = ['connected', 'open', 'error', 'reconnected', 'disconnected'] as const;

/** ltijs's Database on our already-open default connection, without its reconnect/disconnect handlers. */
class SharedConnectionDatabase extends LtijsDatabase {
  override async setup(): Promise<true> {
    const conn = mongoose.connection;
    if (conn.readyState !== 1) throw new Error('ltijs: the database connection must be open before the LTI module starts');
    const before = new Map(DB_EVENTS.map((e) => [e, new Set(conn.listeners(e))]));
    try {
      return await super.setup();
    } finally {
      for (const e of DB_EVENTS) {
        for (const l of conn.listeners(e)) if (!before.get(e)!.has(l)) conn.off(e, l as (...a: unknown[]) => void);
      }
    }
  }

  override async Close(): Promise<true> {
    return true;
  }
}

/** The key ltijs signs cookies and ltiks with and encrypts tool keys under: derived from SECRET_KEY. */
export function ltijsKeyFrom(secretKey: string): string {
  return createHmac('sha256', secretKey).update('ltijs-encryption-v1').digest('base64url');
}

export interface LtijsSetup {
  secretKey: string;
  /** Any mongodb URI; never used to connect (the connection is shared), ltijs only requires one. */
  dbUri: string;
  secureCookies: boolean;
  /** Where ltijs is mounted, e.g. https://labs.example.edu/lti (ltijs only enables its registration route with it). */
  baseUrl: string;
  /** Our middleware, run by ltijs after body/cookie parsing and before its own validation. */
  serverAddon: (app: Express) => void;
}

export async function createLtijsProvider(o: LtijsSetup): Promise<LtijsProvider> {
  // deploy() calls process.exit() when its setup fails: fail here first, with a clear error
  if (mongoose.connection.readyState !== 1) throw new Error('ltijs: the database connection must be open before the LTI module starts');
  installAsyncToolKeys();
  const Ctor = Object.getPrototypeOf(ltijs.Provider).constructor as new () => LtijsProvider;
  const lti = new Ctor();
  const options: LtijsOptions = {
    appRoute: '/',
    loginRoute: '/login',
    keysetRoute: '/keys',
    dynRegRoute: '/register',
    cors: false,
    // the launch handler runs in the id_token POST itself: no ltik in a redirect URL, no session cookie
    ltiaas: true,
    devMode: false,
    // Moodle sends exp = iat + 60; our own check (verifyLaunch) adds the clock-skew allowance
    tokenMaxAge: 65,
    cookies: o.secureCookies ? { secure: true, sameSite: 'None' } : { secure: false, sameSite: 'Lax' },
    serverAddon: o.serverAddon,
    // without dynReg ltijs answers 403 at /register; our onDynamicRegistration callback does the work
    dynReg: { url: o.baseUrl, name: 'Lab Orchestrator', autoActivate: true },
  };
  lti.setup(ltijsKeyFrom(o.secretKey), { url: o.dbUri, plugin: new SharedConnectionDatabase({ url: o.dbUri }) }, options);
  const sigint = new Set(process.listeners('SIGINT'));
  try {
    await lti.deploy({ serverless: true, silent: true });
  } finally {
    for (const l of process.listeners('SIGINT')) if (!sigint.has(l)) process.off('SIGINT', l);
  }
  return lti;
}
