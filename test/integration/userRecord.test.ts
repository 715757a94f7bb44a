/** Users are found by an id derived from (issuer, sub) under the tool's secret; users made before keep theirs. */
import assert from 'node:assert/strict';
import { startTestTool, type TestTool } from '../support/tool.js';
import { User, UserIds, newUserId, upsertUser } from '../../src/store/User.js';

describe('user records', () => {
  let tool: TestTool;
  const ids = new UserIds('a-secret-of-at-least-thirty-two-characters');
  const who = (sub: string, name = 'Ada') => ({ issuer: 'https://moodle.example.edu', sub, name, email: null, role: 'learner' as const });

  before(async () => { tool = await startTestTool(); });
  after(async () => { await tool.shutdown(); });

  it('derives one id per (issuer, sub) and secret, shaped like a random one, that tells nothing of the sub', () => {
    const a = ids.of('https://moodle.example.edu', '42');
    assert.equal(a, ids.of('https://moodle.example.edu', '42'));
    assert.notEqual(a, ids.of('https://moodle.example.edu', '43'));
    assert.notEqual(a, ids.of('https://other.example.edu', '42'));
    assert.notEqual(a, new UserIds('another-secret-of-at-least-thirty-two-chars').of('https://moodle.example.edu', '42'));
    assert.match(a, /^u[A-Za-z0-9_-]{16}$/);
    assert.equal(newUserId().length, a.length);
    assert.ok(!a.includes('42'));
  });

  it('creates the user under the derived id once, 20 first launches at once included, and keeps the profile current', async () => {
    const docs = await Promise.all(Array.from({ length: 20 }, () => upsertUser(who('s-concurrent'), ids)));
    assert.deepEqual(new Set(docs.map((d) => d._id)), new Set([ids.of('https://moodle.example.edu', 's-concurrent')]));
    assert.equal(await User.countDocuments({ sub: 's-concurrent' }), 1);
    const again = await upsertUser({ ...who('s-concurrent', 'Ada Lovelace'), role: 'instructor' }, ids);
    assert.equal(again._id, docs[0]!._id);
    assert.deepEqual([again.name, again.role, again.issuer, again.sub], ['Ada Lovelace', 'instructor', 'https://moodle.example.edu', 's-concurrent']);
  });

  it('finds a user created before ids were derived (or under another secret) by issuer and sub, and keeps its id', async () => {
    await User.create({ _id: 'uOldRandomId00000', issuer: 'https://moodle.example.edu', sub: 's-legacy', name: 'Old', email: null, role: 'learner' });
    const doc = await upsertUser(who('s-legacy', 'Grace'), ids);
    assert.equal(doc._id, 'uOldRandomId00000');
    assert.equal(doc.name, 'Grace');
    assert.equal(await User.countDocuments({ sub: 's-legacy' }), 1, 'no second record');
    const other = await upsertUser(who('s-legacy', 'Grace H.'), new UserIds('another-secret-of-at-least-thirty-two-chars'));
    assert.equal(other._id, 'uOldRandomId00000');
    assert.equal(other.name, 'Grace H.');
  });
});
