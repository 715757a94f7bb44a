import assert from 'node:assert/strict';
import { LaunchIds } from '../../src/lti/LaunchIds.js';
import { EARLY_MS, RecentLogins } from '../../src/lti/RecentLogins.js';
import type { LoginStateDoc } from '../../src/store/LtiLogin.js';

describe('what a launch remembers in this process', () => {
  it('gives back a record written with the same fields within a minute, and nothing for other fields or later', () => {
    let t = 1_000_000;
    const ids = new LaunchIds(() => t);
    const doc = { _id: 'u1', name: 'Ada' };
    ids.wrote('u', '{"name":"Ada"}', doc);
    assert.equal(ids.recent('u', '{"name":"Ada"}'), doc);
    assert.equal(ids.recent('u', '{"name":"Ada Lovelace"}'), undefined, 'other fields: written again');
    assert.equal(ids.recent('other', '{"name":"Ada"}'), undefined);
    t += 59_999;
    assert.equal(ids.recent('u', '{"name":"Ada"}'), doc);
    t += 1;
    assert.equal(ids.recent('u', '{"name":"Ada"}'), undefined, 'a minute later: written again');
  });

  it('keeps ids by key and forgets the oldest past its bound', () => {
    const ids = new LaunchIds();
    for (let i = 0; i <= 20_000; i++) ids.set(`k${i}`, `id${i}`);
    assert.equal(ids.get('k0'), undefined, 'the oldest went');
    assert.equal(ids.get('k1'), 'id1');
    assert.equal(ids.get('k20000'), 'id20000');
  });

  it('hands a login out once, and drops expired ones as new ones come', () => {
    let t = 5_000;
    const logins = new RecentLogins(() => t);
    const login = (id: string): LoginStateDoc => ({
      _id: id, nonce: `n-${id}`, issuer: 'https://moodle.example', clientId: 'c', deploymentId: 'd', targetLinkUri: 'https://tool.example/lti', expiresAt: new Date(t + 10_000),
    });
    logins.add(login('a'));
    logins.add(login('b'));
    assert.equal(logins.take('a')?.doc.nonce, 'n-a');
    assert.equal(logins.take('a'), undefined, 'a second post of a state reads the database');
    logins.add(login('c'));
    t += 10_001; // b and c expired
    logins.add(login('d'));
    assert.equal(logins.take('b'), undefined, 'expired: dropped when a new login came');
    assert.equal(logins.take('c'), undefined);
    assert.equal(logins.take('d')?.doc.nonce, 'n-d');
  });

  it('hands what a login started to its launch for a few seconds only, and keeps at most a thousand', () => {
    let t = 5_000;
    const logins = new RecentLogins(() => t);
    const login = (id: string): LoginStateDoc => ({
      _id: id, nonce: `n-${id}`, issuer: 'https://moodle.example', clientId: 'c', deploymentId: 'd', targetLinkUri: 'https://tool.example/lti', expiresAt: new Date(t + 600_000),
    });
    logins.add(login('a'), 'read of a');
    logins.add(login('b'), 'read of b');
    logins.add(login('plain'));
    assert.deepEqual(logins.take('a'), { doc: login('a'), early: 'read of a' });
    assert.equal(logins.take('plain')?.early, undefined, 'nothing started: nothing handed');
    t += EARLY_MS;
    const late = logins.take('b');
    assert.equal(late?.doc._id, 'b', 'the login itself lives on');
    assert.equal(late.early, undefined, 'too late: the launch reads afresh');
    for (let i = 0; i < 1_001; i++) logins.add(login(`x${i}`), `read ${i}`);
    assert.equal(logins.take('x0')?.early, undefined, 'the oldest went past the bound');
    assert.equal(logins.take('x0'), undefined);
    assert.equal(logins.take('x1')?.early, 'read 1');
    assert.equal(logins.take('x1000')?.early, 'read 1000');
  });
});
