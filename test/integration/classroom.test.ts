/**
 * The live classroom on the real tool and database: a student raises and lowers a hand, the teacher
 * sees it in the course overview and on the watched lab's event stream and can lower it; a teacher
 * sends a message to one student or the whole course, pushed to the open lab pages and found by a
 * page opened later. Only the lab's student raises its hand; only teachers of the course send.
 * A teacher takes control of a lab only after its student accepts: the teacher's sockets may then
 * type into the machine, and close when the take-over ends; every take-over is logged for the student.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { SessionTokens, type SessionClaims } from '../../src/auth/session.js';
import { TicketService } from '../../src/proxy/tickets.js';
import { LabInstance } from '../../src/store/LabInstance.js';

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

  /** A console socket through the tool's proxy with a ticket `who` asked the API for. */
  const consoleSocket = async (who: string, id: string) => {
    const t = await call(who, 'POST', `/api/instances/${id}/tickets`, { machine: 'web', channel: 'console' });
    assert.equal(t.status, 200);
    const ws = new WebSocket(tool.url.replace(/^http/, 'ws') + t.body.path, ['lab.v1', `ticket.${t.body.ticket}`], { headers: { origin: new URL(tool.publicUrl).origin } });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    streams.push({ close: async () => { ws.terminate(); } });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    return { ws, mode: t.body.mode as string, closed };
  };
  /** Everything the machine's console received so far (the loopback runtime records it). */
  const received = (id: string) => Buffer.concat(rt.connections.filter((c) => c.instance === id && c.channel === 'console').flatMap((c) => c.received)).toString();

  it('a teacher takes control only after the student accepts: typing reaches the machine, ending it closes the teacher\'s socket, the student sees the log', async () => {
    const studentSees = await events('ben', 'benlab');
    // asked, not yet accepted: still watching only
    const asked = await call('teacher', 'POST', '/api/instances/benlab/takeover', {});
    assert.equal(asked.status, 200);
    assert.equal(asked.body.takeover.state, 'requested');
    await waitFor(() => studentSees.some((e) => e.type === 'takeover' && e.state === 'requested' && e.name === 'Tina Teacher'), 5000, 'the request on the student\'s page');
    assert.equal((await consoleSocket('teacher', 'benlab')).mode, 'view');
    // only the student answers; a student cannot ask to take over their own lab
    assert.equal((await call('teacher', 'POST', '/api/instances/benlab/takeover/answer', { accept: true })).status, 403);
    assert.equal((await call('ben', 'POST', '/api/instances/benlab/takeover', {})).status, 403);
    assert.equal((await call('otherTeacher', 'POST', '/api/instances/benlab/takeover', {})).status, 403);
    // declined: nothing changes
    assert.equal((await call('ben', 'POST', '/api/instances/benlab/takeover/answer', { accept: false })).status, 200);
    assert.equal((await call('ben', 'GET', '/api/instances/benlab')).body.takeover, null);
    assert.equal((await call('ben', 'POST', '/api/instances/benlab/takeover/answer', { accept: true })).status, 409, 'no request left to accept');

    await call('teacher', 'POST', '/api/instances/benlab/takeover', {});
    const accepted = await call('ben', 'POST', '/api/instances/benlab/takeover/answer', { accept: true });
    assert.equal(accepted.body.takeover.state, 'active');
    const sock = await consoleSocket('teacher', 'benlab');
    assert.equal(sock.mode, 'control');
    sock.ws.send(Buffer.from('echo typed-by-teacher\r'));
    await waitFor(() => received('benlab').includes('echo typed-by-teacher'), 5000, 'the teacher\'s typing at the machine');
    assert.equal((await call('otherTeacher', 'GET', '/api/instances/benlab')).status, 403);

    // the student ends it: the teacher's controlling socket closes with the reason, new tickets watch only
    assert.equal((await call('ben', 'DELETE', '/api/instances/benlab/takeover')).status, 204);
    assert.deepEqual(await sock.closed, { code: 4005, reason: 'control given back' });
    assert.equal((await consoleSocket('teacher', 'benlab')).mode, 'view');
    await waitFor(() => studentSees.some((e) => e.type === 'takeover' && e.state === 'ended'), 5000, 'the end on the student\'s page');
    const log = (await call('ben', 'GET', '/api/instances/benlab')).body.takeovers as Array<{ name: string; from: string; to: string | null }>;
    assert.equal(log.length, 1);
    assert.equal(log[0]!.name, 'Tina Teacher');
    assert.ok(log[0]!.to && new Date(log[0]!.to) >= new Date(log[0]!.from), 'from and until');
  });

  it('a control ticket for someone else\'s lab is refused at the proxy without an accepted take-over', async () => {
    // a ticket the API never issued in control mode for a teacher (signed with the tool's key, as a forged page would need)
    const { ticket } = new TicketService(SECRET_KEY).issue({ user: 'tina', instance: 'analab', machine: 'web', channel: 'console', mode: 'control' });
    const ws = new WebSocket(`${tool.url.replace(/^http/, 'ws')}/ws/console/analab/web`, ['lab.v1', `ticket.${ticket}`], { headers: { origin: new URL(tool.publicUrl).origin } });
    streams.push({ close: async () => { ws.terminate(); } });
    const closed = await new Promise<number>((r) => ws.once('close', (code) => r(code)));
    assert.equal(closed, 4403);
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

  it('the overview says who may be stuck: a raised hand, or a running lab without progress for 10 minutes', async () => {
    const ago = (min: number) => new Date(Date.now() - min * 60_000);
    await rt.add({ id: 'dora-lab', userId: 'dora', contextId: 'room-3' });
    await rt.add({ id: 'eli-lab', userId: 'eli', contextId: 'room-3' });
    await rt.add({ id: 'finn-lab', userId: 'finn', contextId: 'room-3' });
    await rt.add({ id: 'gus-lab', userId: 'gus', contextId: 'room-3' });
    // started 25 min ago, nothing done; started 25 min ago, a step ticked 3 min ago; fresh; paused long ago
    await LabInstance.updateOne({ _id: 'dora-lab' }, { $set: { startedAt: ago(25) } });
    await LabInstance.updateOne({ _id: 'eli-lab' }, { $set: { startedAt: ago(25), steps: { login: ago(3) } } });
    await LabInstance.updateOne({ _id: 'gus-lab' }, { $set: { startedAt: ago(60), state: 'paused' } });
    tok.finn = await sessions.issue({ userId: 'finn', role: 'learner', contextId: 'room-3', name: 'Finn' });
    tok.room3 = await sessions.issue({ userId: 'tina', role: 'instructor', contextId: 'room-3', name: 'Tina Teacher' });
    await call('finn', 'POST', '/api/instances/finn-lab/hand', { message: 'help' });
    const rows = (await call('room3', 'GET', '/api/courses/room-3/instances')).body.instances as Array<{ id: string; stuck: { reason: string; sinceMs: number } | null }>;
    const stuck = Object.fromEntries(rows.map((r) => [r.id, r.stuck?.reason ?? null]));
    assert.deepEqual(stuck, { 'dora-lab': 'no-progress', 'eli-lab': null, 'finn-lab': 'hand', 'gus-lab': null });
    const dora = rows.find((r) => r.id === 'dora-lab')!.stuck!;
    assert.ok(dora.sinceMs >= 25 * 60_000 && dora.sinceMs < 26 * 60_000, `since the start: ${dora.sinceMs} ms`);
  });


  it('pushes to the course overview which lab changed (a hand, a state), to teachers of that course only', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${tool.url}/api/courses/room-1/events`, { headers: { authorization: `Bearer ${tok.teacher}` }, signal: ctrl.signal });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const read = (async () => { for (;;) { const { value, done } = await reader.read(); if (done) return; text += value; } })().catch(() => undefined);
    streams.push({ close: async () => { ctrl.abort(); await read; } });
    await waitFor(() => text.includes('"hello"'), 5000, 'hello');
    await call('ben', 'POST', '/api/instances/benlab/hand', { message: 'stuck' });
    await waitFor(() => text.includes('{"type":"hand","instanceId":"benlab"}'), 5000, 'the hand on the course stream');
    await rt.pause('benlab');
    await waitFor(() => text.includes('{"type":"state","instanceId":"benlab"}'), 5000, 'the state on the course stream');
    assert.ok(!text.includes('stuck'), 'which lab changed, never what (the overview reloads it with its rules)');
    assert.ok(!text.includes('cleolab'), 'never another course\'s labs');
    assert.equal((await fetch(`${tool.url}/api/courses/room-1/events`, { headers: { authorization: `Bearer ${tok.otherTeacher}` } })).status, 403);
    assert.equal((await fetch(`${tool.url}/api/courses/room-1/events`, { headers: { authorization: `Bearer ${tok.ben}` } })).status, 403);
    await rt.resume('benlab');
  });


  it('shows the teacher the last lines of a console the student has open, from what the proxy already carries', async () => {
    const overviewConsole = async () => ((await call('teacher', 'GET', '/api/courses/room-1/instances')).body.instances as Array<{ id: string; console: { machine: string; lines: string[] } | null }>).find((r) => r.id === 'analab')!.console;
    assert.equal(await overviewConsole(), null, 'no console open: nothing (and nothing is dialed for it)');
    const before = rt.connections.length;
    await consoleSocket('ana', 'analab');
    await waitFor(() => rt.connections.slice(before).some((c) => c.instance === 'analab' && c.channel === 'console'), 5000, 'the machine side of the console');
    const machine = rt.connections.slice(before).find((c) => c.instance === 'analab' && c.channel === 'console')!;
    machine.socket.write('\x1b[1mana@alpha\x1b[0m:~$ ping -c1 beta\r\n1 packets transmitted, 0 received\r\nana@alpha:~$ ');
    await waitFor(async () => (await overviewConsole())?.lines.at(-1) === 'ana@alpha:~$', 5000, 'the console lines in the overview');
    assert.deepEqual(await overviewConsole(), { machine: 'web', lines: ['ana@alpha:~$ ping -c1 beta', '1 packets transmitted, 0 received', 'ana@alpha:~$'] });
    assert.equal(rt.connections.length, before + 1, 'the overview opened no console of its own');
  });

});
