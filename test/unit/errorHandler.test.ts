/**
 * The one error handler, mounted on a real Express app on port 0: typed errors become their status
 * with the public message (JSON or HTML by Accept), validation problems are rendered, a rate limit
 * carries Retry-After, and an unexpected error is a 500 that shows nothing of its cause.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import express from 'express';
import { pino } from 'pino';
import { errorHandler, notFoundHandler } from '../../src/http/errorHandler.js';
import { BackendFailure, CapacityExhausted, Conflict, Forbidden, NotFound, TooManyRequests, ValidationFailed } from '../../src/errors.js';

describe('error handler', () => {
  let server: http.Server;
  let base: string;
  const logged: Array<Record<string, unknown>> = [];

  before(async () => {
    const app = express();
    const log = pino({ level: 'info' }, { write: (line: string) => { logged.push(JSON.parse(line) as Record<string, unknown>); } });
    app.use((req, _res, next) => { req.log = log; next(); });
    const errors: Record<string, () => Error> = {
      forbidden: () => new Forbidden('user u1 is not in course c1', { publicMessage: 'You cannot open this lab.' }),
      missing: () => new NotFound('no lab x'),
      conflict: () => new Conflict('generation moved'),
      full: () => new CapacityExhausted('no room', { publicMessage: 'Capacity reached.' }),
      backend: () => new BackendFailure('apiserver 500'),
      invalid: () => new ValidationFailed('lab.yaml is invalid', ['lab.yaml:3:5 machines: expected a list, got a string', 'lab.yaml:9:1 title: <b>required</b>']),
      limited: () => new TooManyRequests('10 checks per minute', 2.2, { publicMessage: 'Too many checks; wait a moment.' }),
      bug: () => new TypeError('cannot read properties of undefined (reading secretKey)'),
    };
    app.get('/e/:kind', (req) => { throw errors[req.params.kind]!(); });
    app.post('/json', express.json(), (_req, res) => { res.json({ ok: true }); });
    app.use(notFoundHandler);
    app.use(errorHandler);
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  async function get(path: string, accept = 'application/json'): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await fetch(base + path, { headers: { accept } });
    return { status: res.status, body: await res.text(), headers: res.headers };
  }

  it('maps each typed error to its status with the public message only', async () => {
    const cases: Array<[string, number, string]> = [
      ['forbidden', 403, 'You cannot open this lab.'],
      ['missing', 404, 'no lab x'],
      ['conflict', 409, 'generation moved'],
      ['full', 503, 'Capacity reached.'],
      ['backend', 502, 'apiserver 500'],
    ];
    for (const [kind, status, message] of cases) {
      const r = await get(`/e/${kind}`);
      assert.equal(r.status, status, kind);
      assert.deepEqual(JSON.parse(r.body), { error: message, status }, kind);
    }
  });

  it('renders the problems of a validation failure, in JSON and (escaped) in HTML', async () => {
    const problems = ['lab.yaml:3:5 machines: expected a list, got a string', 'lab.yaml:9:1 title: <b>required</b>'];
    const j = await get('/e/invalid');
    assert.equal(j.status, 400);
    assert.deepEqual(JSON.parse(j.body), { error: 'lab.yaml is invalid', status: 400, problems });
    const h = await get('/e/invalid', 'text/html');
    assert.match(h.headers.get('content-type') ?? '', /text\/html/);
    assert.ok(h.body.includes('<code>lab.yaml:3:5 machines: expected a list, got a string</code>'));
    assert.ok(h.body.includes('&lt;b&gt;required&lt;/b&gt;') && !h.body.includes('<b>required'), 'escaped');
    assert.ok(logged.some((l) => l.msg === 'http.refused' && Array.isArray(l.problems) && (l.problems as string[]).length === 2), 'the problems are logged too');
  });

  it('a rate limit answers 429 with Retry-After in whole seconds', async () => {
    const r = await get('/e/limited');
    assert.deepEqual([r.status, r.headers.get('retry-after'), JSON.parse(r.body).error], [429, '3', 'Too many checks; wait a moment.']);
  });

  it('an unexpected error is a 500 that shows nothing of its cause, and is logged with it', async () => {
    const r = await get('/e/bug');
    assert.deepEqual([r.status, JSON.parse(r.body)], [500, { error: 'Internal error', status: 500 }]);
    assert.ok(!r.body.includes('secretKey'));
    const h = await get('/e/bug', 'text/html');
    assert.ok(!h.body.includes('secretKey') && !h.body.includes('at '), 'no message, no stack');
    assert.ok(logged.some((l) => l.msg === 'http.error' && JSON.stringify(l.err).includes('secretKey')));
  });

  it('keeps the 4xx status of a body parser error, and answers unknown paths with 404', async () => {
    const bad = await fetch(`${base}/json`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: '{"a":' });
    assert.equal(bad.status, 400);
    const none = await get('/nowhere');
    assert.deepEqual([none.status, JSON.parse(none.body)], [404, { error: 'Not found', status: 404 }]);
  });
});
