/**
 * The database connection. One mongoose connection (the default one), shared with ltijs:
 * our mongoose is pinned to the 7.8 line ltijs 5.9 uses so npm dedupes it to one module,
 * hence one pool, one readiness signal and one place to close on shutdown.
 */
import mongoose from 'mongoose';
import type { Logger } from '../logger.js';
import { setIdOnlyFilters } from './idFilters.js';

export { mongoose };

export interface Database {
  readonly uri: string;
  readonly connection: mongoose.Connection;
  /** Resolves true when a ping round-trips within timeoutMs. Never throws. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * FerretDB 1.x on SQLite keeps at most 100 SQLite connections per database and an update holds two
 * of them at once (its read cursor, then its write): with 100 or more updates in flight every
 * connection can end up held by a read waiting for a second one, and FerretDB stops for good. The
 * driver's pool bounds what one process has in flight, so on FerretDB it is kept to this unless
 * configured (MONGODB_MAX_POOL_SIZE); replicas times the pool must stay under 100.
 */
export const FERRETDB_MAX_POOL_SIZE = 20;

/** True when a `buildInfo` answer comes from FerretDB (it adds its own fields; MongoDB has none of them). */
export function isFerretDb(buildInfo: Record<string, unknown>): boolean {
  return 'ferretdbVersion' in buildInfo || 'ferretdbFeatures' in buildInfo;
}

/** Asks the server what it is over a one-connection client that is closed again. */
async function serverIsFerretDb(uri: string): Promise<boolean> {
  const probe = await mongoose.createConnection(uri, { maxPoolSize: 1, serverSelectionTimeoutMS: 10_000 }).asPromise();
  try {
    const info = await probe.db!.admin().command({ buildInfo: 1 }); // db is set once the connection is open
    return isFerretDb(info);
  } finally {
    await probe.close();
  }
}

/**
 * The options every connection of the tool uses. maxPoolSize: the configured value; else
 * FERRETDB_MAX_POOL_SIZE when the server is FerretDB; else the driver's default (MongoDB).
 */
export async function connectOptions(uri: string, dbName: string | undefined, maxPoolSize?: number, ferretDb?: boolean): Promise<mongoose.ConnectOptions> {
  const pool = maxPoolSize ?? ((ferretDb ?? (await serverIsFerretDb(uri))) ? FERRETDB_MAX_POOL_SIZE : undefined);
  // autoIndex off: indexes are created and awaited explicitly at start-up (ensureIndexes),
  // so a failure (e.g. an option FerretDB does not implement) is seen, not swallowed.
  return {
    ...(dbName ? { dbName } : {}),
    ...(pool !== undefined ? { maxPoolSize: pool } : {}),
    autoIndex: false,
    serverSelectionTimeoutMS: 10_000,
    heartbeatFrequencyMS: 2_000,
  };
}

/** maxPoolSize: the configured MONGODB_MAX_POOL_SIZE, if any (see connectOptions). */
export async function connectDatabase(uri: string, dbName: string | undefined, log: Logger, maxPoolSize?: number): Promise<Database> {
  mongoose.set('strictQuery', true);
  const ferretDb = await serverIsFerretDb(uri);
  setIdOnlyFilters(ferretDb);
  const options = await connectOptions(uri, dbName, maxPoolSize, ferretDb);
  await mongoose.connect(uri, options);
  const connection = mongoose.connection;
  connection.on('disconnected', () => log.warn('db.disconnected'));
  connection.on('reconnected', () => log.info('db.reconnected'));
  log.info({ db: connection.name, server: ferretDb ? 'FerretDB' : 'MongoDB', maxPoolSize: options.maxPoolSize ?? 'driver default' }, 'db.connected');
  return {
    uri,
    connection,
    async ping(timeoutMs = 1000) {
      const db = connection.db;
      if (!db || connection.readyState !== 1) return false;
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          db.command({ ping: 1 }, { maxTimeMS: timeoutMs }).then(() => true),
          new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs); }),
        ]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await mongoose.disconnect();
    },
  };
}

/**
 * Create every model's indexes and wait for them. Unique indexes are what make our
 * upserts race-free (FerretDB 1.x has no transactions), so a failure here stops start-up.
 */
export async function ensureIndexes(models: ReadonlyArray<{ createIndexes(): Promise<unknown> }>): Promise<void> {
  for (const m of models) await m.createIndexes();
}

/** True for MongoDB's duplicate-key error (E11000), which FerretDB also returns. */
export function isDuplicateKey(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 11000;
}

/**
 * Run an upsert, retrying once on a duplicate-key error: two concurrent upserts on the same
 * unique key can both try to insert; the loser's retry then finds and updates the winner's row.
 */
export async function retryUpsert<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!isDuplicateKey(err) || i >= attempts) throw err;
    }
  }
}
