/**
 * KubeClient's waits end with it: a request retrying against an API server that keeps answering 503
 * (and requests queued on the client's rate limit) stop waiting as soon as the client is closed,
 * so nothing runs on after a backend stops; hundreds waiting at once raise no listener warning.
 * Its rate limit lets its burst go at once and never sends faster than burst plus the refill.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { KubeClient } from '../../src/backends/kubevirt/client.js';
import pino from 'pino';


/** An HTTP server on port 0 answering with `handler`, and a kubeconfig pointing at it. */
async function fakeApiServer(handler: http.RequestListener): Promise<{ kubeconfig: string; close(): void }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-kubeclient-'));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: t',
    'clusters: [{ name: t, cluster: { server: "' + url + '", insecure-skip-tls-verify: true } }]',
    'users: [{ name: t, user: { token: x } }]',
    'contexts: [{ name: t, context: { cluster: t, user: t } }]', '',
  ].join('\n'));
  return {
    kubeconfig,
    close() {
      server.closeAllConnections();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('KubeClient close()', () => {
  let api: Awaited<ReturnType<typeof fakeApiServer>>;
  let hits = 0;

  before(async () => {
    api = await fakeApiServer((_req, res) => {
      hits++;
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '30' });
      res.end(JSON.stringify({ kind: 'Status', reason: 'ServiceUnavailable', message: 'busy' }));
    });
  });
  after(() => api.close());

  it('ends every retry wait at once, with an error, and sends none again', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const client = new KubeClient({ kubeconfigPath: api.kubeconfig, log: pino({ level: 'silent' }), qps: 50, burst: 100 });
      hits = 0;
      // 150: more than the rate limit's burst (100), so some wait for a token rather than a retry
      const pending = Array.from({ length: 150 }, (_, i) => client.request('GET', `/api/v1/namespaces/n${i}`).then(() => 'answered', (e: Error) => e));
      const t0 = Date.now();
      // all asked once (the last 50 after waiting for the rate limit's tokens), all now waiting 30 s to retry
      while (hits < 150 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      assert.equal(hits, 150, 'each request was sent once');
      await new Promise((r) => setTimeout(r, 100));
      client.close();
      const closedAt = Date.now();
      const outcomes = await Promise.all(pending);
      const ms = Date.now() - closedAt;
      assert.ok(ms < 1000, `all 150 ended ${ms} ms after close (each retry waited for Retry-After: 30 s)`);
      for (const o of outcomes) assert.ok(o instanceof Error, `each ends with an error, not an answer: ${String(o)}`);
      assert.equal(hits, 150, 'none was sent again');
      assert.deepEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), []);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('KubeClient rate limit', () => {
  let api: Awaited<ReturnType<typeof fakeApiServer>>;
  const sent: number[] = [];

  before(async () => {
    api = await fakeApiServer((_req, res) => {
      sent.push(Date.now());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"kind":"Namespace"}');
    });
  });
  after(() => api.close());

  it('lets `burst` requests go at once and the rest at `qps`, never faster', async () => {
    const client = new KubeClient({ kubeconfigPath: api.kubeconfig, log: pino({ level: 'silent' }), qps: 50, burst: 120 });
    try {
      const t0 = Date.now();
      await Promise.all(Array.from({ length: 140 }, (_, i) => client.request('GET', `/api/v1/namespaces/n${i}`)));
      assert.equal(sent.length, 140);
      // by any moment, at most the burst plus what the rate refilled since the start went out
      for (const [i, at] of sent.entries()) assert.ok(i + 1 <= 120 + Math.ceil(((at - t0) / 1000) * 50) + 1, `request ${i + 1} went out ${at - t0} ms after the start`);
      // the 20 past the burst waited for tokens: 20 at 50/s take 400 ms
      assert.ok(sent.at(-1)! - t0 >= 380, `the last went out ${sent.at(-1)! - t0} ms after the start`);
    } finally {
      client.close();
    }
  });
});
