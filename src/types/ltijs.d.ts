/**
 * Our own types for the parts of ltijs 5.9.9 we use (it ships none). Kept to what we call; see
 * node_modules/ltijs/dist for the behaviour behind each.
 */
declare module 'ltijs' {
  import type { Express, Request, Response, NextFunction } from 'express';

  export interface LtijsPlatform {
    platformUrl(): Promise<string>;
    platformClientId(): Promise<string>;
    platformName(): Promise<string>;
    /** The kid of the tool key pair ltijs generated for this platform (also the platform's id). */
    platformKid(): Promise<string>;
    /** PEM (PKCS#1) of the tool's private key for this platform, decrypted. */
    platformPrivateKey(): Promise<string>;
    platformPublicKey(): Promise<string>;
    platformAuthEndpoint(): Promise<string>;
    platformAccessTokenEndpoint(): Promise<string>;
    platformActive(active?: boolean): Promise<boolean>;
    delete(): Promise<unknown>;
  }

  export interface LtijsPlatformInput {
    url: string;
    name: string;
    clientId: string;
    authenticationEndpoint: string;
    accesstokenEndpoint: string;
    authorizationServer?: string;
    authConfig: { method: 'JWK_SET' | 'JWK_KEY' | 'RSA_KEY'; key: string };
  }

  /** res.locals.token after a validated launch. */
  export interface LtijsIdToken {
    iss: string;
    user: string;
    clientId: string;
    platformId: string;
    deploymentId: string;
    platformContext: Record<string, unknown>;
  }

  export type LtijsCallback = (token: LtijsIdToken, req: Request, res: Response, next: NextFunction) => unknown;
  export type LtijsPlainCallback = (req: Request, res: Response, next: NextFunction) => unknown;

  export interface LtijsDatabaseConfig {
    url: string;
    /** A Database object used instead of ltijs's own. */
    plugin?: unknown;
    connection?: Record<string, unknown>;
    debug?: boolean;
  }

  export interface LtijsOptions {
    appRoute?: string;
    loginRoute?: string;
    keysetRoute?: string;
    dynRegRoute?: string;
    cors?: boolean;
    /** No platform session cookie; the launch handler runs in the id_token POST itself (no ltik redirect). */
    ltiaas?: boolean;
    devMode?: boolean;
    /** Max id_token age in seconds from iat, or false. */
    tokenMaxAge?: number | false;
    cookies?: { secure?: boolean; sameSite?: 'None' | 'Lax' | 'Strict'; domain?: string };
    /** Runs in the Server constructor after body/cookie parsing, before ltijs's session validator. */
    serverAddon?: (app: Express) => void;
    /** Enables the /register route (ltijs's own flow is replaced by onDynamicRegistration). */
    dynReg?: { url: string; name: string; autoActivate?: boolean };
  }

  export interface LtijsProvider {
    app: Express;
    setup(encryptionKey: string, database: LtijsDatabaseConfig, options?: LtijsOptions): LtijsProvider;
    deploy(options?: { serverless?: boolean; silent?: boolean; port?: number }): Promise<true>;
    onConnect(cb: LtijsCallback): true;
    onDeepLinking(cb: LtijsCallback): true;
    onDynamicRegistration(cb: LtijsPlainCallback): true;
    onInvalidToken(cb: LtijsPlainCallback): true;
    onSessionTimeout(cb: LtijsPlainCallback): true;
    onUnregisteredPlatform(cb: LtijsPlainCallback): true;
    onInactivePlatform(cb: LtijsPlainCallback): true;
    whitelist(...routes: Array<string | RegExp | { route: string | RegExp; method: string }>): unknown;
    registerPlatform(platform: LtijsPlatformInput): Promise<LtijsPlatform>;
    getPlatform(url: string, clientId: string): Promise<LtijsPlatform | false>;
    getPlatform(url: string): Promise<LtijsPlatform[] | false>;
    getAllPlatforms(): Promise<LtijsPlatform[]>;
    deletePlatform(url: string, clientId: string): Promise<true>;
  }

  /** The package exports one Provider instance (a singleton); its constructor makes more. */
  const ltijs: { Provider: LtijsProvider };
  export default ltijs;
}

declare module 'ltijs/dist/Utils/Database.js' {
  /** ltijs's mongoose-backed storage (default connection). */
  class LtijsDatabase {
    constructor(config: { url: string; connection?: Record<string, unknown> });
    db: import('mongoose').Connection;
    setup(): Promise<true>;
    Close(): Promise<true>;
  }
  export default LtijsDatabase;
}
