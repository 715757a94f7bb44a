/**
 * The live classroom on the real tool and database: a student raises and lowers a hand, the teacher
 * sees it in the course overview and on the watched lab's event stream and can lower it; a teacher
 * sends a message to one student or the whole course, pushed to the open lab pages and found by a
 * page opened later. Only the lab's student raises its hand; only teachers of the course send.
 */
import assert from 'node:assert/strict';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { SessionTokens, type SessionClaims } from '../../src/auth/session.js';

const SECRET_KEY = 'classroom-test-secret-key-0123456789abcdef';

describe('live classroom: raised hands and teacher messages', function () {
  this.timeout(60_000);
  let tool: TestTool;
  let rt: LoopbackRuntime;
  const sessions = new SessionTokens(SECRET_KEY);
  const tok: Record<string, string> = {};
  const streams: Array<{ close(): Promise<void> }> = [];

  const call = async (who: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(tool.url + path, {
      method, headers: { authorization: `Bearer ${tok[who]}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, any> }; // any: JSON from the server, asserted field by field
  };

  /** The lab's event stream as `who` sees it, parsed, until the test ends. */
  const events = async (who: string, id: string) => {
    const ctrl = new AbortController();
    const res = await fetch(`${tool.url}/api/instances/${id}/events`, { headers: { authorization: `Bearer ${tok[who]}` }, signal: ctrl.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const s = { list: [] as Array<Record<string, unknown>>, buf: '' };
    const read = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        s.buf += value;
        let i;
        while ((i = s.buf.indexOf('\n\n')) >= 0) {
          const chunk = s.buf.slice(0, i);
          s.buf = s.buf.slice(i + 2);
          if (chunk.startsWith('data: ')) s.list.push(JSON.parse(chunk.slice(6)) as Record<string, unknown>);
        }
      }
    })().catch(() => undefined);
    streams.push({ close: async () => { ctrl.abort(); await read; } });
    await waitFor(() => s.list.some((e) => e.type === 'hello'), 5000, 'hello');
    return s.list;
  };

  before(async () => {
    rt = await new LoopbackRuntime().listen();
    tool = await startTestTool({ SECRET_KEY }, { runtime: rt, labs: new PageLabs() });
    const users: Record<string, SessionClaims> = {
      ana: { userId: 'ana', role: 'learner', contextId: 'room-1', name: 'Ana' },
      ben: { userId: 'ben', role: 'learner', contextId: 'room-1', name: 'Ben' },
      teacher: { userId: 'tina', role: 'instructor', contextId: 'room-1', name: 'Tina Teacher' },
      otherTeacher: { userId: 'otto', role: 'instructor', contextId: 'room-2', name: 'Otto' },
      cleo: { userId: 'cleo', role: 'learner', contextId: 'room-2', name: 'Cleo' },
    };
    for (const [k, c] of Object.entries(users)) tok[k] = await sessions.issue(c);
    await rt.add({ id: 'analab', userId: 'ana', contextId: 'room-1' });
    await rt.add({ id: 'benlab', userId: 'ben', contextId: 'room-1' });
    await rt.add({ id: 'cleolab', userId: 'cleo', contextId: 'room-2' });
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) await s.close();
  });
  after(async () => {
    await tool?.shutdown();
    await rt?.close();
  });

  it('a student raises a hand: pushed to the watching teacher, in the overview, lowered by the teacher', async () => {
    const teacherSees = await events('teacher', 'analab');
    const r = await call('ana', 'POST', '/api/instances/analab/hand', { message: '  ping does not answer  ' });
    assert.equal(r.status, 200);
    assert.equal(r.body.hand.message, 'ping does not answer');
    await waitFor(() => teacherSees.some((e) => e.type === 'hand' && e.raised === true && e.message === 'ping does not answer'), 5000, 'the hand on the teacher\'s stream');

    // raising again replaces the message: one hand per lab
    await call('ana', 'POST', '/api/instances/analab/hand', { message: 'still stuck' });
    const overview = await call('teacher', 'GET', '/api/courses/room-1/instances');
    const rows = overview.body.instances as Array<{ id: string; hand: { message: string; raisedAt: string } | null }>;
    assert.equal(rows.find((x) => x.id === 'analab')?.hand?.message, 'still stuck');
    assert.equal(rows.find((x) => x.id === 'benlab')?.hand, null);
    assert.equal((await call('ana', 'GET', '/api/instances/analab')).body.hand.message, 'still stuck', 'the student\'s page shows it after a reload');

    // nobody else raises a hand on Ana's lab; a teacher does not raise one either
    assert.equal((await call('ben', 'POST', '/api/instances/analab/hand', { message: 'x' })).status, 403);
    assert.equal((await call('teacher', 'POST', '/api/instances/analab/hand', { message: 'x' })).status, 403);
    assert.equal((await call('otherTeacher', 'DELETE', '/api/instances/analab/hand')).status, 403);
    assert.equal((await call('ana', 'POST', '/api/instances/analab/hand', { message: 'x'.repeat(281) })).status, 400);

    assert.equal((await call('teacher', 'DELETE', '/api/instances/analab/hand')).status, 204);
    await waitFor(() => teacherSees.some((e) => e.type === 'hand' && e.raised === false), 5000, 'the lowered hand');
    assert.equal((await call('ana', 'GET', '/api/instances/analab')).body.hand, null);
  });

  it('a teacher messages one student, then the whole course: pushed live, kept for a page opened later, never to another course', async () => {
    const anaSees = await events('ana', 'analab');
    const benSees = await events('ben', 'benlab');
    const cleoSees = await events('cleo', 'cleolab');
    const one = await call('teacher', 'POST', '/api/courses/room-1/messages', { text: 'Ana, look at step 2 again.', instanceId: 'analab' });
    assert.equal(one.status, 201);
    assert.equal(one.body.to, 1);
    await waitFor(() => anaSees.some((e) => e.type === 'message' && e.text === 'Ana, look at step 2 again.' && e.from === 'Tina Teacher' && e.toAll === false), 5000, 'the message to Ana');
    const all = await call('teacher', 'POST', '/api/courses/room-1/messages', { text: 'Ten minutes left.' });
    assert.equal(all.status, 201);
    assert.equal(all.body.to, 2);
    await waitFor(() => benSees.some((e) => e.type === 'message' && e.text === 'Ten minutes left.' && e.toAll === true), 5000, 'the message to everyone, at Ben');
    await waitFor(() => anaSees.some((e) => e.type === 'message' && e.text === 'Ten minutes left.'), 5000, 'the message to everyone, at Ana');
    assert.ok(!benSees.some((e) => e.type === 'message' && e.text === 'Ana, look at step 2 again.'), 'Ben never gets Ana\'s message');
    assert.ok(!cleoSees.some((e) => e.type === 'message'), 'another course gets nothing');

    // a page opened now finds its messages, oldest first
    const view = await call('ben', 'GET', '/api/instances/benlab');
    assert.deepEqual((view.body.messages as Array<{ text: string; toAll: boolean }>).map((m) => [m.text, m.toAll]), [['Ten minutes left.', true]]);
    const anaView = await call('ana', 'GET', '/api/instances/analab');
    assert.deepEqual((anaView.body.messages as Array<{ text: string }>).map((m) => m.text), ['Ana, look at step 2 again.', 'Ten minutes left.']);

    // students, teachers of another course, labs of another course and empty text are refused
    assert.equal((await call('ana', 'POST', '/api/courses/room-1/messages', { text: 'hi all' })).status, 403);
    assert.equal((await call('otherTeacher', 'POST', '/api/courses/room-1/messages', { text: 'hi' })).status, 403);
    assert.equal((await call('teacher', 'POST', '/api/courses/room-1/messages', { text: 'hi', instanceId: 'cleolab' })).status, 400);
    assert.equal((await call('teacher', 'POST', '/api/courses/room-1/messages', { text: '   ' })).status, 400);
    assert.equal((await call('teacher', 'POST', '/api/courses/room-1/messages', { text: 'x'.repeat(1001) })).status, 400);
  });
});
