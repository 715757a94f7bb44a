import assert from 'node:assert/strict';
import { generateKeyPair } from 'jose';
import { startTestTool, type TestTool } from '../support/tool.js';
import { createMiniTool, MINI_TOOL_PATH, type MiniTool } from '../support/miniTool.js';
import { Browser, launchAs, parseForms } from '../support/ltiFlow.js';
import type { DevPlatform } from '../../src/devPlatform/createDevPlatform.js';
import { DevPlatformActivity, DevPlatformTool } from '../../src/devPlatform/models.js';

const S = {
  lineItem: 'https://purl.imsglobal.org/spec/lti-ags/scope/lineitem',
  score: 'https://purl.imsglobal.org/spec/lti-ags/scope/score',
  result: 'https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly',
  nrps: 'https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly',
};
const LTI = 'https://purl.imsglobal.org/spec/lti/claim/';

describe('development LTI platform: services, deep linking, registration', () => {
  let tool: TestTool;
  let mini: MiniTool;
  let dp: DevPlatform;
  let activityId: string;
  let claims: Record<string, unknown>;

  async function token(scope: string): Promise<string> {
    const res = await fetch(dp.urls.token, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: dp.urls.token }), scope,
      }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { access_token: string }).access_token;
  }
  const scoresUrl = (lineItemUrl: string) => { const u = new URL(lineItemUrl); return `${u.origin}${u.pathname}/scores${u.search}`; };
  const score = (over: Record<string, unknown> = {}) => ({
    userId: '101', scoreGiven: 7, scoreMaximum: 10, activityProgress: 'Completed', gradingProgress: 'FullyGraded', timestamp: new Date().toISOString(), ...over,
  });
  const post = (url: string, tok: string, body: unknown, type = 'application/vnd.ims.lis.v1.score+json') =>
    fetch(url, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': type }, body: JSON.stringify(body) });

  before(async () => {
    mini = await createMiniTool();
    tool = await startTestTool({}, { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }] });
    dp = tool.devPlatform!;
    const reg = await dp.registerTool({ name: 'Mini tool', ...mini.urls(tool.url) });
    mini.clientId = reg._id;
    mini.issuer = dp.urls.issuer;
    activityId = (await dp.createActivity({ clientId: reg._id, title: 'Graded lab', lineItem: { scoreMaximum: 10 } }))._id;
    claims = (JSON.parse((await launchAs(new Browser(), dp.urls.issuer, { activityId, user: 'student' })).body) as { claims: Record<string, unknown> }).claims;
  });
  after(async () => { await tool.shutdown(); });

  const ags = () => claims['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] as { lineitem: string; lineitems: string };

  describe('AGS', () => {
    it('stores a score posted to the line item path + /scores with the ?type_id= query kept, and shows it in results', async () => {
      const url = scoresUrl(ags().lineitem);
      assert.match(url, /\/lineitem\/scores\?type_id=\d+$/);
      const res = await post(url, await token(S.score), score({ scoreGiven: 8, comment: 'well done' }));
      assert.equal(res.status, 204);
      const results = await fetch(`${new URL(ags().lineitem).origin}${new URL(ags().lineitem).pathname}/results${new URL(ags().lineitem).search}`, {
        headers: { authorization: `Bearer ${await token(S.result)}` },
      });
      assert.equal(results.status, 200);
      const rows = (await results.json()) as Array<Record<string, unknown>>;
      assert.deepEqual(rows.map((r) => [r.userId, r.resultScore, r.resultMaximum, r.comment]), [['101', 8, 10, 'well done']]);
    });

    it('refuses a score with an earlier timestamp than the stored one with 409', async () => {
      const url = scoresUrl(ags().lineitem);
      const tok = await token(S.score);
      const later = new Date(Date.now() + 5_000).toISOString();
      assert.equal((await post(url, tok, score({ userId: '102', timestamp: later }))).status, 204);
      assert.equal((await post(url, tok, score({ userId: '102', timestamp: new Date().toISOString() }))).status, 409);
      assert.equal((await post(url, tok, score({ userId: '102', timestamp: later }))).status, 204, 'an equal timestamp is accepted');
    });

    it('refuses scores for a teacher with 400, like Moodle, and unknown users and bad progress values', async () => {
      const url = scoresUrl(ags().lineitem);
      const tok = await token(S.score);
      for (const body of [score({ userId: '201' }), score({ userId: '999' }), score({ activityProgress: 'Done' }), score({ timestamp: 'yesterday' })]) {
        assert.equal((await post(url, tok, body)).status, 400, JSON.stringify(body));
      }
      assert.equal((await post(url, tok, score(), 'application/json')).status, 415);
    });

    it('requires a bearer token with the right scope', async () => {
      const url = scoresUrl(ags().lineitem);
      assert.equal((await post(url, 'nope', score())).status, 401);
      assert.equal((await post(url, await token(S.lineItem), score())).status, 403);
      const other = new URL(url);
      other.searchParams.set('type_id', '999');
      assert.equal((await post(other.toString(), await token(S.score), score())).status, 403);
    });

    it('answers 503 while the scores endpoint is switched off, and stores again after', async () => {
      const url = scoresUrl(ags().lineitem);
      const tok = await token(S.score);
      dp.setScoresAvailable(false);
      try {
        assert.equal((await post(url, tok, score({ userId: '101', timestamp: new Date(Date.now() + 60_000).toISOString() }))).status, 503);
      } finally {
        dp.setScoresAvailable(true);
      }
      assert.equal((await post(url, tok, score({ userId: '101', timestamp: new Date(Date.now() + 60_000).toISOString() }))).status, 204);
    });

    it('creates, lists, reads, updates and deletes line items', async () => {
      const tok = await token(S.lineItem);
      const auth = { authorization: `Bearer ${tok}` };
      const created = await post(ags().lineitems, tok, { label: 'Quiz', scoreMaximum: 5, tag: 'quiz', resourceId: 'r1' }, 'application/vnd.ims.lis.v2.lineitem+json');
      assert.equal(created.status, 201);
      const li = (await created.json()) as { id: string; label: string };
      assert.match(li.id, /\/lineitem\?type_id=\d+$/);
      const list = (await (await fetch(`${ags().lineitems}&tag=quiz`, { headers: auth })).json()) as Array<{ id: string }>;
      assert.deepEqual(list.map((x) => x.id), [li.id]);
      const put = await fetch(li.id, { method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.ims.lis.v2.lineitem+json' }, body: JSON.stringify({ label: 'Quiz 2', scoreMaximum: 6 }) });
      assert.equal(((await put.json()) as { label: string }).label, 'Quiz 2');
      assert.equal(((await (await fetch(li.id, { headers: auth })).json()) as { scoreMaximum: number }).scoreMaximum, 6);
      assert.equal((await fetch(li.id, { method: 'DELETE', headers: auth })).status, 204);
      assert.equal((await fetch(li.id, { headers: auth })).status, 404);
      assert.equal((await post(ags().lineitems, tok, { label: '' }, 'application/vnd.ims.lis.v2.lineitem+json')).status, 400);
      assert.equal((await post(ags().lineitems, tok, { label: 'x', scoreMaximum: 1 }, 'application/json')).status, 415, 'Moodle wants the AGS media type');
    });
  });

  describe('NRPS', () => {
    it('returns the course members with short role names, like Moodle', async () => {
      const url = (claims['https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice'] as { context_memberships_url: string }).context_memberships_url;
      const res = await fetch(url, { headers: { authorization: `Bearer ${await token(S.nrps)}` } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { context: { id: string }; members: Array<{ user_id: string; roles: string[] }> };
      assert.equal(body.context.id, '2');
      assert.deepEqual(body.members.map((m) => [m.user_id, m.roles]), [['101', ['Learner']], ['102', ['Learner']], ['201', ['Instructor']]]);
    });

    it('pages with a Link rel="next" header when asked for a limit', async () => {
      const url = (claims['https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice'] as { context_memberships_url: string }).context_memberships_url;
      const res = await fetch(`${url}&limit=2`, { headers: { authorization: `Bearer ${await token(S.nrps)}` } });
      assert.equal(((await res.json()) as { members: unknown[] }).members.length, 2);
      assert.match(res.headers.get('link') ?? '', /from=2.*rel="next"/);
    });
  });

  describe('deep linking', () => {
    it('sends a deep-linking request, verifies the response, and creates the activity with custom params and a gradebook column on save (once)', async () => {
      mini.contentItems = [{
        type: 'ltiResourceLink', title: 'Firewall lab', url: mini.urls(tool.url).targetLinkUri,
        custom: { lab: 'firewall-1', time_limit: '60' },
        lineItem: { scoreMaximum: 20, label: 'Firewall lab', resourceId: 'firewall-1', tag: 'lab' },
      }];
      const b = new Browser();
      const r = await launchAs(b, dp.urls.issuer, { clientId: mini.clientId, deepLink: true, user: 'teacher' });
      assert.equal(r.status, 200, r.body);
      assert.equal(new URL(r.url).pathname, '/dev-platform/deeplink/return');
      const dlClaims = r.steps.find((s) => s.form?.fields.id_token)!;
      assert.ok(dlClaims);
      assert.equal(await DevPlatformActivity.countDocuments({ title: 'Firewall lab' }), 0, 'nothing created before the teacher saves');
      const save = parseForms(r.body, r.url).find((f) => f.action.endsWith('/activities/from-item'))!;
      const saved = await Promise.all([b.submit(save, { stopAt: () => true }), b.submit(save, { stopAt: () => true })]);
      assert.deepEqual(saved.map((x) => x.status), [303, 303]);
      assert.equal(saved[0]!.location, saved[1]!.location);
      assert.equal(await DevPlatformActivity.countDocuments({ title: 'Firewall lab' }), 1, 'a double-submitted save creates one activity');
      const activity = await DevPlatformActivity.findOne({ title: 'Firewall lab' }).lean();
      assert.ok(activity?.lineItemId);
      assert.deepEqual(activity.custom, { lab: 'firewall-1', time_limit: '60' });
      const c = (JSON.parse((await launchAs(new Browser(), dp.urls.issuer, { activityId: activity._id, user: 'student' })).body) as { claims: Record<string, unknown> }).claims;
      assert.deepEqual(c[`${LTI}custom`], { lab: 'firewall-1', time_limit: '60' });
      const li = await fetch((c['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] as { lineitem: string }).lineitem, { headers: { authorization: `Bearer ${await token(S.lineItem)}` } });
      assert.deepEqual(await li.json(), { id: (c['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] as { lineitem: string }).lineitem, label: 'Firewall lab', scoreMaximum: 20, resourceId: 'firewall-1', resourceLinkId: activity._id, tag: 'lab' });
    });

    it('sends Moodle\'s deep linking settings', async () => {
      let settings: Record<string, unknown> = {};
      mini.contentItems = [];
      await launchAs(new Browser(), dp.urls.issuer, { clientId: mini.clientId, deepLink: true, user: 'teacher' }, {
        onForm: (f) => {
          if (f.fields.id_token) settings = JSON.parse(Buffer.from(f.fields.id_token.split('.')[1]!, 'base64url').toString())['https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings'];
        },
      });
      assert.deepEqual(settings.accept_types, ['ltiResourceLink']);
      assert.equal(settings.accept_multiple, true);
      assert.equal(settings.auto_create, false);
      assert.equal(settings.deep_link_return_url, dp.urls.deepLinkReturn);
    });

    it('refuses a learner starting deep linking', async () => {
      const r = await launchAs(new Browser(), dp.urls.issuer, { clientId: mini.clientId, deepLink: true, user: 'student' });
      assert.equal(r.status, 400);
    });

    it('refuses responses signed by another key, for another audience or deployment, with a replayed nonce or without our data', async () => {
      // a real deep-linking request to get valid `data`
      let data = '';
      await launchAs(new Browser(), dp.urls.issuer, { clientId: mini.clientId, deepLink: true, user: 'teacher' }, {
        onForm: (f) => {
          if (f.fields.id_token) data = JSON.parse(Buffer.from(f.fields.id_token.split('.')[1]!, 'base64url').toString())['https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings'].data;
        },
      });
      const deploymentId = (await DevPlatformTool.findById(mini.clientId).lean())!.deploymentId;
      const items = [{ type: 'ltiResourceLink', title: 'x' }];
      const other = (await generateKeyPair('RS256')).privateKey;
      const send = async (jwt: string) => (await new Browser().request(dp.urls.deepLinkReturn, { form: { JWT: jwt } })).status;
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId, data, items }, other)), 401);
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId, data, items, aud: 'https://elsewhere.example' })), 401);
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId: '999', data, items })), 400);
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId, items })), 400);
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId, data, items: [{ type: 'file', url: 'x' }] })), 400);
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId, data, items, nonce: 'n-1' })), 200);
      assert.equal(await send(await mini.deepLinkJwt({ deploymentId, data, items, nonce: 'n-1' })), 401);
    });
  });

  describe('dynamic registration', () => {
    const toolConfig = (targetLinkUri: string, domain: string) => ({
      application_type: 'web', response_types: ['id_token'], grant_types: ['implicit', 'client_credentials'],
      initiate_login_uri: mini.urls(tool.url).loginUrl, redirect_uris: [mini.urls(tool.url).targetLinkUri, mini.urls(tool.url).deepLinkUrl],
      client_name: 'Registered mini tool', jwks_uri: mini.urls(tool.url).jwksUrl, token_endpoint_auth_method: 'private_key_jwt',
      scope: `${S.score} ${S.lineItem} https://example.com/unknown`,
      'https://purl.imsglobal.org/spec/lti-tool-configuration': {
        domain, target_link_uri: targetLinkUri,
        messages: [{ type: 'LtiDeepLinkingRequest', target_link_uri: mini.urls(tool.url).deepLinkUrl }],
        custom_parameters: { via: 'dynamic' },
      },
    });
    async function start(): Promise<{ openid: string; token: string }> {
      const res = await new Browser().request(`${dp.urls.issuer}/register/start`, { form: { url: `${tool.url}${MINI_TOOL_PATH}/register?x=1` } });
      assert.equal(res.status, 303);
      const loc = new URL(res.headers.get('location')!);
      assert.equal(loc.searchParams.get('x'), '1');
      return { openid: loc.searchParams.get('openid_configuration')!, token: loc.searchParams.get('registration_token')! };
    }
    const register = (tok: string, body: unknown) =>
      fetch(dp.urls.registration, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

    it('opens the tool with openid_configuration and a registration token, and registers the tool once with it', async () => {
      const { openid, token: tok } = await start();
      assert.equal(openid, dp.urls.openidConfiguration);
      const target = mini.urls(tool.url).targetLinkUri;
      const res = await register(tok, toolConfig(target, new URL(target).host));
      assert.equal(res.status, 200);
      const out = (await res.json()) as Record<string, unknown>;
      const conf = out['https://purl.imsglobal.org/spec/lti-tool-configuration'] as { deployment_id: string };
      const saved = (await DevPlatformTool.findById(out.client_id as string).lean())!;
      assert.equal(saved.deploymentId, conf.deployment_id);
      assert.equal(saved.deepLinkUrl, mini.urls(tool.url).deepLinkUrl);
      assert.deepEqual(saved.scopes.sort(), [S.lineItem, S.score].sort());
      assert.deepEqual(saved.custom, { via: 'dynamic' });
      assert.equal((await register(tok, toolConfig(target, new URL(target).host))).status, 401, 'single use');
    });

    it('registers a tool end to end through the browser flow (register/start → tool page → registration endpoint)', async () => {
      const r = await new Browser().follow({ method: 'POST', url: `${dp.urls.issuer}/register/start`, form: { url: `${tool.url}${MINI_TOOL_PATH}/register` } });
      assert.equal(r.status, 200, r.body);
      assert.match(r.body, /org\.imsglobal\.lti\.close/);
      const saved = (await DevPlatformTool.findById(mini.clientId).lean())!;
      assert.equal(saved.registeredBy, 'dynamic');
      assert.equal(saved.registrationUrl, `${tool.url}${MINI_TOOL_PATH}/register`);
      const act = await dp.createActivity({ clientId: saved._id, title: 'Via dynamic registration' });
      const launched = await launchAs(new Browser(), dp.urls.issuer, { activityId: act._id, user: 'student' });
      assert.equal(launched.status, 200, launched.body);
      assert.equal((JSON.parse(launched.body) as { claims: { aud: string } }).claims.aud, saved._id);
    });

    it('registers a tool from the server (demo start-up) once: ensureRegistered reuses the registration', async () => {
      const url = `${tool.url}${MINI_TOOL_PATH}/register?demo=1`;
      const a = await dp.ensureRegistered(url);
      const b = await dp.ensureRegistered(url);
      assert.equal(a._id, b._id);
      assert.equal(a._id, mini.clientId);
      await assert.rejects(dp.registerByUrl(`${tool.url}/nowhere`), /did not register/);
    });

    it('refuses a domain without the port, a client without private_key_jwt, and an unknown token', async () => {
      const target = mini.urls(tool.url).targetLinkUri;
      const { token: tok } = await start();
      const noPort = await register(tok, toolConfig(target, new URL(target).hostname));
      assert.equal(noPort.status, 400);
      assert.match(((await noPort.json()) as { error_description: string }).error_description, /port/);
      assert.equal((await register(tok, { ...toolConfig(target, new URL(target).host), token_endpoint_auth_method: 'client_secret_basic' })).status, 400);
      assert.equal((await register(tok, { ...toolConfig(target, new URL(target).host), response_types: ['code'] })).status, 400);
      assert.equal((await register('made-up', toolConfig(target, new URL(target).host))).status, 401);
      assert.equal((await register(tok, toolConfig(target, new URL(target).host))).status, 200, 'refusals do not use up the token');
    });
  });

  it('renders the course page with launch buttons, deep-link button and the gradebook', async () => {
    const res = await fetch(dp.urls.page);
    assert.equal(res.status, 200);
    const html = await res.text();
    for (const s of ['Launch as student', 'Launch as teacher', 'Add activity (deep link)', 'Gradebook', 'Graded lab', 'Alice Student']) assert.ok(html.includes(s), s);
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'nonce-/);
    const forms = parseForms(html, dp.urls.page);
    assert.ok(forms.some((f) => f.fields.activityId === activityId && f.fields.user === 'teacher'));
  });

  it('registers a tool manually through its JSON API, updating it when the client id is given', async () => {
    const body = { name: 'Manual', ...mini.urls(tool.url) };
    const r1 = await fetch(`${dp.urls.issuer}/tools`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r1.status, 201);
    const { clientId, deploymentId } = (await r1.json()) as { clientId: string; deploymentId: string };
    const r2 = await fetch(`${dp.urls.issuer}/tools`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, clientId, name: 'Manual 2' }) });
    assert.deepEqual(await r2.json(), { clientId, deploymentId, issuer: dp.urls.issuer });
    assert.equal((await DevPlatformTool.findById(clientId).lean())!.name, 'Manual 2');
    const bad = await fetch(`${dp.urls.issuer}/tools`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', loginUrl: 'not a url' }) });
    assert.equal(bad.status, 400);
  });
});
