/** The database: MONGODB_URI, or an embedded FerretDB under DATA_DIR; every collection's indexes ensured once. */
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { EmbeddedMongo, defaultFerretBin } from '../db/EmbeddedMongo.js';
import { connectDatabase, ensureIndexes, type Database } from '../store/database.js';
import { ALL_MODELS } from '../store/models.js';
import type { Closers } from './Closers.js';

export interface DatabaseParts {
  db: Database;
  uri: string;
  embeddedMongo: EmbeddedMongo | undefined;
}

export async function buildDatabase(config: Config, log: Logger, dbName: string, closers: Closers): Promise<DatabaseParts> {
  let embeddedMongo: EmbeddedMongo | undefined;
  let uri = config.MONGODB_URI;
  if (!uri) {
    const em = new EmbeddedMongo({ bin: config.FERRETDB_BIN ?? defaultFerretBin(config.TOOLS_DIR), dataDir: path.join(config.DATA_DIR, 'ferretdb'), synchronous: config.FERRETDB_SYNCHRONOUS, log });
    uri = await em.start();
    closers.add('ferretdb', () => em.stop());
    embeddedMongo = em;
  }
  const db = await connectDatabase(uri, dbName, log, config.MONGODB_MAX_POOL_SIZE);
  closers.add('db', () => db.close());
  await ensureIndexes(ALL_MODELS);
  return { db, uri, embeddedMongo };
}
