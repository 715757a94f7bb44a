/**
 * The lab page's API on the real tool and database: who may see and do what, tickets, server
 * push, steps and the score the server derives from them, and the teacher's course overview.
 */
import assert from 'node:assert/strict';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { SessionTokens, type SessionClaims } from '../../src/auth/session.js';
import { GradeOutbox } from '../../src/store/GradeOutbox.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { TicketService } from '../../src/proxy/tickets.js';

const SECRET_KEY = 'lab-api-test-secret-key-0123456789abcdef';

describe('lab page API', function () {
  this.timeout(60_000);
  let tool: TestTool;
  let rt: LoopbackRuntime;
  const sessions = new SessionTokens(SECRET_KEY);
  const tok: Record<string, string> = {};

  const call = async (who: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(tool.url + path, {
      method, headers: { ...(tok[who] ? { authorization: `Bearer ${tok[who]}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, any> }; // any: JSON from the server, asserted field by field
  };

  /** An instance's event stream, read as text until closed. */
  const eventStream = async (id: string, token: string, headers: Record<string, string> = {}) => {
    const ctrl = new AbortController();
    const res = await fetch(`${tool.url}/api/instances/${id}/events`, { headers: { authorization: `Bearer ${token}`, ...headers }, signal: ctrl.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const s = { text: '', contentType: res.headers.get('content-type'), close: async () => { ctrl.abort(); await read; } };
    const read = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        s.text += value;
      }
    })().catch(() => undefined);
    return s;
  };

  before(async () => {
    rt = await new LoopbackRuntime().listen();
    tool = await startTestTool({ SECRET_KEY }, { runtime: rt, labs: new PageLabs() });
    const users: Record<string, SessionClaims> = {
      alice: { userId: 'alice', role: 'learner', contextId: 'course-1', name: 'Alice' },
      bob: { userId: 'bob', role: 'learner', contextId: 'course-1', name: 'Bob' },
      teacher: { userId: 'teacher', role: 'instructor', contextId: 'course-1', name: 'Teacher' },
      otherTeacher: { userId: 'ot', role: 'instructor', contextId: 'course-2', name: 'Other' },
    };
    for (const [k, c] of Object.entries(users)) tok[k] = await sessions.issue(c);
    await rt.add({ id: 'alicelab', userId: 'alice' });
    await rt.add({ id: 'boblab', userId: 'bob' });
    tool.grades.use({ targets: { targetFor: async (id) => ({ issuer: 'https://lms.example', clientId: 'c1', lineItemUrl: `https://lms.example/li/${id}`, userSub: `sub-${id}` }) } });
    rt.grades = tool.grades;
  });
  after(async () => {
    await tool?.shutdown();
    await rt?.close();
  });

  it('shows the owner their lab: state, machines, time left, instructions with their variables, ticks', async () => {
    const r = await call('alice', 'GET', '/api/instances/alicelab');
    assert.equal(r.status, 200);
    assert.equal(r.body.mode, 'control');
    assert.equal(r.body.state, 'running');
    assert.deepEqual(r.body.machines, [{ name: 'web', channels: ['vnc', 'console'], status: { phase: 'running' } }]);
    assert.ok(r.body.expiresAt);
    assert.equal(r.body.instructions.pages.length, 2);
    assert.match(r.body.instructions.pages[0].html, /Hello Alice/);
    assert.deepEqual(r.body.stepProgress, { ticked: 0, total: 3, percent: 0, score: 0, maxScore: 10 });
  });

  it('lets a teacher of the course watch (view mode), and refuses other learners and other courses', async () => {
    assert.equal((await call('teacher', 'GET', '/api/instances/alicelab')).body.mode, 'view');
    const bob = await call('bob', 'GET', '/api/instances/alicelab');
    assert.equal(bob.status, 403);
    assert.equal(bob.body.error, 'This is not your lab.');
    assert.equal((await call('otherTeacher', 'GET', '/api/instances/alicelab')).status, 403);
    assert.equal((await call('nobody', 'GET', '/api/instances/alicelab')).status, 401);
    assert.equal((await call('alice', 'GET', '/api/instances/nosuchlab')).status, 404);
  });

  it('issues tickets bound to the asker, the machine and the channel; view tickets for teachers', async () => {
    const verify = new TicketService(SECRET_KEY);
    const r = await call('alice', 'POST', '/api/instances/alicelab/tickets', { machine: 'web', channel: 'console' });
    assert.equal(r.status, 200);
    assert.equal(r.body.path, '/ws/console/alicelab/web');
    const c = verify.verify(r.body.ticket);
    assert.deepEqual([c.user, c.instance, c.machine, c.channel, c.mode], ['alice', 'alicelab', 'web', 'console', 'control']);
    assert.ok(c.exp - Date.now() <= 60_000);
    assert.ok(c.sessionExp && c.sessionExp > Date.now());
    const t = await call('teacher', 'POST', '/api/instances/alicelab/tickets', { machine: 'web', channel: 'vnc' });
    assert.equal(verify.verify(t.body.ticket).mode, 'view');
    assert.equal((await call('bob', 'POST', '/api/instances/alicelab/tickets', { machine: 'web', channel: 'vnc' })).status, 403);
    assert.equal((await call('alice', 'POST', '/api/instances/alicelab/tickets', { machine: 'db', channel: 'vnc' })).status, 404);
    assert.equal((await call('alice', 'POST', '/api/instances/alicelab/tickets', { machine: 'web', channel: 'ssh' })).status, 400);
  });

  it('stores ticks on the instance and publishes the score the server derives, Completed/FullyGraded on the last step', async () => {
    let r = await call('alice', 'POST', '/api/instances/alicelab/steps/login', { done: true, score: 10 });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.progress, { ticked: 1, total: 3, percent: 25, score: 2.5, maxScore: 10 });
    assert.ok(((await LabInstance.findById('alicelab').lean())?.steps as Record<string, unknown>).login);
    await call('alice', 'POST', '/api/instances/alicelab/steps/hostname', { done: true });
    r = await call('alice', 'POST', '/api/instances/alicelab/steps/file', { done: true });
    assert.deepEqual(r.body.progress, { ticked: 3, total: 3, percent: 100, score: 10, maxScore: 10 });
    // ticking again changes nothing and sends nothing
    await call('alice', 'POST', '/api/instances/alicelab/steps/file', { done: true });
    const scores = (await GradeOutbox.find({ instanceId: 'alicelab' }).sort({ timestamp: 1 }).lean()).map((d) => d.score);
    assert.deepEqual(scores.map((s) => [s.scoreGiven, s.scoreMaximum, s.activityProgress, s.gradingProgress]), [
      [2.5, 10, 'InProgress', 'FullyGraded'],
      [5, 10, 'InProgress', 'FullyGraded'],
      [10, 10, 'Completed', 'FullyGraded'],
    ]);
  });

  it('refuses ticks from teachers and other learners, and unknown steps', async () => {
    assert.equal((await call('teacher', 'POST', '/api/instances/alicelab/steps/login', { done: false })).status, 403);
    assert.equal((await call('bob', 'POST', '/api/instances/alicelab/steps/login', { done: false })).status, 403);
    assert.equal((await call('alice', 'POST', '/api/instances/alicelab/steps/nope', { done: true })).status, 404);
    assert.equal((await call('alice', 'POST', '/api/instances/alicelab/steps/login', { done: 'yes' })).status, 400);
  });

  it('pushes lab events to the page over an authenticated event stream', async () => {
    const stream = await eventStream('boblab', tok.bob!);
    assert.equal(stream.contentType, 'text/event-stream');
    const text = () => stream.text;
    await waitFor(() => text().includes('"hello"'), 5000, 'hello');
    await call('bob', 'POST', '/api/instances/boblab/pause', {});
    await waitFor(() => text().includes('"state":"paused"'), 5000, 'state event');
    await call('bob', 'POST', '/api/instances/boblab/resume', {});
    await waitFor(() => text().includes('"state":"running"'), 5000, 'resumed');
    await stream.close();
    assert.equal((await fetch(`${tool.url}/api/instances/boblab/events`, { headers: { authorization: `Bearer ${tok.alice}` } })).status, 403);
  });

  it('gives the progress in the language of the launch: the phase, the queue position, the machines booted', async () => {
    tok.carla = await sessions.issue({ userId: 'carla', role: 'learner', contextId: 'course-1', name: 'Carla', locale: 'de-DE' });
    await rt.add({ id: 'carlalab', userId: 'carla', state: 'provisioning' });
    await LabInstance.updateOne({ _id: 'carlalab' }, { $set: { progress: { phase: 'queued', percent: 0, message: 'All lab machines are in use. You are number 2 in the queue; the lab starts by itself.', queuePosition: 2 } } });
    const r = await call('carla', 'GET', '/api/instances/carlalab');
    assert.equal(r.body.progress.message, 'Alle Labormaschinen sind belegt. Sie sind Nummer 2 in der Warteschlange; das Labor startet von selbst.');
    const stream = await eventStream('carlalab', tok.carla, { 'accept-language': 'fr' });
    const text = () => stream.text;
    await waitFor(() => text().includes('"hello"'), 5000, 'hello');
    rt.emit({ type: 'progress', instanceId: 'carlalab', progress: { phase: 'machines-starting', percent: 70, message: 'web booted (1 of 2)', booted: { done: 1, total: 2 } } });
    rt.emit({ type: 'progress', instanceId: 'carlalab', progress: { phase: 'disks', percent: 30, message: 'Disks ready' } });
    await waitFor(() => text().includes('"message":"Festplatten werden vorbereitet"'), 5000, 'the disks phase');
    await stream.close();
    // the launch's locale wins over the browser's
    assert.ok(text().includes('"message":"Maschinen werden gestartet: 1 von 2 hochgefahren"'), text());
    assert.ok(!text().includes('Disks ready') && !text().includes('booted (1 of 2)'), text());
  });

  it('lets a teacher reset or stop a lab but not pause it; learners cannot control others', async () => {
    assert.equal((await call('teacher', 'POST', '/api/instances/boblab/pause', {})).status, 403);
    assert.equal((await call('alice', 'POST', '/api/instances/boblab/stop', {})).status, 403);
    assert.equal((await call('teacher', 'POST', '/api/instances/boblab/reset', { machine: 'web' })).status, 200);
    assert.deepEqual(rt.resets.at(-1), { id: 'boblab', machine: 'web' });
    const r = await call('teacher', 'POST', '/api/instances/boblab/stop', {});
    assert.equal(r.body.state, 'stopped');
    assert.equal((await call('bob', 'POST', '/api/instances/boblab/start', {})).body.state, 'running');
  });

  it('gives teachers the course overview with progress and time left, and refuses learners', async () => {
    const r = await call('teacher', 'GET', '/api/courses/course-1/instances');
    assert.equal(r.status, 200);
    const alice = r.body.instances.find((x: { id: string }) => x.id === 'alicelab');
    assert.deepEqual(alice.steps, { ticked: 3, total: 3, percent: 100 });
    assert.equal(alice.state, 'running');
    assert.ok(alice.secondsLeft > 3000);
    assert.equal((await call('alice', 'GET', '/api/courses/course-1/instances')).status, 403);
    assert.equal((await call('otherTeacher', 'GET', '/api/courses/course-1/instances')).status, 403);
  });

  it('serves the page shells with a CSP and no inline script', async () => {
    for (const path of ['/lab/alicelab', '/course/course-1']) {
      const res = await fetch(tool.url + path);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      const html = await res.text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    }
  });
});
