/**
 * Tenancy: three independent platforms (own key pairs, own HTTP servers) on one tool, and every
 * cross-tenant request a school's administrator or teacher could try. The operator is ADMIN_TOKEN
 * and one user of platform C named in OPERATOR_USERS.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { LabDefinitions } from '../../src/labs/contracts.js';
import { Platform } from '../../src/store/Platform.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { fakeLabs } from '../support/fakeLabs.js';
import { ROLE, startMiniPlatform, type MiniLaunch, type MiniPlatform } from '../support/miniPlatform.js';
import { folderEntries, tar } from '../support/tarWriter.js';
import { startTestTool, type TestTool } from '../support/tool.js';

const ADMIN = 'operator-token-0123456789';

/** linux-basics as an archive whose top folder (and so the lab id) is `id`. */
const labArchive = (id: string): Buffer => gzipSync(tar(folderEntries(path.resolve('templates/linux-basics'), id)));

describe('tenancy: one tool, three schools', function () {
  this.timeout(180_000);
  let tool: TestTool;
  let templates: string;
  let A: MiniPlatform;
  let B: MiniPlatform;
  let C: MiniPlatform;
  const s: Record<string, string> = {};

  const api = (method: string, p: string, token: string | undefined, body?: Buffer | object) =>
    fetch(`${tool.url}${p}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        accept: 'application/json',
        ...(Buffer.isBuffer(body) ? { 'content-type': 'application/gzip' } : body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
    });
  async function launch(p: MiniPlatform, l: MiniLaunch) {
    const r = await p.launch(tool.lti.urls, l);
    return { r, session: r.location ? new URL(r.location).hash.replace('#session=', '') : undefined };
  }
  async function sessionOf(p: MiniPlatform, l: MiniLaunch): Promise<string> {
    const { r, session } = await launch(p, l);
    assert.equal(r.status, 302, `${l.sub}: ${r.status} ${r.body.slice(0, 300)}`);
    return session!;
  }
  const labIds = async (token: string | undefined, p = '/api/admin/labs') => {
    const res = await api('GET', p, token);
    assert.equal(res.status, 200, await res.clone().text());
    const b = (await res.json()) as { versions?: Array<{ id: string }>; labs?: Array<{ id: string }> };
    return [...new Set((b.versions ?? b.labs ?? []).map((v) => v.id))].sort();
  };
  const catalogOf = async (p: MiniPlatform, sub: string) => {
    const r = await p.launch(tool.lti.urls, { sub, roles: [ROLE.instructor], deepLink: true });
    assert.equal(r.status, 200, r.body.slice(0, 300));
    return ['linux-basics', 'lab-a', 'lab-b'].filter((id) => r.body.includes(`value="${id}"`) || r.body.includes(`data-lab="${id}"`));
  };

  before(async () => {
    templates = fs.mkdtempSync(path.join(os.tmpdir(), 'tenancy-'));
    fs.cpSync(path.resolve('templates/linux-basics'), path.join(templates, 'linux-basics'), { recursive: true });
    [A, B, C] = await Promise.all([startMiniPlatform('a'), startMiniPlatform('b'), startMiniPlatform('c')]);
    // the real catalog, with a runtime that starts nothing
    const holder: { labs?: LabDefinitions } = {};
    const labs = new Proxy({}, {
      get: (_t, k: string) => (...a: unknown[]) => (holder.labs as unknown as Record<string, (...x: unknown[]) => unknown>)[k]!(...a),
    }) as LabDefinitions;
    tool = await startTestTool({ ADMIN_TOKEN: ADMIN, TEMPLATES_DIR: templates, OPERATOR_USERS: `${C.issuer}#operator-1` }, { labs, runtime: fakeLabs().runtime });
    holder.labs = tool.labs;
    for (const p of [A, B, C]) assert.equal((await api('POST', '/api/admin/platforms', ADMIN, p.registration)).status, 201);
    s.adminA = await sessionOf(A, { sub: 'admin-a', roles: [ROLE.institutionAdmin, ROLE.instructor] });
    s.courseAdminA = await sessionOf(A, { sub: 'course-admin-a', roles: [ROLE.courseAdmin] });
    s.adminB = await sessionOf(B, { sub: 'admin-b', roles: [ROLE.systemAdmin] });
    s.operatorC = await sessionOf(C, { sub: 'operator-1', roles: [ROLE.learner], labId: 'linux-basics' });
  });
  after(async () => {
    await tool?.shutdown();
    await Promise.all([A, B, C].map((p) => p?.close()));
    fs.rmSync(templates, { recursive: true, force: true });
  });

  it('a course-level Administrator is a teacher of that course, never an administrator of anything', async () => {
    const { r } = await launch(A, { sub: 'course-admin-a', roles: [ROLE.courseAdmin] });
    assert.match(new URL(r.location!).pathname, /^\/course\//);
    for (const [method, p] of [['GET', '/api/admin/labs'], ['GET', '/api/admin/platforms'], ['GET', '/api/admin/lti'], ['DELETE', '/api/admin/labs/linux-basics']] as const) {
      assert.equal((await api(method, p, s.courseAdminA)).status, 403, `${method} ${p}`);
    }
    assert.deepEqual(await labIds(ADMIN), ['linux-basics']);
  });

  it('a platform administrator can neither re-register another platform nor register a new one; the other keeps its keys and endpoints', async () => {
    const before = await Platform.findOne({ issuer: B.issuer }).lean();
    const takeover = await api('POST', '/api/admin/platforms', s.adminA, { ...B.registration, jwksUrl: A.registration.jwksUrl, authUrl: A.registration.authUrl });
    assert.equal(takeover.status, 403);
    const fresh = await api('POST', '/api/admin/platforms', s.adminA, { ...A.registration, issuer: 'https://evil.example', clientId: 'x' });
    assert.equal(fresh.status, 403);
    const after = await Platform.findOne({ issuer: B.issuer }).lean();
    assert.deepEqual([after?.jwksUrl, after?.authUrl, after?.kid, after?.updatedAt?.getTime()], [before?.jwksUrl, before?.authUrl, before?.kid, before?.updatedAt?.getTime()]);
    // B's users still launch with B's own key
    await sessionOf(B, { sub: 'student-b', roles: [ROLE.learner], labId: 'linux-basics' });
  });

  it('an existing issuer + client id is never changed by a registration that is not the operator\'s', async () => {
    await assert.rejects(
      tool.lti.registry.register({ ...B.registration, jwksUrl: A.registration.jwksUrl, registeredBy: 'dynamic' }),
      { name: 'Conflict' },
    );
    assert.equal((await Platform.findOne({ issuer: B.issuer }).lean())?.jwksUrl, B.registration.jwksUrl);
    // the operator may
    const moved = await api('POST', '/api/admin/platforms', ADMIN, { ...B.registration, name: 'School B' });
    assert.equal(moved.status, 200);
  });

  it('a platform administrator sees its own registration only; the operator sees all', async () => {
    const mine = (await (await api('GET', '/api/admin/platforms', s.adminA)).json()) as { platforms: Array<{ issuer: string }> };
    assert.deepEqual(mine.platforms.map((p) => p.issuer), [A.issuer]);
    const all = (await (await api('GET', '/api/admin/platforms', ADMIN)).json()) as { platforms: Array<{ issuer: string }> };
    assert.deepEqual(all.platforms.map((p) => p.issuer).sort(), [A.issuer, B.issuer, C.issuer].sort());
  });

  it('the registration key is for operators only, never logged, and the operator can rotate it', async () => {
    assert.equal((await api('GET', '/api/admin/lti', s.adminA)).status, 403);
    assert.equal((await api('GET', '/api/admin/lti', s.adminB)).status, 403);
    const res = await api('GET', '/api/admin/lti', ADMIN);
    assert.equal(res.status, 200);
    const url = ((await res.json()) as { tool: { registration: string } }).tool.registration;
    const key = new URL(url).searchParams.get('key')!;
    assert.ok(key.length >= 32);
    assert.ok(!tool.rawLogs().includes(key), 'the key is in a log line');
    assert.equal((await api('POST', '/api/admin/lti/registration-key', s.adminA)).status, 403);
    const rotated = await api('POST', '/api/admin/lti/registration-key', ADMIN);
    assert.equal(rotated.status, 200);
    const next = ((await rotated.json()) as { tool: { registration: string } }).tool.registration;
    const nextKey = new URL(next).searchParams.get('key')!;
    assert.notEqual(nextKey, key);
    assert.equal((await fetch(url)).status, 403, 'the old registration URL is refused');
    assert.equal((await fetch(next)).status, 400, 'the new one is accepted (and asks for the platform\'s configuration)');
    assert.ok(!tool.rawLogs().includes(nextKey), 'the new key is in a log line');
  });

  it('lab catalog: each platform owns what it uploads; operator labs are for everyone, private ones for their platform only', async () => {
    assert.equal((await api('POST', '/api/admin/labs', s.adminA, labArchive('lab-a'))).status, 201);
    assert.equal((await api('POST', '/api/admin/labs', s.adminB, labArchive('lab-b'))).status, 201);
    // another platform's lab: not visible, not replaceable, not removable
    assert.equal((await api('PUT', '/api/admin/labs/lab-b', s.adminA, labArchive('lab-b'))).status, 409);
    assert.equal((await api('DELETE', '/api/admin/labs/lab-b', s.adminA)).status, 404);
    // the operator's lab: visible, not removable or replaceable by a school
    assert.equal((await api('DELETE', '/api/admin/labs/linux-basics', s.adminA)).status, 403);
    assert.equal((await api('PUT', '/api/admin/labs/linux-basics', s.adminA, labArchive('linux-basics'))).status, 403);
    assert.deepEqual(await labIds(s.adminA), ['lab-a', 'linux-basics']);
    assert.deepEqual(await labIds(s.adminB), ['lab-b', 'linux-basics']);
    assert.deepEqual(await labIds(ADMIN), ['lab-a', 'lab-b', 'linux-basics']);
    // teachers pick from the operator's labs and their own platform's
    assert.deepEqual(await catalogOf(A, 'teacher-a'), ['linux-basics', 'lab-a']);
    assert.deepEqual(await catalogOf(B, 'teacher-b'), ['linux-basics', 'lab-b']);
    // the public catalog shows operator labs only
    assert.deepEqual(await labIds(undefined, '/api/labs'), ['linux-basics']);
    assert.equal((await api('GET', '/api/labs/lab-b', undefined)).status, 404);
    // a launch can only start a lab its platform may use
    assert.equal((await launch(A, { sub: 'student-a', roles: [ROLE.learner], labId: 'lab-a', resourceLinkId: 'la' })).r.status, 302);
    assert.equal((await launch(A, { sub: 'student-a', roles: [ROLE.learner], labId: 'lab-b', resourceLinkId: 'lb' })).r.status, 404);
    assert.equal((await launch(B, { sub: 'student-b', roles: [ROLE.learner], labId: 'lab-a', resourceLinkId: 'la' })).r.status, 404);
    // the owner removes its own lab
    assert.equal((await api('DELETE', '/api/admin/labs/lab-a', s.adminA)).status, 204);
  });

  it('a private lab\'s media: only to its own platform (a signed URL from its page, or a session), privately cached; 404 to anyone else', async () => {
    const versions = (await (await api('GET', '/api/admin/labs', s.adminB)).json()) as { versions: Array<{ id: string; version: string }> };
    const ver = versions.versions.find((v) => v.id === 'lab-b')!.version;
    const media = `/labs/lab-b/${ver}/media/filesystem.svg`;
    const get = (p: string, token?: string) => fetch(`${tool.url}${p}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    // the page of B's student carries signed media URLs that work without a session (an <img> sends none)
    const { r, session } = await launch(B, { sub: 'student-b2', roles: [ROLE.learner], labId: 'lab-b', resourceLinkId: 'media-b' });
    assert.equal(r.status, 302, r.body.slice(0, 300));
    const view = (await (await get(`/api/instances/${new URL(r.location!).pathname.split('/')[2]}`, session)).json()) as { instructions: { pages: Array<{ html: string }> } };
    const signed = /src="(\/labs\/lab-b\/[^"]+\/media\/filesystem\.svg\?t=[^"]+)"/.exec(view.instructions.pages.map((p) => p.html).join(''))?.[1];
    assert.ok(signed, 'the page links the image with a signed URL');
    const ok = await get(signed.replace(/&amp;/g, '&'));
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /<svg/);
    assert.equal(ok.headers.get('cache-control'), 'private, max-age=3600');
    assert.equal((await get(media, s.adminB)).status, 200, 'B\'s own session');
    // anyone else: the same 404 as a missing file
    assert.equal((await get(media)).status, 404, 'anonymous');
    assert.equal((await get(media, s.adminA)).status, 404, 'another platform\'s administrator');
    const studentA = await sessionOf(A, { sub: 'student-a3', roles: [ROLE.learner], labId: 'linux-basics', resourceLinkId: 'media-a' });
    assert.equal((await get(media, studentA)).status, 404, 'another platform\'s student');
    const token = new URL(signed, tool.url).searchParams.get('t')!;
    assert.equal((await get(`/labs/lab-b/${ver}/media/missing.svg?t=${encodeURIComponent(token)}`)).status, 404);
    assert.equal((await get(`${media}?t=${encodeURIComponent(token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')))}`)).status, 404, 'a tampered token');
    // an operator lab's media stay public
    const pub = versions.versions.find((v) => v.id === 'linux-basics')!.version;
    const open = await get(`/labs/linux-basics/${pub}/media/filesystem.svg`);
    assert.equal(open.status, 200);
    assert.equal(open.headers.get('cache-control'), 'public, max-age=86400, immutable');
  });

  it('usage: a platform\'s administrators see their own platform\'s courses, labs and launches, never another platform\'s', async () => {
    // one course of A used by two students (three launches); one lab running, one stopped
    const first = await launch(A, { sub: 'usage-u', roles: [ROLE.learner], labId: 'linux-basics', contextId: 'usage-course', resourceLinkId: 'usage-link' });
    await launch(A, { sub: 'usage-u', roles: [ROLE.learner], labId: 'linux-basics', contextId: 'usage-course', resourceLinkId: 'usage-link' });
    const second = await launch(A, { sub: 'usage-v', roles: [ROLE.learner], labId: 'linux-basics', contextId: 'usage-course', resourceLinkId: 'usage-link' });
    const idOf = (x: { r: { location?: string } }) => decodeURIComponent(new URL(x.r.location!).pathname.split('/')[2]!);
    await LabInstance.updateOne({ _id: idOf(first) }, { $set: { state: 'running' } });
    await LabInstance.updateOne({ _id: idOf(second) }, { $set: { state: 'stopped' } });
    type Usage = { id: string; issuer: string; courses: Array<{ title: string; activities: number; labs: Record<string, number>; launches: number }>; totals: { launches: number } };
    const usage = async (token: string | undefined, p = '/api/admin/usage') => {
      const res = await api('GET', p, token);
      return { status: res.status, body: res.status === 200 ? ((await res.json()) as { platforms?: Usage[]; platform?: Usage }) : undefined };
    };
    // launches are counted after the redirect: wait for the three rows
    let a: Usage | undefined;
    for (let i = 0; i < 50; i++) {
      a = (await usage(s.adminA)).body?.platforms?.[0];
      if (a?.courses.find((c) => c.title === 'Course usage-course')?.launches === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const mine = (await usage(s.adminA)).body!.platforms!;
    assert.deepEqual(mine.map((p) => p.issuer), [A.issuer], 'A\'s administrator sees A only');
    const { course: key, ...course } = mine[0]!.courses.find((c) => c.title === 'Course usage-course') as Usage['courses'][number] & { course: string };
    assert.match(key, /^c[\w-]{22}$/, 'the course key, as the course page uses it');
    assert.deepEqual(course, { title: 'Course usage-course', activities: 1, labs: { running: 1, stopped: 1 }, launches: 3 });
    assert.ok(mine[0]!.totals.launches >= 3);
    const b = (await usage(s.adminB)).body!.platforms!;
    assert.deepEqual(b.map((p) => p.issuer), [B.issuer]);
    assert.ok(!JSON.stringify(b).includes('usage-course'), 'nothing of A in B\'s usage');
    // another platform's usage does not exist for a platform's administrator; the operator sees every one
    assert.equal((await usage(s.adminA, `/api/admin/platforms/${b[0]!.id}/usage`)).status, 404);
    assert.equal((await usage(s.adminB, `/api/admin/platforms/${mine[0]!.id}/usage`)).status, 404);
    assert.equal((await usage(s.adminA, `/api/admin/platforms/${mine[0]!.id}/usage`)).body?.platform?.courses.find((c) => c.title === 'Course usage-course')?.launches, 3);
    assert.equal((await usage(ADMIN, `/api/admin/platforms/${b[0]!.id}/usage`)).status, 200);
    assert.deepEqual((await usage(ADMIN)).body!.platforms!.map((p) => p.issuer).sort(), [A.issuer, B.issuer, C.issuer].sort());
    // course roles and students are not administrators; no credentials is 401
    assert.equal((await usage(s.courseAdminA)).status, 403);
    assert.equal((await usage(undefined)).status, 401);
    // the page itself holds no data (it asks the API with the credentials in its fragment)
    const page = await fetch(`${tool.url}/admin/usage`);
    assert.equal(page.status, 200);
    assert.doesNotMatch(await page.text(), /usage-course/);
  });

  it('a user the operator names in OPERATOR_USERS is an operator, whatever the role in the course', async () => {
    const all = (await (await api('GET', '/api/admin/platforms', s.operatorC)).json()) as { platforms: unknown[] };
    assert.equal(all.platforms.length, 3);
    assert.equal((await api('GET', '/api/admin/lti', s.operatorC)).status, 200);
    assert.equal((await api('DELETE', '/api/admin/labs/lab-b', s.operatorC)).status, 204);
    // the same sub on another platform is somebody else
    const lookalike = await sessionOf(A, { sub: 'operator-1', roles: [ROLE.learner], labId: 'linux-basics' });
    assert.equal((await api('GET', '/api/admin/platforms', lookalike)).status, 403);
  });
});
