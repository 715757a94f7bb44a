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

  it('rejects an expired token', async () => {
    const short = new SessionTokens('k'.repeat(40), -10);
    await assert.rejects(tokens.verify(await short.issue({ userId: 'u', role: 'learner', contextId: 'c' })), Unauthorized);
  });
});
