/**
 * The database pool on FerretDB. FerretDB 1.x on SQLite has 100 SQLite connections per database and
 * an update holds two of them (its read, then its write); with 100 or more updates in flight every
 * connection can be held by a read waiting for a second one and FerretDB stops for good. The tool
 * keeps its pool small on FerretDB so that several replicas together stay under that.
 * A private FerretDB per test: a stopped one must not take the run's shared FerretDB with it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import pino from 'pino';
import { EmbeddedMongo } from '../../src/db/EmbeddedMongo.js';
import { FERRETDB_MAX_POOL_SIZE, connectDatabase, connectOptions, isFerretDb } from '../../src/store/database.js';
import { ferretBin } from '../support/ferret.js';

const silent = pino({ level: 'silent' });

async function privateFerret(): Promise<{ uri: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-ferret-pool-'));
  const mongo = new EmbeddedMongo({ bin: ferretBin(), dataDir: dir, log: silent });
  const uri = await mongo.start();
  return {
    uri,
    async stop() {
      await mongo.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when every promise has; rejects when none settles for stallMs (FerretDB stopped). */
function allOrStall(work: Array<Promise<unknown>>, stallMs: number): Promise<void> {
  let done = 0;
  let timer: NodeJS.Timeout | undefined;
  return new Promise<void>((resolve, reject) => {
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => reject(new Error(`stalled: ${done} of ${work.length} updates done, none for ${stallMs / 1000} s`)), stallMs);
    };
    arm();
    for (const p of work) {
      p.then(() => {
        done++;
        if (done === work.length) {
          clearTimeout(timer);
          resolve();
        } else arm();
      }, (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      });
    }
  });
}

describe('database pool on FerretDB', function () {
  this.timeout(300_000);
  let ferret: { uri: string; stop(): Promise<void> } | undefined;

  beforeEach(async () => { ferret = await privateFerret(); });
  afterEach(async () => {
    await ferret?.stop();
    ferret = undefined;
  });

  it('recognises FerretDB by its buildInfo fields, and MongoDB by their absence', () => {
    assert.equal(isFerretDb({ version: '7.0.42', ferretdbVersion: 'unknown', ferretdbFeatures: {}, ok: 1 }), true);
    // MongoDB 7's buildInfo keys
    assert.equal(isFerretDb({ version: '7.0.14', gitVersion: 'ce59cfc', modules: [], allocator: 'tcmalloc', javascriptEngine: 'mozjs', sysInfo: 'deprecated', versionArray: [7, 0, 14, 0], openssl: {}, buildEnvironment: {}, bits: 64, debug: false, maxBsonObjectSize: 16777216, storageEngines: ['wiredTiger'], ok: 1 }), false);
  });

  it('connects to FerretDB with the small pool, or with the configured one', async () => {
    const db = await connectDatabase(ferret!.uri, 'pool_default', silent);
    try {
      assert.equal(db.connection.getClient().options.maxPoolSize, FERRETDB_MAX_POOL_SIZE);
    } finally {
      await db.close();
    }
    const configured = await connectDatabase(ferret!.uri, 'pool_configured', silent, 7);
    try {
      assert.equal(configured.connection.getClient().options.maxPoolSize, 7);
    } finally {
      await configured.close();
    }
  });

  it('four replicas with 400 updates in flight on one collection all complete', async () => {
    // Each replica connects with the tool's own options; without the cap each would have up to
    // 100 updates in flight and FerretDB stops with about a hundred of them done.
    const replicas = 4;
    const perReplica = 100;
    const uri = ferret!.uri;
    const conns = await Promise.all(Array.from({ length: replicas }, async () =>
      mongoose.createConnection(uri, await connectOptions(uri, 'pool_deadlock')).asPromise()));
    try {
      for (const c of conns) assert.equal(c.getClient().options.maxPoolSize, FERRETDB_MAX_POOL_SIZE);
      const labs = conns.map((c) => c.collection<{ _id: number; n: number }>('labs'));
      await labs[0]!.insertMany(Array.from({ length: replicas * perReplica }, (_, i) => ({ _id: i, n: 0 })));
      const updates = Array.from({ length: replicas * perReplica }, (_, i) => labs[i % replicas]!.updateOne({ _id: i }, { $inc: { n: 1 } }));
      await allOrStall(updates, 60_000);
      assert.equal(await labs[0]!.countDocuments({ n: 1 }), replicas * perReplica);
    } finally {
      // a stalled FerretDB never answers: do not wait for the in-flight operations
      await Promise.all(conns.map((c) => c.close(true)));
    }
  });
});
