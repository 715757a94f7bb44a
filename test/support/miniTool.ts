/**
 * A tiny LTI 1.3 *tool* for testing the development platform on its own (the real tool side is
 * ltijs, tested elsewhere). It is real: its own RS256 key and JWKS, OIDC login with state cookie
 * and nonce, id_token verification on the platform's JWKS, client assertions, deep-linking
 * responses. Mount `miniTool.router` at MINI_TOOL_PATH through startTestTool's extraMounts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import express, { type Router } from 'express';
import { SignJWT, createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export const MINI_TOOL_PATH = '/mini-tool';

export interface MiniTool {
  router: Router;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** Login initiations received (the POSTed fields), newest last. */
  logins: Array<Record<string, string>>;
  /** Set after registration: the client id and where the platform lives. */
  clientId: string;
  issuer: string;
  /** Content items the deep-linking endpoint returns to the platform. */
  contentItems: Array<Record<string, unknown>>;
  /** URLs for registering this tool with a platform, given the tool's base URL. */
  urls(baseUrl: string): { loginUrl: string; targetLinkUri: string; deepLinkUrl: string; jwksUrl: string };
  /** A private_key_jwt client assertion for the platform's token endpoint. */
  clientAssertion(o: { clientId: string; tokenUrl: string }, key?: CryptoKey): Promise<string>;
  /** A signed LtiDeepLinkingResponse. */
  deepLinkJwt(o: { deploymentId: string; data?: string; items: Array<Record<string, unknown>>; aud?: string; nonce?: string }, key?: CryptoKey): Promise<string>;
}

export async function createMiniTool(): Promise<MiniTool> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const states = new Map<string, { nonce: string; iss: string }>();
  const jwks = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  const router = express.Router();
  router.use(express.urlencoded({ extended: false }));

  const tool: MiniTool = {
    router, kid, privateKey, publicJwk, logins: [], clientId: '', issuer: '', contentItems: [],
    urls: (base) => ({
      loginUrl: `${base}${MINI_TOOL_PATH}/login`, targetLinkUri: `${base}${MINI_TOOL_PATH}/launch`,
      deepLinkUrl: `${base}${MINI_TOOL_PATH}/deeplink`, jwksUrl: `${base}${MINI_TOOL_PATH}/jwks`,
    }),
    clientAssertion: (o, key = privateKey) =>
      new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer(o.clientId).setSubject(o.clientId)
        .setAudience(o.tokenUrl).setIssuedAt().setExpirationTime('5m').sign(key),
    deepLinkJwt: (o, key = privateKey) =>
      new SignJWT({
        nonce: o.nonce ?? randomUUID(),
        'https://purl.imsglobal.org/spec/lti/claim/message_type': 'LtiDeepLinkingResponse',
        'https://purl.imsglobal.org/spec/lti/claim/version': '1.3.0',
        'https://purl.imsglobal.org/spec/lti/claim/deployment_id': o.deploymentId,
        'https://purl.imsglobal.org/spec/lti-dl/claim/content_items': o.items,
        ...(o.data !== undefined ? { 'https://purl.imsglobal.org/spec/lti-dl/claim/data': o.data } : {}),
      }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer(tool.clientId).setAudience(o.aud ?? tool.issuer)
        .setIssuedAt().setExpirationTime('5m').sign(key),
  };

  router.get('/jwks', (_req, res) => {
    res.json({ keys: [publicJwk] });
  });

  router.post('/login', (req, res) => {
    const b = req.body as Record<string, string>;
    tool.logins.push({ ...b });
    const state = randomBytes(12).toString('base64url');
    const nonce = randomBytes(12).toString('base64url');
    states.set(state, { nonce, iss: b.iss ?? '' });
    const redirectUri = b.target_link_uri?.endsWith('/deeplink') ? tool.urls(new URL(b.target_link_uri).origin).deepLinkUrl : tool.urls(new URL(b.target_link_uri ?? '').origin).targetLinkUri;
    const auth = new URL(`${b.iss}/auth`);
    for (const [k, v] of Object.entries({
      scope: 'openid', response_type: 'id_token', response_mode: 'form_post', prompt: 'none', client_id: b.client_id ?? '',
      redirect_uri: redirectUri, login_hint: b.login_hint ?? '', lti_message_hint: b.lti_message_hint ?? '', state, nonce,
    })) auth.searchParams.set(k, v);
    res.setHeader('Set-Cookie', `mini_state=${state}; Path=${MINI_TOOL_PATH}; HttpOnly; SameSite=Lax`);
    res.redirect(302, auth.toString());
  });

  const verifyLaunch = async (req: express.Request): Promise<JWTPayload> => {
    const b = req.body as Record<string, string>;
    const cookieState = /(?:^|;\s*)mini_state=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const st = states.get(b.state ?? '');
    if (!st || cookieState !== b.state) throw Object.assign(new Error('state mismatch'), { status: 400 });
    states.delete(b.state ?? '');
    let set = jwks.get(st.iss);
    if (!set) jwks.set(st.iss, (set = createRemoteJWKSet(new URL(`${st.iss}/jwks`))));
    const { payload } = await jwtVerify(b.id_token ?? '', set, { issuer: st.iss, audience: tool.clientId, algorithms: ['RS256'] })
      .catch((err: Error) => { throw Object.assign(new Error(`id_token refused: ${err.message}`), { status: 401 }); });
    if (payload.nonce !== st.nonce) throw Object.assign(new Error('nonce mismatch'), { status: 400 });
    return payload;
  };

  router.post('/launch', async (req, res) => {
    res.json({ claims: await verifyLaunch(req) });
  });

  /** Dynamic registration, tool side: fetch the platform's configuration and register with the token. */
  router.get('/register', async (req, res) => {
    const openid = String(req.query.openid_configuration ?? '');
    const conf = (await (await fetch(openid)).json()) as { issuer: string; registration_endpoint: string };
    const base = `${req.protocol}://${req.get('host')}`;
    const u = tool.urls(base);
    const reg = await fetch(conf.registration_endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${String(req.query.registration_token ?? '')}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        application_type: 'web', response_types: ['id_token'], grant_types: ['implicit', 'client_credentials'],
        initiate_login_uri: u.loginUrl, redirect_uris: [u.targetLinkUri, u.deepLinkUrl], client_name: 'Mini tool (dynamic)',
        jwks_uri: u.jwksUrl, token_endpoint_auth_method: 'private_key_jwt', scope: 'https://purl.imsglobal.org/spec/lti-ags/scope/score',
        'https://purl.imsglobal.org/spec/lti-tool-configuration': {
          domain: new URL(base).host, target_link_uri: u.targetLinkUri,
          messages: [{ type: 'LtiDeepLinkingRequest', target_link_uri: u.deepLinkUrl }],
        },
      }),
    });
    const out = (await reg.json()) as { client_id?: string };
    if (!reg.ok || !out.client_id) {
      res.status(502).json(out);
      return;
    }
    tool.clientId = out.client_id;
    tool.issuer = conf.issuer;
    res.type('html').send(`<p>Registered.</p><script>(window.opener || window.parent).postMessage({ subject: 'org.imsglobal.lti.close' }, '*');</script>`);
  });

  router.post('/deeplink', async (req, res) => {
    const claims = await verifyLaunch(req);
    const settings = claims['https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings'] as { deep_link_return_url: string; data?: string };
    const jwt = await tool.deepLinkJwt({
      deploymentId: String(claims['https://purl.imsglobal.org/spec/lti/claim/deployment_id']),
      ...(settings.data !== undefined ? { data: settings.data } : {}),
      items: tool.contentItems,
    });
    res.type('html').send(`<form id="dl" method="post" action="${settings.deep_link_return_url}"><input type="hidden" name="JWT" value="${jwt}"></form>
<script>document.getElementById("dl").submit()</script>`);
  });
  return tool;
}
