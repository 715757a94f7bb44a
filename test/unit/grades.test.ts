import assert from 'node:assert/strict';
import { decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { retryDelayMs, scoresUrl, validateScore } from '../../src/lti/grades/GradeService.js';
import { signClientAssertion } from '../../src/lti/grades/clientAssertion.js';

describe('grades: pure parts', () => {
  it('builds the scores URL as the line item path + /scores with the query kept after it, like Moodle', () => {
    assert.equal(scoresUrl('https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1'),
      'https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1');
    assert.equal(scoresUrl('https://p.example/li/7/'), 'https://p.example/li/7/scores');
  });

  it('backs off exponentially from the base delay up to the cap, with bounded jitter', () => {
    const mid = () => 0.5; // no jitter
    assert.deepEqual([1, 2, 3, 4, 5, 10].map((a) => retryDelayMs(a, 1000, 10_000, mid)), [1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert.equal(retryDelayMs(1, 1000, 10_000, () => 0), 800);
    assert.equal(retryDelayMs(1, 1000, 10_000, () => 1), 1200);
    assert.equal(retryDelayMs(30, 1000, 10_000, () => 1), 10_000, 'jitter never exceeds the cap');
  });

  it('validates scores: progress values, scoreMaximum with scoreGiven, no negative scores', () => {
    validateScore({ activityProgress: 'Completed', gradingProgress: 'FullyGraded', scoreGiven: 0, scoreMaximum: 1 });
    validateScore({ activityProgress: 'Started', gradingProgress: 'NotReady' });
    assert.throws(() => validateScore({ activityProgress: 'Completed', gradingProgress: 'FullyGraded', scoreGiven: 1 }), /scoreMaximum/);
    assert.throws(() => validateScore({ activityProgress: 'Completed', gradingProgress: 'FullyGraded', scoreGiven: -1, scoreMaximum: 5 }), /scoreGiven/);
    assert.throws(() => validateScore({ activityProgress: 'Done' as 'Completed', gradingProgress: 'FullyGraded' }), /activityProgress/);
  });

  it('signs client assertions with iss = sub = client id, aud = token URL, a jti and the kid', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const jwt = await signClientAssertion({ issuer: 'https://p', clientId: 'c1', tokenUrl: 'https://p/token' }, { privateKey, kid: 'k1' });
    const p = decodeJwt(jwt);
    assert.equal(p.iss, 'c1');
    assert.equal(p.sub, 'c1');
    assert.equal(p.aud, 'https://p/token');
    assert.ok(p.jti);
    assert.equal((p.exp ?? 0) - (p.iat ?? 0), 300);
    assert.deepEqual(decodeProtectedHeader(jwt), { alg: 'RS256', kid: 'k1', typ: 'JWT' });
  });
});
