import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import mongoose from 'mongoose';
import { SignJWT, generateKeyPair } from 'jose';
import { Browser, launchAs, tamperIdToken, type FlowResult, type FormData } from '../support/ltiFlow.js';
import { atToolPage, startLtiTool, type LtiTestTool } from '../support/ltiTool.js';
import { LoginState } from '../../src/store/LtiLogin.js';

const LTI = 'https://purl.imsglobal.org/spec/lti/claim/';
type Claims = Record<string, unknown>;

/** Documents a launch may create; a refusal must leave every count as it was. */
async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of ['users', 'activities', 'labinstances', 'lti_deep_link_requests', 'lti_used_nonces', 'idtokens', 'contexttokens']) {
    out[c] = await mongoose.connection.collection(c).countDocuments();
  }
  return out;
}

function assertRefused(r: FlowResult, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.body.slice(0, 300)}`);
  assert.match(r.body, pattern);
  assert.doesNotMatch(r.body, /\n\s+at |node_modules|stack/i, 'no stack trace in the answer');
  assert.equal(r.location, undefined, 'no redirect');
}

describe('LTI security: refusals (each a clear 4xx that creates nothing)', () => {
  let t: LtiTestTool;
  let activityId: string;
  before(async () => {
    t = await startLtiTool();
    activityId = (await t.activity('net-101'))._id;
    // one good launch first: the platform JWKS is cached, as in production
    const ok = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, { stopAt: atToolPage });
    assert.equal(ok.status, 302, ok.body);
  });
  after(async () => { await t.tool.shutdown(); });

  /** Launch as the student with the id_token rewritten; expect a refusal that writes nothing. */
  async function refusedWith(mutate: Parameters<typeof tamperIdToken>[1], status: number, pattern: RegExp, user = 'student'): Promise<void> {
    const before = await counts();
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user }, { stopAt: atToolPage, onForm: tamperIdToken(t.dp, mutate) });
    assertRefused(r, status, pattern);
    assert.deepEqual(await counts(), before, 'nothing created');
  }
  const claimsOnly = (f: (c: Claims) => Claims) => (c: Claims) => ({ claims: f(c) });
  const without = (k: string) => claimsOnly((c) => { const x = { ...c }; delete x[k]; return x; });

  it('refuses an id_token POST whose state cookie is missing', async () => {
    const b = new Browser();
    const before = await counts();
    const r = await launchAs(b, t.dp.urls.issuer, { activityId, user: 'student' }, {
      stopAt: atToolPage,
      onForm: (f) => { if (f.fields.id_token) b.clearCookies(); },
    });
    assertRefused(r, 401, /did not start it/);
    assert.deepEqual(await counts(), before);
  });

  it('refuses an id_token POST whose state is not the one of its cookie (another browser\'s login)', async () => {
    // browser 2 starts a login and stops before the id_token comes back: its state is valid but not browser 1's
    const b2 = new Browser();
    const half = await launchAs(b2, t.dp.urls.issuer, { activityId, user: 'student' }, { stopAt: (n) => n.method === 'POST' && new URL(n.url).pathname === '/lti' });
    const otherState = half.steps.at(-1)!.form!.fields.state!;
    const before = await counts();
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, {
      stopAt: atToolPage,
      onForm: (f) => (f.fields.id_token ? { ...f, fields: { ...f.fields, state: otherState } } : undefined),
    });
    assertRefused(r, 401, /did not start it/);
    assert.deepEqual(await counts(), before);
    assert.ok(await LoginState.exists({ _id: otherState }), 'the other browser\'s login is untouched');
  });

  it('refuses a replayed id_token with a fresh state (nonce bound to the state)', async () => {
    let captured = '';
    const first = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, {
      stopAt: atToolPage, onForm: (f) => { if (f.fields.id_token) captured = f.fields.id_token; },
    });
    assert.equal(first.status, 302);
    await refusedWith(() => captured, 401, /nonce does not belong to this login/);
  });

  it('accepts the same id_token posted twice at once only once', async () => {
    const b = new Browser();
    const half = await launchAs(b, t.dp.urls.issuer, { activityId, user: 'student' }, { stopAt: (n) => n.method === 'POST' && new URL(n.url).pathname === '/lti' });
    const form = half.steps.at(-1)!.form as FormData;
    const rs = await Promise.all([b.submit(form, { stopAt: atToolPage }), b.submit(form, { stopAt: atToolPage })]);
    assert.deepEqual(rs.map((r) => r.status).sort(), [302, 401]);
  });

  it('refuses alg none', async () => {
    await refusedWith((c) => `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(c)).toString('base64url')}.`, 401, /alg none is not accepted/);
  });

  it('refuses HS256 signed with the platform\'s public key', async () => {
    const pem = createPublicKey({ key: t.dp.publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    await refusedWith(async (c, h) => new SignJWT(c).setProtectedHeader({ alg: 'HS256', kid: String(h.kid) }).sign(new TextEncoder().encode(pem)), 401, /alg HS256 is not accepted/);
  });

  it('refuses a token signed by another key under the platform\'s kid', async () => {
    const other = await generateKeyPair('RS256');
    await refusedWith(async (c, h) => new SignJWT(c).setProtectedHeader({ alg: 'RS256', kid: String(h.kid) }).sign(other.privateKey), 401, /signature does not verify/);
  });

  it('refuses an unknown kid after exactly one JWKS refetch, and does not refetch again at once', async () => {
    const fetches = () => t.tool.logs().filter((l) => l.msg === 'lti.jwks_fetched' && l.reason === 'unknown-kid').length;
    const n = fetches();
    await refusedWith((c) => ({ claims: c, header: { kid: 'rotated-away' } }), 401, /unknown kid/);
    assert.equal(fetches(), n + 1, 'one refetch');
    await refusedWith((c) => ({ claims: c, header: { kid: 'another-unknown' } }), 401, /unknown kid/);
    assert.equal(fetches(), n + 1, 'rate-limited: no second refetch');
  });

  it('refuses a wrong aud', async () => {
    await refusedWith(claimsOnly((c) => ({ ...c, aud: 'someone-else' })), 401, /refused/);
  });

  it('refuses an extra, untrusted aud', async () => {
    await refusedWith(claimsOnly((c) => ({ ...c, aud: [c.aud, 'evil-client'], azp: c.aud })), 401, /other audiences/);
  });

  it('refuses a wrong azp', async () => {
    await refusedWith(claimsOnly((c) => ({ ...c, azp: 'evil-client' })), 401, /azp/);
  });

  it('refuses an expired id_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    await refusedWith(claimsOnly((c) => ({ ...c, iat: now - 200, exp: now - 100 })), 401, /expired/);
  });

  it('accepts Moodle\'s exp = iat + 60 when the id_token arrives 30 s after iat (ltijs\'s default 10 s max age would refuse it)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, {
      stopAt: atToolPage, onForm: tamperIdToken(t.dp, claimsOnly((c) => ({ ...c, iat: now - 30, exp: now + 30 }))),
    });
    assert.equal(r.status, 302, r.body);
  });

  it('refuses a missing message_type', async () => { await refusedWith(without(`${LTI}message_type`), 400, /message_type/); });
  it('refuses a missing deployment_id', async () => { await refusedWith(without(`${LTI}deployment_id`), 400, /deployment_id/); });
  it('refuses a missing sub', async () => { await refusedWith(without('sub'), 400, /sub/); });
  it('refuses a missing resource link id', async () => { await refusedWith(claimsOnly((c) => ({ ...c, [`${LTI}resource_link`]: { title: 'x' } })), 400, /resource link id/); });
  it('refuses an unregistered deployment_id', async () => { await refusedWith(claimsOnly((c) => ({ ...c, [`${LTI}deployment_id`]: 'not-registered' })), 401, /deployment_id/); });
  it('refuses a target_link_uri that differs from the login\'s', async () => {
    await refusedWith(claimsOnly((c) => ({ ...c, [`${LTI}target_link_uri`]: `${t.tool.url}/lti?other=1` })), 401, /target_link_uri/);
  });

  it('refuses a login from an unknown issuer, writing nothing and redirecting nowhere', async () => {
    const n = await LoginState.countDocuments();
    const res = await new Browser().request(`${t.tool.url}/lti/login`, { form: { iss: 'https://evil.example', login_hint: '1', target_link_uri: `${t.tool.url}/lti`, client_id: t.clientId } });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
    assert.match(await res.text(), /not registered/);
    assert.equal(await LoginState.countDocuments(), n);
  });

  it('refuses a login whose target_link_uri points to another host (no redirect there)', async () => {
    const n = await LoginState.countDocuments();
    for (const target of ['https://evil.example/lti', `${t.tool.url}/elsewhere`]) {
      const res = await new Browser().request(`${t.tool.url}/lti/login`, {
        form: { iss: t.dp.urls.issuer, login_hint: '101', target_link_uri: target, client_id: t.clientId, lti_deployment_id: t.deploymentId },
      });
      assert.equal(res.status, 400, target);
      assert.equal(res.headers.get('location'), null);
      assert.match(await res.text(), /not this tool/);
    }
    assert.equal(await LoginState.countDocuments(), n);
  });

  it('refuses a deep-linking request posted to the launch route', async () => {
    const before = await counts();
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { clientId: t.clientId, deepLink: true, user: 'teacher' }, {
      stopAt: atToolPage,
      onForm: (f) => (f.fields.id_token ? { ...f, action: `${t.tool.url}/lti` } : undefined),
    });
    assertRefused(r, 400, /deep-linking request was sent to the launch URL/);
    assert.deepEqual(await counts(), before);
  });

  it('refuses a learner at the deep-linking page', async () => {
    const before = await counts();
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { clientId: t.clientId, deepLink: true, user: 'teacher' }, {
      stopAt: atToolPage,
      onForm: tamperIdToken(t.dp, claimsOnly((c) => ({ ...c, [`${LTI}roles`]: ['http://purl.imsglobal.org/vocab/lis/v2/membership#Learner'] }))),
    });
    assertRefused(r, 403, /Only teachers/);
    assert.deepEqual(await counts(), before);
  });
});

describe('LTI security: headers', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool(); });
  after(async () => { await t.tool.shutdown(); });

  it('sends no CORS headers, no-referrer, and frame-ancestors limited to the registered platforms on LTI routes', async () => {
    for (const path of ['/lti/keys', '/lti/login']) {
      const res = await fetch(`${t.tool.url}${path}`, { headers: { origin: 'https://evil.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), null, path);
      assert.equal(res.headers.get('access-control-allow-credentials'), null, path);
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(res.headers.get('content-security-policy'), `frame-ancestors ${new URL(t.tool.url).origin}`);
      assert.equal(res.headers.get('x-frame-options'), null);
    }
    const pre = await fetch(`${t.tool.url}/lti/login`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
  });

  it('lets only the registered platforms frame the tool\'s pages (frame-ancestors added to each page\'s own CSP)', async () => {
    const origin = new URL(t.tool.url).origin;
    for (const path of ['/lab/abcdefghijklmnop', '/course/cSomeCourse', '/admin/lti']) {
      const res = await fetch(`${t.tool.url}${path}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, new RegExp(`(^|; )frame-ancestors ${origin}$`), `${path}: ${csp}`);
      assert.equal(res.headers.get('x-frame-options'), null);
    }
    assert.match((await fetch(`${t.tool.url}/lab/abcdefghijklmnop`)).headers.get('content-security-policy') ?? '', /^default-src 'self'; /, 'the page keeps its own policy');
    const dpPage = await fetch(`${t.tool.url}/dev-platform/`);
    assert.match(dpPage.headers.get('content-security-policy') ?? '', /frame-ancestors 'self'$/, 'a page with its own frame-ancestors keeps it');
  });

  it('sets the state cookie HttpOnly (SameSite=Lax over plain http; Secure and SameSite=None behind https)', async () => {
    const b = new Browser();
    const res = await b.request(`${t.tool.url}/lti/login`, { form: { iss: t.dp.urls.issuer, login_hint: '101', target_link_uri: `${t.tool.url}/lti`, client_id: t.clientId } });
    assert.equal(res.status, 302);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('state'))!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
  });

  it('never logs the id_token, the ltik or the session token', async () => {
    const a = await t.activity('net-101');
    let idToken = '';
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, {
      stopAt: atToolPage, onForm: (f) => { if (f.fields.id_token) idToken = f.fields.id_token; },
    });
    const session = new URL(r.location!).hash.replace('#session=', '');
    const logs = t.tool.rawLogs();
    assert.ok(idToken && session);
    assert.ok(!logs.includes(idToken.split('.')[2]!), 'id_token signature not in logs');
    assert.ok(!logs.includes(session.split('.')[2]!), 'session token not in logs');
    assert.doesNotMatch(logs, /ltik=/);
  });
});

describe('LTI security: behind HTTPS (PUBLIC_URL https, TRUST_PROXY)', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool({ PUBLIC_URL: 'https://labs.example.edu', TRUST_PROXY: 'true', DEV_PLATFORM: 'true' }); });
  after(async () => { await t.tool.shutdown(); });

  it('sets the state cookie Secure; SameSite=None; HttpOnly', async () => {
    const res = await fetch(`${t.tool.url}/lti/login`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' },
      body: new URLSearchParams({ iss: t.dp.urls.issuer, login_hint: '101', target_link_uri: 'https://labs.example.edu/lti', client_id: t.clientId }),
    });
    assert.equal(res.status, 302, await res.text());
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('state'))!;
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /SameSite=None/);
    assert.match(cookie, /HttpOnly/);
  });
});
