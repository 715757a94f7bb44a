/**
 * One real FerretDB per test run (started by the root hook in hooks.ts). Each test file uses
 * its own database inside it, so files never see each other's data.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EmbeddedMongo, defaultFerretBin } from '../../src/db/EmbeddedMongo.js';
import { defaultToolsDir } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

let shared: { mongo: EmbeddedMongo; dir: string } | undefined;

export function ferretBin(): string {
  return process.env.FERRETDB_BIN ?? defaultFerretBin(defaultToolsDir());
}

export async function startSharedFerret(): Promise<void> {
  if (shared) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-ferret-'));
  const mongo = new EmbeddedMongo({ bin: ferretBin(), dataDir: dir, log: createLogger({ level: 'warn', format: 'json' }) });
  await mongo.start();
  shared = { mongo, dir };
}

export async function stopSharedFerret(): Promise<void> {
  if (!shared) return;
  await shared.mongo.stop();
  fs.rmSync(shared.dir, { recursive: true, force: true });
  shared = undefined;
}

export function sharedMongoUri(): string {
  if (!shared) throw new Error('shared FerretDB not started (root hook missing?)');
  return shared.mongo.uri;
}

/** The shared FerretDB's data directory: database `x` is the SQLite file `x.sqlite` in it. */
export function sharedFerretDataDir(): string {
  if (!shared) throw new Error('shared FerretDB not started (root hook missing?)');
  return shared.dir;
}

/** A fresh database name; FerretDB's SQLite handler keeps one file per database. */
export function uniqueDbName(prefix = 't'): string {
  return `${prefix.replace(/[^a-z0-9]/gi, '').slice(0, 20)}_${randomBytes(4).toString('hex')}`;
}
