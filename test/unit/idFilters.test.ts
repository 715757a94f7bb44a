/** The guard check writes use on FerretDB decides as MongoDB's filter would, and refuses what it does not know. */
import assert from 'node:assert/strict';
import { matchesGuard } from '../../src/store/idFilters.js';

describe('matchesGuard', () => {
  const doc = { _id: 'i1', generation: 2, state: 'running', warnedAt: null, handle: { name: 'h' }, claimRound: 0 };

  it('compares scalars exactly, a null in the guard matching null or a missing field', () => {
    assert.equal(matchesGuard(doc, { generation: 2, state: 'running' }), true);
    assert.equal(matchesGuard(doc, { generation: 3 }), false);
    assert.equal(matchesGuard(doc, { generation: '2' }), false, 'no type coercion');
    assert.equal(matchesGuard(doc, { warnedAt: null }), true);
    assert.equal(matchesGuard(doc, { expiresAt: null }), true, 'missing counts as null');
    assert.equal(matchesGuard(doc, { claimRound: 0 }), true);
    assert.equal(matchesGuard(doc, { claimRound: null }), false, 'zero is not null');
    assert.equal(matchesGuard(doc, { handle: null }), false);
    assert.equal(matchesGuard(doc, {}), true);
  });

  it('applies $in and $ne', () => {
    assert.equal(matchesGuard(doc, { state: { $in: ['provisioning', 'running'] } }), true);
    assert.equal(matchesGuard(doc, { state: { $in: ['stopped'] } }), false);
    assert.equal(matchesGuard(doc, { state: { $in: [] } }), false);
    assert.equal(matchesGuard(doc, { expiresAt: { $in: [null] } }), true);
    assert.equal(matchesGuard(doc, { handle: { $ne: null } }), true);
    assert.equal(matchesGuard(doc, { warnedAt: { $ne: null } }), false);
    assert.equal(matchesGuard(doc, { state: { $ne: 'running' } }), false);
    assert.equal(matchesGuard(doc, { generation: 2, state: { $in: ['running'] }, handle: { $ne: null } }), true);
    assert.equal(matchesGuard(doc, { generation: 2, state: { $in: ['stopped'] } }), false, 'every key must pass');
  });

  it('throws on a condition it cannot decide instead of guessing', () => {
    assert.throws(() => matchesGuard(doc, { generation: { $gt: 1 } }), /unsupported condition \$gt/);
    assert.throws(() => matchesGuard(doc, { state: {} }), /empty condition/);
    assert.throws(() => matchesGuard(doc, { state: { $in: [{ a: 1 }] } }), /unsupported condition \$in/);
    assert.throws(() => matchesGuard(doc, { startedAt: new Date() }), /unsupported value/);
    assert.throws(() => matchesGuard(doc, { state: undefined }), /unsupported value/);
  });
});
