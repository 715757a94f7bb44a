/**
 * A small independent LTI 1.3 platform for tenancy tests: its own HTTP server (port 0), its own
 * RSA key pair and JWKS, an OIDC /auth that answers with a signed id_token for whatever launch the
 * test asked for (any user, roles, name, course, custom lab_id). Real HTTP on every hop; the tool
 * cannot tell it from an LMS. Several can run at once: one per school.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { CLAIM } from '../../src/lti/claimNames.js';
import { Browser, type FlowResult } from './ltiFlow.js';

export const ROLE = {
  learner: 'http://purl.imsglobal.org/vocab/lis/v2/membership#Learner',
  instructor: 'http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor',
  courseAdmin: 'http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator',
  institutionAdmin: 'http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator',
  systemAdmin: 'http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator',
} as const;

export interface MiniLaunch {
  sub: string;
  roles: string[];
  name?: string;
  contextId?: string;
  resourceLinkId?: string;
  labId?: string;
  deepLink?: boolean;
}

export interface MiniPlatform {
  issuer: string;
  clientId: string;
  deploymentId: string;
  /** The fields for POST /api/admin/platforms. */
  registration: { issuer: string; clientId: string; authUrl: string; tokenUrl: string; jwksUrl: string; deploymentIds: string[] };
  /** Launch the tool as `l` through login initiation, /auth and the id_token POST; stops before the tool's own page. */
  launch(tool: { login: string; launch: string; deepLink: string }, l: MiniLaunch): Promise<FlowResult>;
  close(): Promise<void>;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export async function startMiniPlatform(name: string): Promise<MiniPlatform> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `${name}-${randomBytes(4).toString('hex')}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const pending = new Map<string, MiniLaunch & { target: string }>();
  const clientId = `client-${name}`;
  const deploymentId = `dep-${name}`;
  let issuer = '';

  const server = http.createServer((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', issuer);
      if (u.pathname === '/jwks') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
        return;
      }
      if (u.pathname === '/auth') {
        let body = '';
        for await (const c of req) body += String(c);
        const p = req.method === 'POST' ? new URLSearchParams(body) : u.searchParams;
        const l = pending.get(p.get('login_hint') ?? '');
        if (!l || p.get('client_id') !== clientId) {
          res.writeHead(400).end('unknown launch');
          return;
        }
        pending.delete(p.get('login_hint')!);
        const idToken = await sign(privateKey, kid, issuer, clientId, deploymentId, l, p.get('nonce') ?? '');
        const fields = { id_token: idToken, state: p.get('state') ?? '' };
        res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><form method="post" action="${esc(p.get('redirect_uri') ?? '')}" id="f">${Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${k}" value="${esc(v)}">`).join('')}</form><script>document.getElementById('f').submit()</script>`);
        return;
      }
      res.writeHead(404).end();
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    issuer, clientId, deploymentId,
    registration: { issuer, clientId, authUrl: `${issuer}/auth`, tokenUrl: `${issuer}/token`, jwksUrl: `${issuer}/jwks`, deploymentIds: [deploymentId] },
    launch(tool, l) {
      const hint = randomBytes(8).toString('hex');
      const target = l.deepLink ? tool.deepLink : tool.launch;
      pending.set(hint, { ...l, target });
      return new Browser().follow(
        { method: 'POST', url: tool.login, form: { iss: issuer, login_hint: hint, target_link_uri: target, client_id: clientId, lti_deployment_id: deploymentId } },
        { stopAt: (n) => /\/(lab|course)\//.test(new URL(n.url).pathname) },
      );
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function sign(key: CryptoKey, kid: string, issuer: string, clientId: string, deploymentId: string, l: MiniLaunch & { target: string }, nonce: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const contextId = l.contextId ?? 'course-1';
  const claims: Record<string, unknown> = {
    nonce,
    sub: l.sub,
    name: l.name ?? `User ${l.sub}`,
    [CLAIM.messageType]: l.deepLink ? 'LtiDeepLinkingRequest' : 'LtiResourceLinkRequest',
    [CLAIM.version]: '1.3.0',
    [CLAIM.deploymentId]: deploymentId,
    [CLAIM.targetLinkUri]: l.target,
    [CLAIM.roles]: l.roles,
    [CLAIM.context]: { id: contextId, title: `Course ${contextId}` },
  };
  if (l.deepLink) {
    claims[CLAIM.deepLinkingSettings] = { deep_link_return_url: `${issuer}/deeplink-return`, accept_types: ['ltiResourceLink'], accept_presentation_document_targets: ['iframe', 'window'] };
  } else {
    claims[CLAIM.resourceLink] = { id: l.resourceLinkId ?? 'link-1', title: 'A lab' };
    claims[CLAIM.custom] = l.labId ? { lab_id: l.labId } : {};
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(clientId)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(key);
}
