/**
 * The database connection. One mongoose connection (the default one), shared with ltijs:
 * our mongoose is pinned to the 7.8 line ltijs 5.9 uses so npm dedupes it to one module,
 * hence one pool, one readiness signal and one place to close on shutdown.
 */
import mongoose from 'mongoose';
import type { Logger } from '../logger.js';

export { mongoose };

export interface Database {
  readonly uri: string;
  readonly connection: mongoose.Connection;
  /** Resolves true when a ping round-trips within timeoutMs. Never throws. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function connectDatabase(uri: string, dbName: string | undefined, log: Logger): Promise<Database> {
  mongoose.set('strictQuery', true);
  // autoIndex off: indexes are created and awaited explicitly at start-up (ensureIndexes),
  // so a failure (e.g. an option FerretDB does not implement) is seen, not swallowed.
  await mongoose.connect(uri, {
    ...(dbName ? { dbName } : {}),
    autoIndex: false,
    serverSelectionTimeoutMS: 10_000,
    heartbeatFrequencyMS: 2_000,
  });
  const connection = mongoose.connection;
  connection.on('disconnected', () => log.warn('db.disconnected'));
  connection.on('reconnected', () => log.info('db.reconnected'));
  log.info({ db: connection.name }, 'db.connected');
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
