import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startTestTool, type TestTool } from '../support/tool.js';
import { SessionTokens } from '../../src/auth/session.js';
import { ensureInstanceRecord, LabInstance } from '../../src/store/LabInstance.js';
import { uniqueDbName } from '../support/ferret.js';

function copyTemplates(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-templates-'));
  fs.cpSync(path.resolve('templates'), dir, { recursive: true });
  return dir;
}

describe('lab catalog: start-up import and GET /api/labs', function () {
  this.timeout(60_000);
  let tool: TestTool | undefined;
  let dir: string;
  const dbName = uniqueDbName('labs');

  before(() => {
    dir = copyTemplates();
    // an invalid lab next to the valid ones: reported and skipped
    fs.mkdirSync(path.join(dir, 'broken', 'instructions'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'broken', 'lab.yaml'), 'schemaVersion: 1\ntitle: Broken\nmachines:\n  - name: a\n    image: lab-tiny\n    cpus: many\n');
    fs.writeFileSync(path.join(dir, 'broken', 'instructions', 'a.md'), '# A\n');
  });
  afterEach(async () => {
    await tool?.shutdown();
    tool = undefined;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('imports every valid example, logs the invalid lab with all its messages, and serves the catalog', async () => {
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    const res = await fetch(`${tool.url}/api/labs`);
    assert.equal(res.status, 200);
    const { labs } = (await res.json()) as { labs: Array<{ id: string; version: string; machines: unknown[]; resources: { cpus: number }; unavailable: string | null }> };
    assert.deepEqual(labs.map((l) => `${l.id}@${l.version}`).sort(), ['desktop-basics@1', 'linux-basics@1', 'two-host-network@1', 'vm-and-container@1']);
    // this deployment (QEMU backend) runs virtual machines only: the catalog says which lab it cannot run, and why
    assert.deepEqual(labs.filter((l) => l.unavailable !== null).map((l) => l.id), ['vm-and-container']);
    assert.match(labs.find((l) => l.id === 'vm-and-container')!.unavailable!, /is a container, and this server runs virtual machines only/);
    const two = labs.find((l) => l.id === 'two-host-network')!;
    assert.equal(two.machines.length, 2);
    assert.equal(two.resources.cpus, 2);
    assert.doesNotMatch(JSON.stringify(labs), /password|generate|userData|hint|command/, 'no credentials or checks in the catalog');
    const warn = tool.logs().find((l) => l.msg === 'labs.invalid_skipped');
    assert.ok(warn, 'invalid lab logged');
    assert.deepEqual(warn.invalid, ['broken']);
    assert.deepEqual(warn.problems, [`${dir}/broken/lab.yaml:6:11 machines[0].cpus: expected an integer from 1 to 16, got "many"`]);

    const one = await fetch(`${tool.url}/api/labs/linux-basics`);
    assert.equal(one.status, 200);
    const summary = (await one.json()) as { title: string; grading: { mode: string }; unavailable: string | null };
    assert.equal(summary.title, 'Linux shell basics');
    assert.equal(summary.unavailable, null);
    assert.match(((await (await fetch(`${tool.url}/api/labs/vm-and-container`)).json()) as { unavailable: string }).unavailable, /container/);
    assert.equal(summary.grading.mode, 'checks');
    assert.equal((await fetch(`${tool.url}/api/labs/broken`)).status, 404);
    assert.equal((await fetch(`${tool.url}/api/labs/nope`)).status, 404);
  });

  it('a restart with unchanged templates makes no new version; a changed lab gets the next one', async () => {
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    await tool.shutdown();
    fs.appendFileSync(path.join(dir, 'linux-basics', 'instructions', '02-processes.md'), '\nOne more line.\n');
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    const { labs } = (await (await fetch(`${tool.url}/api/labs`)).json()) as { labs: Array<{ id: string; version: string }> };
    assert.deepEqual(labs.map((l) => `${l.id}@${l.version}`).sort(), ['desktop-basics@1', 'linux-basics@2', 'two-host-network@1', 'vm-and-container@1']);
  });

  it('serves media of a version, with a sandboxing CSP, and refuses paths outside media/', async () => {
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    const ok = await fetch(`${tool.url}/labs/two-host-network/1/media/network.svg`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'image/svg+xml');
    assert.match(ok.headers.get('content-security-policy') ?? '', /sandbox/);
    assert.match(await ok.text(), /<svg/);
    for (const bad of ['..%2Flab.yaml', '../lab.yaml', '%2E%2E/lab.yaml', 'x/..%2F..%2Flab.yaml', 'nope.svg']) {
      const r = await fetch(`${tool.url}/labs/two-host-network/1/media/${bad}`);
      assert.equal(r.status, 404, bad);
      assert.doesNotMatch(await r.text(), /schemaVersion/);
    }
    assert.equal((await fetch(`${tool.url}/labs/two-host-network/9/media/network.svg`)).status, 404);
  });
});

describe('admin API for lab definitions', function () {
  this.timeout(60_000);
  const SECRET = 'a-test-secret-key-that-is-long-enough-1234';
  const ADMIN = 'admin-token-0123456789';
  let tool: TestTool;
  let work: string;
  let learner: string;
  let administrator: string;

  /** A .tar.gz made by the system tar, of a copy of two-host-network named `net-101` (edited by `edit`). */
  function archive(edit: (dir: string) => void = () => {}): Buffer {
    const root = fs.mkdtempSync(path.join(work, 'a-'));
    fs.cpSync(path.resolve('templates/two-host-network'), path.join(root, 'net-101'), { recursive: true });
    edit(path.join(root, 'net-101'));
    execFileSync('tar', ['czf', path.join(root, 'lab.tgz'), '-C', root, 'net-101']);
    return fs.readFileSync(path.join(root, 'lab.tgz'));
  }
  const send = (method: string, url: string, body?: Buffer | object, token: string | null = ADMIN) =>
    fetch(`${tool.url}${url}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(Buffer.isBuffer(body) ? { 'content-type': 'application/gzip' } : body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
    });
  const catalogIds = async () => ((await (await fetch(`${tool.url}/api/labs`)).json()) as { labs: Array<{ id: string; version: string }> }).labs.map((l) => `${l.id}@${l.version}`).sort();

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-admin-'));
    const templates = path.join(work, 'templates');
    fs.cpSync(path.resolve('templates/linux-basics'), path.join(templates, 'linux-basics'), { recursive: true });
    tool = await startTestTool({ TEMPLATES_DIR: templates, SECRET_KEY: SECRET, ADMIN_TOKEN: ADMIN });
    const sessions = new SessionTokens(SECRET);
    learner = await sessions.issue({ userId: 'u1', role: 'learner', contextId: 'c1' });
    // a user the operator named in OPERATOR_USERS (platform administrators' labs are in the tenancy tests)
    administrator = await sessions.issue({ userId: 'u2', role: 'administrator', contextId: 'c1', operator: true });
  });
  after(async () => {
    await tool.shutdown();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('refuses requests without admin credentials: none, a learner session, a wrong token', async () => {
    const a = archive();
    assert.equal((await send('POST', '/api/admin/labs', a, null)).status, 401);
    assert.equal((await send('POST', '/api/admin/labs', a, learner)).status, 403);
    assert.equal((await send('POST', '/api/admin/labs', a, 'wrong-token-0123456789')).status, 403);
    assert.equal((await send('DELETE', '/api/admin/labs/linux-basics', undefined, learner)).status, 403);
    assert.equal((await send('GET', '/api/admin/labs', undefined, null)).status, 401);
    assert.deepEqual(await catalogIds(), ['linux-basics@1'], 'nothing changed');
  });

  it('answers in the language the request asks for (Accept-Language), English otherwise', async () => {
    const ask = async (lang: string | null, method: string, url: string, body?: object, token: string | null = ADMIN) => {
      const res = await fetch(`${tool.url}${url}`, {
        method,
        headers: { accept: 'application/json', ...(lang ? { 'accept-language': lang } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, error: ((await res.json()) as { error: string }).error };
    };
    assert.deepEqual(await ask('de-DE,de;q=0.9', 'GET', '/api/admin/labs', undefined, null), { status: 401, error: 'Admin-API: Senden Sie Authorization: Bearer <ADMIN_TOKEN>.' });
    assert.deepEqual(await ask('fr', 'GET', '/api/admin/labs', undefined, learner), { status: 403, error: 'Seuls les administrateurs peuvent faire cela.' });
    assert.deepEqual(await ask('es', 'POST', '/api/admin/labs', { nothing: true }), { status: 400, error: 'Envíe un .tar.gz de la carpeta del laboratorio (Content-Type: application/gzip) o JSON {"path": "/carpeta/absoluta"}.' });
    assert.deepEqual(await ask('de', 'POST', '/api/admin/labs', { path: '/no/such/folder' }), { status: 400, error: 'Kein Ordner /no/such/folder auf dem Server.' });
    assert.deepEqual(await ask('pt-BR', 'GET', '/api/admin/labs', undefined, 'wrong-token-0123456789'), { status: 403, error: 'Admin API: the token is not valid.' });
    const platform = await ask('fr', 'POST', '/api/admin/platforms', { issuer: 'not a url', clientId: 'c' });
    assert.equal(platform.status, 400);
    assert.match(platform.error, /^L’enregistrement de la plateforme n’est pas valide : issuer: /);
  });

  it('adds a lab from a .tar.gz; the same archive again makes no new version', async () => {
    const r = await send('POST', '/api/admin/labs', archive(), administrator);
    assert.equal(r.status, 201);
    assert.deepEqual(await r.json(), { id: 'net-101', version: '1', created: true });
    assert.deepEqual(await catalogIds(), ['linux-basics@1', 'net-101@1']);
    const again = await send('POST', '/api/admin/labs', archive());
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), { id: 'net-101', version: '1', created: false });
  });

  it('refuses an invalid lab with every problem as file:line:col', async () => {
    const r = await send('PUT', '/api/admin/labs/net-101', archive((d) => {
      fs.appendFileSync(path.join(d, 'lab.yaml'), 'colour: red\n');
      fs.appendFileSync(path.join(d, 'instructions', '02-reach.md'), '\n{{machines.gamma.ip}}\n');
    }));
    assert.equal(r.status, 400);
    const body = (await r.json()) as { error: string; problems: string[] };
    assert.equal(body.error, 'The lab "net-101" has 2 problems.');
    assert.equal(body.problems.length, 2);
    assert.match(body.problems[0]!, /^net-101\/instructions\/02-reach\.md:\d+:1 variable: expected one of .*, got \{\{machines\.gamma\.ip\}\}$/);
    assert.match(body.problems[1]!, /^net-101\/lab\.yaml:44:1 colour: expected one of schemaVersion, id, .*, got unknown key "colour"$/);
    assert.deepEqual(await catalogIds(), ['linux-basics@1', 'net-101@1']);
  });

  it('an update makes a new version while a running instance keeps the one it started with', async () => {
    const inst = await ensureInstanceRecord({ activityId: 'act-1', userId: 'u1', contextId: 'c1', labId: 'net-101', labVersion: (await tool.labs.latest('net-101'))!.version });
    const r = await send('PUT', '/api/admin/labs/net-101', archive((d) => {
      const p = path.join(d, 'instructions', '01-addresses.md');
      fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace('# Find the other host', '# Find the other host (revised)'));
    }));
    assert.equal(r.status, 201);
    assert.deepEqual(await r.json(), { id: 'net-101', version: '2', created: true });
    assert.equal((await tool.labs.latest('net-101'))!.version, '2');
    const stored = await LabInstance.findById(inst._id).lean();
    assert.equal(stored!.labVersion, '1');
    const vars = { user: { name: 'Ada' }, machines: {}, lab: { expires: 'soon' } };
    const old = await tool.labs.instructions('net-101', stored!.labVersion, vars);
    const now = await tool.labs.instructions('net-101', '2', vars);
    assert.equal(old.pages[0]!.title, 'Find the other host');
    assert.equal(now.pages[0]!.title, 'Find the other host (revised)');
    assert.equal((await tool.labs.prepare('net-101', '1', {})).spec.labVersion, '1');
  });

  it('adds a lab from a folder on the server', async () => {
    const dir = path.join(work, 'srv', 'shell-101');
    fs.cpSync(path.resolve('templates/linux-basics'), dir, { recursive: true });
    const r = await send('POST', '/api/admin/labs', { path: dir });
    assert.equal(r.status, 201);
    assert.deepEqual(await r.json(), { id: 'shell-101', version: '1', created: true });
    assert.equal((await send('POST', '/api/admin/labs', { path: 'relative/dir' })).status, 400);
    assert.equal((await send('POST', '/api/admin/labs', { path: path.join(work, 'missing') })).status, 400);
  });

  it('remove: the lab can no longer be started, but its versions still resolve for running instances', async () => {
    assert.equal((await send('DELETE', '/api/admin/labs/net-101')).status, 204);
    assert.deepEqual(await catalogIds(), ['linux-basics@1', 'shell-101@1']);
    assert.equal((await fetch(`${tool.url}/api/labs/net-101`)).status, 404);
    assert.equal(await tool.labs.latest('net-101'), undefined);
    const p = await tool.labs.prepare('net-101', '1', {});
    assert.deepEqual(p.spec.machines.map((m) => m.name), ['alpha', 'beta']);
    assert.equal((await tool.labs.instructions('net-101', '2', { user: { name: 'A' }, machines: {}, lab: { expires: 'x' } })).pages.length, 2);
    assert.equal((await fetch(`${tool.url}/labs/net-101/1/media/network.svg`)).status, 200);
    const checks = await tool.labs.checks('net-101', '1', { user: { name: 'A' }, machines: p.machines, lab: { expires: 'x' } });
    assert.deepEqual(checks.steps.flatMap((s) => s.checks.map((c) => `${s.stepId}@${c.machine}`)), ['find-address@alpha', 'ping-beta@alpha', 'start-server@beta', 'fetch-page@alpha']);
    assert.deepEqual(checks.steps[0]!.checks[0]!.env, { LAB_MACHINES_BETA_IP: '10.10.0.12' });
    assert.equal((await send('DELETE', '/api/admin/labs/nope')).status, 404);
    const versions = ((await (await send('GET', '/api/admin/labs')).json()) as { versions: Array<{ id: string; version: string; removedAt: string | null }> }).versions;
    assert.deepEqual(versions.filter((v) => v.id === 'net-101').map((v) => [v.version, v.removedAt !== null]), [['2', true], ['1', true]]);
    // adding it again makes it startable again
    const back = await send('PUT', '/api/admin/labs/net-101', archive());
    assert.equal(back.status, 201);
    assert.deepEqual(await catalogIds(), ['linux-basics@1', 'net-101@3', 'shell-101@1']);
  });
});
