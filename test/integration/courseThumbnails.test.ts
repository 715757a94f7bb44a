/**
 * The teacher's glance at each lab, on the real tool and database with a loopback runtime standing
 * for the backend: a screen thumbnail (a real PNG, scaled down) only for teachers of the course,
 * taken only when a teacher asks, at most once per interval per machine and a few at a time; and
 * the last console lines from the backend's console history when no console is open.
 */
import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { PageLabs } from '../support/pageLabs.js';
import { SessionTokens, type SessionClaims } from '../../src/auth/session.js';
import { decodePng, THUMBNAIL_WIDTH } from '../../src/backends/thumbnail.js';
import { THUMBNAIL_MAX_CONCURRENT } from '../../src/labs/Thumbnails.js';

const SECRET_KEY = 'thumbnail-test-secret-key-0123456789abcdef';

describe('course overview: screen thumbnails and console tails', function () {
  this.timeout(60_000);
  let tool: TestTool;
  let rt: LoopbackRuntime;
  const sessions = new SessionTokens(SECRET_KEY);
  const tok: Record<string, string> = {};

  const get = (who: string | null, path: string) => fetch(tool.url + path, { headers: who ? { authorization: `Bearer ${tok[who]}` } : {} });
  const screen = (who: string | null, course: string, id: string) => get(who, `/api/courses/${course}/instances/${id}/screen`);

  before(async () => {
    rt = await new LoopbackRuntime().listen();
    tool = await startTestTool({ SECRET_KEY }, { runtime: rt, labs: new PageLabs() });
    const users: Record<string, SessionClaims> = {
      ana: { userId: 'ana', role: 'learner', contextId: 'room-1', name: 'Ana' },
      teacher: { userId: 'tina', role: 'instructor', contextId: 'room-1', name: 'Tina Teacher' },
      otherTeacher: { userId: 'otto', role: 'instructor', contextId: 'room-2', name: 'Otto' },
    };
    for (const [k, c] of Object.entries(users)) tok[k] = await sessions.issue(c);
    await rt.add({ id: 'analab', userId: 'ana', contextId: 'room-1' });
    await rt.add({ id: 'stoppedlab', userId: 'bo', contextId: 'room-1', state: 'stopped' });
    await rt.add({ id: 'ottolab', userId: 'cy', contextId: 'room-2' });
    for (let i = 0; i < 12; i++) await rt.add({ id: `many${i}`, userId: `u${i}`, contextId: 'room-1' });
  });
  after(async () => {
    await tool?.shutdown();
    await rt?.close();
  });

  it('only teachers of the course get a thumbnail: a real PNG, scaled down to the card width', async () => {
    const res = await screen('teacher', 'room-1', 'analab');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(res.headers.get('x-machine'), 'web');
    const img = decodePng(Buffer.from(await res.arrayBuffer()));
    assert.deepEqual([img.width, img.height], [THUMBNAIL_WIDTH, 240], '1024x768 scaled to 320x240');

    // the student is refused even for their own lab (their page shows the live desktop)
    assert.equal((await screen('ana', 'room-1', 'analab')).status, 403);
    // a teacher of another course, through either course's path
    assert.equal((await screen('otherTeacher', 'room-1', 'analab')).status, 403);
    assert.equal((await screen('otherTeacher', 'room-2', 'analab')).status, 404);
    assert.equal((await screen(null, 'room-1', 'analab')).status, 401);
    // a lab that does not run has no screen to show
    assert.equal((await screen('teacher', 'room-1', 'stoppedlab')).status, 409);
    assert.deepEqual(rt.screenshots.map((s) => s.id), ['analab'], 'refused requests took no screenshot');
  });

  it('nothing is taken while no teacher asks; asking again within the interval reuses the image; a few at a time', async () => {
    const before = rt.screenshots.length;
    // the overview itself, loaded again and again, takes no screenshot
    for (let i = 0; i < 3; i++) assert.equal((await get('teacher', '/api/courses/room-1/instances')).status, 200);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(rt.screenshots.length, before, 'no screenshot without a thumbnail request');

    // a second request for the same machine within the interval: the same image, no new screenshot
    const a = await screen('teacher', 'room-1', 'many0');
    const b = await screen('teacher', 'room-1', 'many0');
    assert.equal(a.headers.get('x-taken-at'), b.headers.get('x-taken-at'));
    assert.equal(rt.screenshots.length, before + 1);

    // twelve labs at once: at most THUMBNAIL_MAX_CONCURRENT screenshots run together
    rt.screenshotDelayMs = 200;
    rt.maxConcurrentScreenshots = 0;
    const all = await Promise.all(Array.from({ length: 11 }, (_, i) => screen('teacher', 'room-1', `many${i + 1}`)));
    rt.screenshotDelayMs = 0;
    assert.ok(all.every((r) => r.status === 200));
    assert.equal(rt.screenshots.length, before + 12);
    assert.equal(rt.maxConcurrentScreenshots, THUMBNAIL_MAX_CONCURRENT);
  });

  it('the overview shows the last console lines from the backend\'s console history, with no console open', async () => {
    rt.consoleLogs.set('analab/web', Buffer.from('Welcome to lab-tiny\r\nweb login: student\r\nPassword: \r\n$ ls /tmp\r\nnotes.txt\r\n\x1b[1;32m$\x1b[0m '));
    const res = await get('teacher', '/api/courses/room-1/instances');
    const rows = ((await res.json()) as { instances: Array<{ id: string; console: { machine: string; lines: string[] } | null }> }).instances;
    const ana = rows.find((r) => r.id === 'analab');
    assert.deepEqual(ana?.console, { machine: 'web', lines: ['Welcome to lab-tiny', 'web login: student', 'Password:', '$ ls /tmp', 'notes.txt', '$'] });
    assert.equal(rows.find((r) => r.id === 'stoppedlab')?.console, null, 'a stopped lab\'s log is not read');
    assert.ok(!rt.historyReads.some((h) => h.id === 'stoppedlab'));
  });
});
