import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { fakeLabs } from '../support/fakeLabs.js';
import { atToolPage, startLtiTool, ADMIN_TOKEN, type LtiTestTool } from '../support/ltiTool.js';
import { Platform } from '../../src/store/Platform.js';
import { DevPlatformTool } from '../../src/devPlatform/models.js';
import { TOOL_SCOPES } from '../../src/lti/claims.js';

describe('LTI registration: dynamic, through the development platform', () => {
  let tool: TestTool;
  const fake = fakeLabs();
  before(async () => {
    // DEV_PLATFORM_REGISTER=true: start-up registers the tool with the dev platform, as README command (a) does
    tool = await startTestTool({ DEV_PLATFORM_REGISTER: 'true', ADMIN_TOKEN }, { labs: fake.labs, runtime: fake.runtime });
  });
  after(async () => { await tool.shutdown(); });

  it('registers at start-up: platform and deployment stored, only our scopes, both message types, then a launch works', async () => {
    const dpTool = (await DevPlatformTool.findOne({ registrationUrl: await tool.lti.registrationUrl() }).lean())!;
    assert.ok(dpTool, 'the dev platform has the tool');
    assert.equal(dpTool.registeredBy, 'dynamic');
    assert.deepEqual([...dpTool.scopes].sort(), [...TOOL_SCOPES].sort());
    assert.equal(dpTool.loginUrl, `${tool.url}/lti/login`);
    assert.equal(dpTool.targetLinkUri, `${tool.url}/lti`);
    assert.equal(dpTool.deepLinkUrl, `${tool.url}/lti/deeplink`);
    assert.equal(dpTool.jwksUrl, `${tool.url}/lti/keys`);
    const p = (await Platform.findOne({ issuer: tool.devPlatform!.urls.issuer, clientId: dpTool._id }).lean())!;
    assert.ok(p, 'we have the platform');
    assert.deepEqual(p.deploymentIds, [dpTool.deploymentId]);
    assert.equal(p.registeredBy, 'dynamic');
    assert.equal(p.tokenUrl, tool.devPlatform!.urls.token);
    const jwks = (await (await fetch(tool.lti.urls.jwks)).json()) as { keys: Array<{ kid: string; d?: string }> };
    assert.ok(jwks.keys.some((k) => k.kid === p.kid), 'our JWKS publishes the key for this platform');
    assert.ok(jwks.keys.every((k) => k.d === undefined));
    const mine = jwks.keys.find((k) => k.kid === p.kid) as { n: string } | undefined;
    assert.equal(Buffer.from(mine!.n, 'base64url').length * 8, 2048, 'a 2048-bit RSA tool key, generated off the event loop');

    const a = await tool.devPlatform!.createActivity({ clientId: dpTool._id, title: 'Net', custom: { lab_id: 'net-101' } });
    const r = await launchAs(new Browser(), tool.devPlatform!.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
    assert.equal(r.status, 302, r.body);
    assert.match(r.location!, /\/lab\/[a-z2-7]{16}#session=/);
  });

  it('registers through the browser flow and closes the platform window with org.imsglobal.lti.close', async () => {
    const b = new Browser();
    const r = await b.follow({ method: 'POST', url: `${tool.devPlatform!.urls.issuer}/register/start`, form: { url: await tool.lti.registrationUrl() } });
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /postMessage\(\{ subject: 'org\.imsglobal\.lti\.close' \}/);
    assert.match(r.body, /<html lang="en">[^]*is registered with [^ ]+ \(client id [^)]+\)\. You can close this window\./);
    assert.equal(await Platform.countDocuments({ issuer: tool.devPlatform!.urls.issuer }), 2, 'each dynamic registration is a new client id');
  });

  it('says so in the administrator\'s language', async () => {
    const b = new Browser({ 'accept-language': 'de-DE,de;q=0.9,en;q=0.5' });
    const r = await b.follow({ method: 'POST', url: `${tool.devPlatform!.urls.issuer}/register/start`, form: { url: await tool.lti.registrationUrl() } });
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /<html lang="de">[^]*<title>Registriert<\/title>[^]*ist bei [^ ]+ registriert \(Client-ID [^)]+\)\. Sie können dieses Fenster schließen\./);
    assert.match(r.body, /postMessage\(\{ subject: 'org\.imsglobal\.lti\.close' \}/);
  });

  it('shows the registration URL (it carries a key) to administrators only', async () => {
    const page = await (await fetch(`${tool.url}/admin/lti`)).text();
    assert.match(page, /id="registration-url"/);
    const registration = await tool.lti.registrationUrl();
    assert.ok(!page.includes(registration), 'the page itself does not reveal the key');
    assert.equal((await fetch(`${tool.url}/api/admin/lti`)).status, 401);
    const { tool: urls } = (await (await fetch(`${tool.url}/api/admin/lti`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { tool: { registration: string } };
    assert.equal(urls.registration, registration);
    assert.match(urls.registration, new RegExp(`^${tool.url}/lti/register\\?key=[\\w-]{32}$`));
    const key = new URL(registration).searchParams.get('key')!;
    assert.ok(!tool.logs().some((l) => JSON.stringify(l).includes(key)), 'the registration key is never logged');
  });

  it('refuses a registration without the key, registering nothing', async () => {
    const n = await Platform.countDocuments();
    const b = new Browser();
    for (const url of [`${tool.url}/lti/register`, `${tool.url}/lti/register?key=guessed`]) {
      const r = await b.follow({ method: 'POST', url: `${tool.devPlatform!.urls.issuer}/register/start`, form: { url } });
      assert.equal(r.status, 403, r.body);
      assert.match(r.body, /not complete/);
    }
    assert.equal(await Platform.countDocuments(), n);
  });

  it('lets the registering platform (origin of openid_configuration) frame the registration pages, only with the key', async () => {
    const framer = 'https://moodle.example.edu:8443';
    const u = new URL(await tool.lti.registrationUrl());
    u.searchParams.set('openid_configuration', `${framer}/mod/lti/openid-configuration.php`);
    // the platform cannot be reached: an error page, still framable by the registering platform
    const res = await fetch(u);
    assert.equal(res.status, 502);
    assert.match(res.headers.get('content-security-policy') ?? '', new RegExp(`frame-ancestors [^;]*${framer.replace(/[.]/g, '\\.')}`));
    u.searchParams.set('key', 'guessed');
    const refused = await fetch(u);
    assert.equal(refused.status, 403);
    assert.ok(!(refused.headers.get('content-security-policy') ?? '').includes(framer), 'no key: not framable by the claimed platform');
  });

  it('answers the registration URL opened without a platform with a 400 that says where to paste it', async () => {
    const res = await fetch(await tool.lti.registrationUrl(), { headers: { accept: 'text/html' } });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /paste it/);
  });
});

describe('LTI registration: manual, through the admin API', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool(); });
  after(async () => { await t.tool.shutdown(); });

  const body = (t: LtiTestTool, extra: Record<string, unknown> = {}) => JSON.stringify({
    issuer: t.dp.urls.issuer, clientId: t.clientId, authUrl: t.dp.urls.auth, tokenUrl: t.dp.urls.token, jwksUrl: t.dp.urls.jwks, deploymentIds: [t.deploymentId], ...extra,
  });

  it('registered the platform by hand, and a learner launch through it works', async () => {
    const list = (await (await t.adminFetch('/api/admin/platforms')).json()) as { platforms: Array<Record<string, unknown>>; tool: Record<string, string> };
    assert.equal(list.platforms.length, 1);
    assert.equal(list.platforms[0]!.registeredBy, 'manual');
    assert.equal(list.tool.login, `${t.tool.url}/lti/login`);
    const a = await t.activity('net-101');
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
    assert.equal(r.status, 302, r.body);
    assert.match(r.location!, /\/lab\//);
  });

  it('updates the platform when the same issuer and client id are registered again', async () => {
    const res = await t.adminFetch('/api/admin/platforms', { method: 'POST', body: body(t, { name: 'Renamed', deploymentIds: ['extra-deployment'] }) });
    assert.equal(res.status, 200);
    const docs = await Platform.find({ issuer: t.dp.urls.issuer }).lean();
    assert.equal(docs.length, 1);
    assert.equal(docs[0]!.name, 'Renamed');
    assert.deepEqual([...docs[0]!.deploymentIds].sort(), [t.deploymentId, 'extra-deployment'].sort());
  });

  it('refuses registration without admin credentials, and bad input naming every problem, creating nothing', async () => {
    const n = await Platform.countDocuments();
    const anon = await fetch(`${t.tool.url}/api/admin/platforms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(t, { clientId: 'other' }) });
    assert.equal(anon.status, 401);
    const wrong = await fetch(`${t.tool.url}/api/admin/platforms`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer nope-nope-nope-nope' }, body: body(t, { clientId: 'other' }) });
    assert.equal(wrong.status, 403);
    const bad = await t.adminFetch('/api/admin/platforms', { method: 'POST', body: JSON.stringify({ issuer: 'ftp://x', clientId: '', deploymentIds: [] }) });
    assert.equal(bad.status, 400);
    const msg = ((await bad.json()) as { error: string }).error;
    for (const k of ['issuer', 'authUrl', 'tokenUrl', 'jwksUrl', 'clientId', 'deploymentIds']) assert.match(msg, new RegExp(k));
    assert.equal(await Platform.countDocuments(), n);
    assert.ok(ADMIN_TOKEN);
  });
});
