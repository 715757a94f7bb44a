import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';

describe('ltijs shares our mongoose', () => {
  it('resolves mongoose from ltijs to the same module as ours (one default connection, deduped by npm)', () => {
    const require = createRequire(import.meta.url);
    const ltijsDir = path.dirname(require.resolve('ltijs/package.json'));
    assert.equal(require.resolve('mongoose', { paths: [ltijsDir] }), require.resolve('mongoose'));
  });
});
