/**
 * The launch/ticket/check rate limits are counted in the database, so they hold for the whole tool:
 * two tool processes (this one and a child `lab-orchestrator serve`) against one FerretDB give a
 * user the budget once, not once per replica.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestTool, type TestTool } from '../support/tool.js';
import { sharedMongoUri } from '../support/ferret.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { SessionTokens } from '../../src/auth/session.js';
import { TooManyRequests } from '../../src/errors.js';
import { DbSlots, RateSlot } from '../../src/store/RateSlots.js';
import { RateLimit } from '../../src/rateLimits.js';
import { LabInstance } from '../../src/store/LabInstance.js';

const BIN = path.resolve('bin/lab-orchestrator.js');
const SECRET_KEY = `shared-limits-${randomBytes(16).toString('hex')}`;
// the child serves the default database name: both replicas use it
const DB = 'lab_orchestrator';
const LIMITS = { RATE_TICKET_PER_USER: '6', RATE_TICKET_PER_PLATFORM: '9', QEMU_ACCEL: 'tcg', SECRET_KEY, DEV_PLATFORM: 'false' };

function startReplica(dataDir: string): { child: ChildProcess; url: Promise<string>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', HOME: os.homedir(), LAB_MODE: 'demo', PORT: '0', LOG_LEVEL: 'info', LOG_FORMAT: 'json', DATA_DIR: dataDir, MONGODB_URI: sharedMongoUri(), ...LIMITS },
  });
  child.stderr!.resume();
  const url = new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const line = buf.split('\n').find((l) => l.includes('"msg":"tool.listening"'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`the second replica exited (${code}) before listening`)));
  });
  return { child, url, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}

describe('rate limits shared by two tool processes (one FerretDB)', function () {
  this.timeout(90_000);
  let a: TestTool;
  let runtime: LoopbackRuntime;
  let replica: ReturnType<typeof startReplica>;
  let bUrl: string;
  let dataDir: string;

  before(async () => {
    runtime = await new LoopbackRuntime().listen();
    a = await startTestTool(LIMITS, { dbName: DB, runtime });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-replica-'));
    replica = startReplica(dataDir);
    bUrl = await replica.url;
  });
  after(async () => {
    if (replica?.child.exitCode === null) replica.child.kill('SIGTERM');
    await replica?.exited;
    await a?.shutdown();
    await runtime?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a user\'s and a platform\'s ticket budgets are counted once across both replicas', async () => {
    const lab = (await a.labs.list()).find((l) => l.id === 'two-host-network');
    assert.ok(lab, 'the demo catalog has two-host-network');
    const sessions = new SessionTokens(SECRET_KEY);
    const platform = `p-${randomBytes(4).toString('hex')}`;
    const open = async (user: string) => {
      const id = `i-${randomBytes(6).toString('hex')}`;
      await runtime.add({ id, userId: user, labId: lab.id, machines: ['alpha', 'beta'] });
      await LabInstance.updateOne({ _id: id }, { $set: { labVersion: lab.version } });
      return { id, token: await sessions.issue({ userId: user, role: 'learner', contextId: 'course-1', platformId: platform }) };
    };
    const ticket = (base: string, s: { id: string; token: string }) => fetch(`${base}/api/instances/${s.id}/tickets`, {
      method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ machine: 'alpha', channel: 'console' }),
    });
    const ann = await open(`ann-${platform}`);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await ticket(i % 2 ? bUrl : a.url, ann)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200], 'six tickets, three on each replica');
    for (const base of [a.url, bUrl]) {
      const r = await ticket(base, ann);
      assert.equal(r.status, 429, `the seventh on ${base === a.url ? 'this' : 'the other'} replica`);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    }
    // the platform's budget (9) is shared too: ann used 6, bob gets 3 across both, the fourth is refused
    const bob = await open(`bob-${platform}`);
    assert.deepEqual([(await ticket(bUrl, bob)).status, (await ticket(a.url, bob)).status, (await ticket(bUrl, bob)).status], [200, 200, 200]);
    const over = await ticket(a.url, bob);
    assert.equal(over.status, 429);
    assert.match(((await over.json()) as { error: string }).error, /from this platform/);
    // one slot row per claimed use (the platform's 9 over one or two windows); the refusals left none
    const slots = await RateSlot.find({ _id: { $regex: `^ticket:platform\n${platform}@[0-9]+#` } }).lean();
    assert.equal(slots.length, 9, 'counted in the database; refusals claim nothing');
  });

  it('uses racing on two replicas never pass together beyond the limit (exact slots, and slots of several uses)', async () => {
    for (const [limit, uses] of [[6, 30], [600, 800]] as const) {
      const key = `race-${randomBytes(4).toString('hex')}`;
      const [x, y] = [new RateLimit(limit, 'tests', new DbSlots(), 'race'), new RateLimit(limit, 'tests', new DbSlots(), 'race')];
      const t0 = Date.now();
      const window = (t: number) => t - (t % 60_000);
      const all = await Promise.allSettled(Array.from({ length: uses }, (_, i) => (i % 2 ? x : y).take(key)));
      const passed = all.filter((r) => r.status === 'fulfilled').length;
      const refused = all.filter((r) => r.status === 'rejected' && r.reason instanceof TooManyRequests).length;
      assert.equal(passed + refused, uses, 'every refusal is a 429');
      // a window edge in the middle can only lower what passes (the previous window still counts)
      assert.ok(passed <= limit, `limit ${limit}: ${passed} passed`);
      // all but the unspent rest of each replica's last slot (a window edge in the race only lowers it)
      if (window(t0) === window(Date.now())) assert.ok(passed >= limit - 2 * (x.perSlot - 1), `limit ${limit}: only ${passed} passed`);
      process.stderr.write(`      [limits] ${uses} racing uses of a ${limit}/min limit on two replicas: ${passed} passed in ${Date.now() - t0} ms\n`);
    }
  });
});
