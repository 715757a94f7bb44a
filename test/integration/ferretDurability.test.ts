/**
 * The embedded FerretDB's SQLite runs with synchronous=normal by default (FERRETDB_SYNCHRONOUS): the
 * write-ahead log is synced at checkpoints, not at each commit. What that keeps: every write
 * FerretDB acknowledged is there after FerretDB is killed with SIGKILL and started again on the same
 * files (EmbeddedMongo restarts it by itself). Both settings keep that; `full` also survives a power
 * loss, which a test cannot make. The binary refuses any other setting by name.
 * A private FerretDB per test: a killed one must not take the run's shared FerretDB with it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import pino from 'pino';
import { EmbeddedMongo } from '../../src/db/EmbeddedMongo.js';
import { ferretBin } from '../support/ferret.js';

const silent = pino({ level: 'silent' });
const { MongoClient } = mongoose.mongo;

for (const synchronous of ['normal', 'full'] as const) {
  describe(`embedded FerretDB, synchronous=${synchronous}`, function () {
    this.timeout(60_000);
    let dir = '';
    let mongo: EmbeddedMongo;
    let client: InstanceType<typeof MongoClient> | undefined;

    beforeEach(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-ferret-sync-'));
      mongo = new EmbeddedMongo({ bin: ferretBin(), dataDir: dir, log: silent, synchronous });
      client = new MongoClient(await mongo.start(), { serverSelectionTimeoutMS: 20_000 });
    });
    afterEach(async () => {
      await client?.close(true);
      await mongo.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('keeps every acknowledged write when FerretDB is killed with SIGKILL', async () => {
      const c = client!.db('durable').collection<{ _id: string; n: number }>('writes');
      for (let i = 0; i < 200; i++) await c.insertOne({ _id: `w${i}`, n: i });
      await c.updateOne({ _id: 'w7' }, { $set: { n: -7 } });
      const pid = mongo.pid!;
      process.kill(pid, 'SIGKILL');
      // EmbeddedMongo starts it again on the same port and files; the driver reconnects by itself
      let count = -1;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
        try { count = await c.countDocuments({}); break; } catch { await new Promise((r) => setTimeout(r, 200)); }
      }
      assert.notEqual(mongo.pid, pid, 'a new FerretDB process answers');
      assert.equal(count, 200);
      assert.equal((await c.findOne({ _id: 'w7' }))?.n, -7);
    });
  });
}

describe('embedded FerretDB binary', () => {
  it('refuses a synchronous setting other than normal or full, naming the flag', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-ferret-bad-'));
    const child = spawn(ferretBin(), ['-listen', '127.0.0.1:0', '-data-dir', dir, '-synchronous', 'off']);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    fs.rmSync(dir, { recursive: true, force: true });
    assert.notEqual(code, 0);
    assert.match(stderr, /-synchronous: expected normal or full, got "off"/);
  });
});
