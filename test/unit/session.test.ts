import assert from 'node:assert/strict';
import { SessionTokens } from '../../src/auth/session.js';
import { Unauthorized } from '../../src/errors.js';

describe('session tokens', () => {
  const tokens = new SessionTokens('k'.repeat(40));

  it('round-trips claims', async () => {
    const t = await tokens.issue({ userId: 'u1', role: 'learner', contextId: 'c1', instanceId: 'i1' });
    assert.deepEqual(await tokens.verify(t), { userId: 'u1', role: 'learner', contextId: 'c1', instanceId: 'i1' });
  });

  it('rejects a token signed with another secret', async () => {
    const other = await new SessionTokens('x'.repeat(40)).issue({ userId: 'u1', role: 'administrator', contextId: 'c1' });
    await assert.rejects(tokens.verify(other), Unauthorized);
  });

  it('issues a standard HS256 JWT for the session audience, and refuses one whose claims were changed', async () => {
    const t = await tokens.issue({ userId: 'u1', role: 'learner', contextId: 'c1' });
    const [h, p, sig] = t.split('.') as [string, string, string];
    assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), { alg: 'HS256' });
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.aud, 'lab-orchestrator:session');
    assert.equal(claims.exp, (claims.iat as number) + 8 * 3600);
    const raised = Buffer.from(JSON.stringify({ ...claims, role: 'administrator' })).toString('base64url');
    await assert.rejects(tokens.verify(`${h}.${raised}.${sig}`), Unauthorized);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${p}.`;
    await assert.rejects(tokens.verify(unsigned), Unauthorized);
  });

  it('rejects an expired token', async () => {
    const short = new SessionTokens('k'.repeat(40), -10);
    await assert.rejects(tokens.verify(await short.issue({ userId: 'u', role: 'learner', contextId: 'c' })), Unauthorized);
  });
});
