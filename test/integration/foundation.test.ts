import assert from 'node:assert/strict';
import express from 'express';
import { startTestTool, waitFor, pidAlive, type TestTool } from '../support/tool.js';

describe('foundation: embedded database', function () {
  this.timeout(90_000);
  let tool: TestTool | undefined;
  afterEach(async () => {
    await tool?.shutdown('test');
    tool = undefined;
  });

  it('starts FerretDB, keeps data across a tool restart, and stops it on shutdown', async () => {
    tool = await startTestTool({}, { embedded: true, dbName: 'persist' });
    const pid = tool.embeddedMongo?.pid;
    assert.ok(pidAlive(pid), 'FerretDB child runs');
    const res = await fetch(`${tool.url}/readyz`);
    assert.equal(res.status, 200);
    await tool.db.connection.collection('probe').insertOne({ _id: 'k' as never, v: 42 });
    const dataDir = tool.dataDir;
    await tool.shutdown('restart');
    tool = undefined;
    assert.equal(pidAlive(pid), false, 'FerretDB child gone after shutdown');

    tool = await startTestTool({ DATA_DIR: dataDir }, { embedded: true, dbName: 'persist' });
    const doc = await tool.db.connection.collection('probe').findOne({ _id: 'k' as never });
    assert.equal(doc?.v, 42);
  });

  it('turns /readyz 503 when the database is killed and 200 when it returns', async () => {
    tool = await startTestTool({}, { embedded: true });
    assert.equal((await fetch(`${tool.url}/readyz`)).status, 200);
    const pid = tool.embeddedMongo!.pid!;
    process.kill(pid, 'SIGKILL');
    const t = tool;
    await waitFor(async () => (await fetch(`${t.url}/readyz`)).status === 503, 15_000, '/readyz 503');
    const body = (await (await fetch(`${t.url}/readyz`)).json()) as { checks: Record<string, boolean> };
    assert.equal(body.checks.database, false);
    await waitFor(async () => (await fetch(`${t.url}/readyz`)).status === 200, 30_000, '/readyz 200 again');
    assert.notEqual(t.embeddedMongo!.pid, pid, 'a new FerretDB process serves');
  });
});

describe('foundation: HTTP server', function () {
  this.timeout(30_000);

  it('answers /healthz and sets a request id', async () => {
    const tool = await startTestTool();
    try {
      const res = await fetch(`${tool.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-request-id'), 'abc-123');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      const line = tool.logs().find((l) => l.msg === 'http.request' && l.reqId === 'abc-123');
      assert.ok(line, 'access log carries the request id');
    } finally {
      await tool.shutdown();
    }
  });

  it('returns a JSON 404 without a stack', async () => {
    const tool = await startTestTool();
    try {
      const res = await fetch(`${tool.url}/nope`, { headers: { accept: 'application/json' } });
      assert.equal(res.status, 404);
      assert.deepEqual(await res.json(), { error: 'Not found', status: 404 });
    } finally {
      await tool.shutdown();
    }
  });

  it('lets an in-flight request finish on shutdown and refuses new connections', async () => {
    const slow = express.Router();
    let release!: () => void;
    const started = new Promise<void>((r) => {
      slow.get('/slow', (_req, res) => {
        r();
        release = () => res.json({ done: true });
      });
    });
    const tool = await startTestTool({}, { extraMounts: [{ path: '/t', router: slow }] });
    const inflight = fetch(`${tool.url}/t/slow`);
    await started;
    const stopping = tool.shutdown('test');
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(fetch(`${tool.url}/healthz`), 'new connections refused while draining');
    release();
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { done: true });
    await stopping;
  });
});
