import assert from 'node:assert/strict';
import { decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { startTestTool, type TestTool } from '../support/tool.js';
import { createMiniTool, MINI_TOOL_PATH, type MiniTool } from '../support/miniTool.js';
import { Browser, launchAs, parseForms, tamperIdToken } from '../support/ltiFlow.js';
import type { DevPlatform } from '../../src/devPlatform/createDevPlatform.js';
import { DevPlatformLaunch } from '../../src/devPlatform/models.js';

const LTI = 'https://purl.imsglobal.org/spec/lti/claim/';

describe('development LTI platform: discovery, launch, token', () => {
  let tool: TestTool;
  let mini: MiniTool;
  let dp: DevPlatform;
  let activityId: string;
  let lineItemId: string;

  before(async () => {
    mini = await createMiniTool();
    tool = await startTestTool({}, { extraMounts: [{ path: MINI_TOOL_PATH, router: mini.router }] });
    dp = tool.devPlatform!;
    const reg = await dp.registerTool({ name: 'Mini tool', ...mini.urls(tool.url), custom: { tool_param: 'from-tool' } });
    mini.clientId = reg._id;
    mini.issuer = dp.urls.issuer;
    const a = await dp.createActivity({ clientId: reg._id, title: 'Subnetting lab', custom: { lab: 'net-101' }, lineItem: { scoreMaximum: 10 } });
    activityId = a._id;
    lineItemId = a.lineItemId!;
  });
  after(async () => { await tool.shutdown(); });

  it('serves an OpenID configuration with the LTI platform configuration and a registration endpoint', async () => {
    const res = await fetch(`${tool.url}/dev-platform/.well-known/openid-configuration`);
    assert.equal(res.status, 200);
    const c = (await res.json()) as Record<string, unknown>;
    assert.equal(c.issuer, `${tool.url}/dev-platform`);
    assert.equal(c.authorization_endpoint, `${tool.url}/dev-platform/auth`);
    assert.equal(c.token_endpoint, `${tool.url}/dev-platform/token`);
    assert.equal(c.jwks_uri, `${tool.url}/dev-platform/jwks`);
    assert.equal(c.registration_endpoint, `${tool.url}/dev-platform/register`);
    const lpc = c['https://purl.imsglobal.org/spec/lti-platform-configuration'] as { product_family_code: string; messages_supported: Array<{ type: string }> };
    assert.ok(lpc.product_family_code);
    assert.deepEqual(lpc.messages_supported.map((m) => m.type), ['LtiResourceLinkRequest', 'LtiDeepLinkingRequest']);
  });

  it('serves its RS256 public key as a JWKS, without private parts', async () => {
    const { keys } = (await (await fetch(`${tool.url}/dev-platform/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    assert.equal(keys.length, 1);
    assert.equal(keys[0]!.kty, 'RSA');
    assert.equal(keys[0]!.alg, 'RS256');
    assert.ok(keys[0]!.kid);
    assert.equal(keys[0]!.d, undefined);
  });

  it('launches a student: POST login initiation like Moodle, then a verified id_token with Moodle-shaped claims', async () => {
    const r = await launchAs(new Browser(), dp.urls.issuer, { activityId, user: 'student' });
    assert.equal(r.status, 200, r.body);
    // hops: platform /launch → tool /login (POST) → platform /auth (GET) → tool /launch (POST)
    assert.deepEqual(r.steps.map((s) => `${s.method} ${new URL(s.url).pathname}`), [
      'POST /dev-platform/launch', `POST ${MINI_TOOL_PATH}/login`, 'GET /dev-platform/auth', `POST ${MINI_TOOL_PATH}/launch`,
    ]);
    const login = mini.logins.at(-1)!;
    assert.deepEqual(Object.keys(login).sort(), ['client_id', 'iss', 'login_hint', 'lti_deployment_id', 'lti_message_hint', 'target_link_uri']);
    assert.equal(login.iss, dp.urls.issuer);
    const c = (JSON.parse(r.body) as { claims: Record<string, unknown> }).claims;
    assert.equal((c.exp as number) - (c.iat as number), 60);
    assert.equal(c.sub, '101');
    assert.equal(c.name, 'Alice Student');
    assert.equal(c.email, 'alice@example.edu');
    assert.equal(c[`${LTI}message_type`], 'LtiResourceLinkRequest');
    assert.equal(c[`${LTI}version`], '1.3.0');
    assert.equal(c[`${LTI}deployment_id`], login.lti_deployment_id);
    assert.equal(c[`${LTI}target_link_uri`], mini.urls(tool.url).targetLinkUri);
    assert.deepEqual(c[`${LTI}roles`], ['http://purl.imsglobal.org/vocab/lis/v2/membership#Learner', 'http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student']);
    assert.deepEqual((c[`${LTI}resource_link`] as { id: string }).id, activityId);
    assert.equal((c[`${LTI}context`] as { id: string }).id, '2');
    assert.deepEqual(c[`${LTI}custom`], { tool_param: 'from-tool', lab: 'net-101' });
    assert.equal((c[`${LTI}launch_presentation`] as { document_target: string }).document_target, 'iframe');
    const ags = c['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] as { lineitem: string; lineitems: string; scope: string[] };
    assert.match(ags.lineitem, new RegExp(`/lineitems/${lineItemId}/lineitem\\?type_id=\\d+$`));
    assert.match(ags.lineitems, /\/lineitems\?type_id=\d+$/);
    assert.ok(ags.scope.includes('https://purl.imsglobal.org/spec/lti-ags/scope/score'));
    assert.match((c['https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice'] as { context_memberships_url: string }).context_memberships_url, /\/memberships\?type_id=\d+$/);
  });

  it('launches a teacher with the Instructor role', async () => {
    const r = await launchAs(new Browser(), dp.urls.issuer, { activityId, user: 'teacher' });
    const c = (JSON.parse(r.body) as { claims: Record<string, unknown> }).claims;
    assert.equal(c.sub, '201');
    assert.ok((c[`${LTI}roles`] as string[]).includes('http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor'));
  });

  it('signs id_tokens with the key its JWKS publishes', async () => {
    let idToken = '';
    await launchAs(new Browser(), dp.urls.issuer, { activityId, user: 'student2' }, {
      onForm: (f) => { if (f.fields.id_token) idToken = f.fields.id_token; },
    });
    const { keys } = (await (await fetch(`${tool.url}/dev-platform/jwks`)).json()) as { keys: Array<{ kid: string }> };
    assert.equal(decodeProtectedHeader(idToken).kid, keys[0]!.kid);
    assert.equal(decodeProtectedHeader(idToken).alg, 'RS256');
    assert.equal(decodeJwt(idToken).aud, mini.clientId);
  });

  it('lets tests forge id_tokens with the platform key (tamperIdToken), which a verifying tool then sees', async () => {
    const r = await launchAs(new Browser(), dp.urls.issuer, { activityId, user: 'student' }, {
      onForm: tamperIdToken(dp, (c) => ({ claims: { ...c, name: 'Mallory' } })),
    });
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { claims: { name: string } }).claims.name, 'Mallory');
    const wrongAud = await launchAs(new Browser(), dp.urls.issuer, { activityId, user: 'student' }, {
      onForm: tamperIdToken(dp, (c) => ({ claims: { ...c, aud: 'someone-else' } })),
    });
    assert.equal(wrongAud.status, 401);
    assert.match(wrongAud.body, /aud/);
  });

  describe('the authorization endpoint refuses', () => {
    /** Start a launch and stop at the tool's redirect to /auth; returns the /auth URL. */
    async function authUrl(b: Browser): Promise<URL> {
      const r = await launchAs(b, dp.urls.issuer, { activityId, user: 'student' }, { stopAt: (n) => n.url.includes('/dev-platform/auth') });
      return new URL(r.location!);
    }
    async function expect400(b: Browser, u: URL, re: RegExp): Promise<void> {
      const res = await b.request(u.toString());
      const body = await res.text();
      assert.equal(res.status, 400, body);
      assert.match(body, re);
      assert.equal(parseForms(body, u.toString()).length, 0, 'no form towards the tool');
    }

    it('a redirect_uri that is not exactly a registered one', async () => {
      const b = new Browser();
      const u = await authUrl(b);
      u.searchParams.set('redirect_uri', `${u.searchParams.get('redirect_uri')}/`);
      await expect400(b, u, /redirect_uri/);
    });

    it('response_mode other than form_post, a missing nonce, a scope without openid', async () => {
      for (const [k, v, re] of [['response_mode', 'query', /response_mode/], ['nonce', '', /nonce/], ['scope', 'profile', /openid/]] as const) {
        const b = new Browser();
        const u = await authUrl(b);
        u.searchParams.set(k, v);
        await expect400(b, u, re);
      }
    });

    it('a request from another browser session (no platform session cookie), like Moodle', async () => {
      const u = await authUrl(new Browser());
      await expect400(new Browser(), u, /session/);
    });

    it('the same launch used twice', async () => {
      const b = new Browser();
      const u = await authUrl(b);
      assert.equal((await b.request(u.toString())).status, 200);
      await expect400(b, u, /already used/);
    });

    it('a login_hint that is not the launching user', async () => {
      const b = new Browser();
      const u = await authUrl(b);
      u.searchParams.set('login_hint', '102');
      await expect400(b, u, /login_hint/);
    });

    it('accepts the same request as a form POST', async () => {
      const b = new Browser();
      const u = await authUrl(b);
      const res = await b.request(`${dp.urls.auth}`, { form: Object.fromEntries(u.searchParams) });
      assert.equal(res.status, 200);
      const form = parseForms(await res.text(), dp.urls.auth)[0]!;
      assert.equal(form.action, u.searchParams.get('redirect_uri'));
      assert.deepEqual(Object.keys(form.fields).sort(), ['id_token', 'state']);
      assert.equal(form.fields.state, u.searchParams.get('state'));
    });
  });

  describe('the token endpoint', () => {
    const grant = (assertion: string, scope = 'https://purl.imsglobal.org/spec/lti-ags/scope/score') => fetch(dp.urls.token, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, scope,
      }),
    });

    it('grants a bearer token for a valid private_key_jwt assertion, with only the scopes asked for', async () => {
      const res = await grant(await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: dp.urls.token }),
        'https://purl.imsglobal.org/spec/lti-ags/scope/score https://example.com/not-a-scope');
      assert.equal(res.status, 200);
      const t = (await res.json()) as Record<string, unknown>;
      assert.equal(t.token_type, 'Bearer');
      assert.equal(t.scope, 'https://purl.imsglobal.org/spec/lti-ags/scope/score');
      assert.ok(typeof t.access_token === 'string' && t.access_token.length > 20);
    });

    it('refuses a replayed assertion (same jti)', async () => {
      const a = await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: dp.urls.token });
      assert.equal((await grant(a)).status, 200);
      const res = await grant(a);
      assert.equal(res.status, 401);
      assert.match(((await res.json()) as { error_description: string }).error_description, /jti/);
    });

    it('refuses an assertion signed by another key, one with the wrong aud, one for an unknown client', async () => {
      const other = (await generateKeyPair('RS256')).privateKey;
      for (const a of [
        await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: dp.urls.token }, other),
        await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: dp.urls.issuer }),
        await mini.clientAssertion({ clientId: 'nobody', tokenUrl: dp.urls.token }),
      ]) {
        const res = await grant(a);
        assert.equal(res.status, 401);
        assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
      }
    });

    it('refuses another grant type and a missing assertion type', async () => {
      const a = await mini.clientAssertion({ clientId: mini.clientId, tokenUrl: dp.urls.token });
      const r1 = await fetch(dp.urls.token, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', client_assertion: a }) });
      assert.equal(r1.status, 400);
      const r2 = await fetch(dp.urls.token, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion: a }) });
      assert.equal(r2.status, 400);
    });
  });

  it('keeps launch states in the database until used or expired', async () => {
    assert.ok((await DevPlatformLaunch.countDocuments({ usedAt: { $ne: null } })) > 0);
  });
});

describe('development LTI platform: enabling', () => {
  it('is not mounted in production mode unless DEV_PLATFORM=true', async () => {
    const env = { LAB_MODE: 'production', PUBLIC_URL: 'http://127.0.0.1:9', SECRET_KEY: 'x'.repeat(40) };
    const t = await startTestTool(env);
    try {
      assert.equal(t.devPlatform, undefined);
      assert.equal((await fetch(`${t.url}/dev-platform/jwks`)).status, 404);
    } finally {
      await t.shutdown();
    }
    const t2 = await startTestTool({ ...env, DEV_PLATFORM: 'true' });
    try {
      assert.equal((await fetch(`${t2.url}/dev-platform/jwks`)).status, 200);
    } finally {
      await t2.shutdown();
    }
  });

  it('keeps its key across restarts on the same database', async () => {
    const { uniqueDbName } = await import('../support/ferret.js');
    const dbName = uniqueDbName('dpkey');
    const kid = async () => {
      const t = await startTestTool({}, { dbName });
      try {
        return ((await (await fetch(`${t.url}/dev-platform/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys[0]!.kid;
      } finally {
        await t.shutdown();
      }
    };
    assert.equal(await kid(), await kid());
  });
});
