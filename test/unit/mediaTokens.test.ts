import assert from 'node:assert/strict';
import { MediaTokens } from '../../src/auth/mediaTokens.js';
import { signMediaUrls } from '../../src/labs/definition/render.js';
import type { RenderedInstructions } from '../../src/labs/contracts.js';

describe('signed media URLs', () => {
  const m = new MediaTokens('a-secret-key-of-thirty-two-characters!');
  const A = { kind: 'platform', platformId: 'plat-a' } as const;

  it('name the viewer they were issued to, for that lab version only, until they expire', () => {
    const now = Date.UTC(2026, 0, 1, 9, 10);
    const t = m.issue('lab-b', 'v1', A, now);
    assert.deepEqual(m.verify('lab-b', 'v1', t, now), A);
    assert.equal(m.issue('lab-b', 'v1', A, now + 60_000), t, 'the same URL within the hour (cacheable)');
    assert.equal(m.verify('lab-b', 'v2', t, now), undefined, 'another version');
    assert.equal(m.verify('lab-c', 'v1', t, now), undefined, 'another lab');
    assert.equal(m.verify('lab-b', 'v1', t, now + 2 * 3600_000), undefined, 'expired after two hours at most');
    assert.equal(new MediaTokens('another-secret-key-of-32-characters!!').verify('lab-b', 'v1', t, now), undefined, 'another key');
    // the viewer part cannot be swapped for another platform's
    const [exp, , sig] = t.split('.');
    assert.equal(m.verify('lab-b', 'v1', `${exp}.p${Buffer.from('plat-b').toString('base64url')}.${sig}`, now), undefined);
    assert.deepEqual(m.verify('x', '1', m.issue('x', '1', { kind: 'operator' }, now), now), { kind: 'operator' });
  });

  it('are added to every media URL of the lab in the pages, nothing else', () => {
    const t = { labId: 'lab b', version: '3', title: '', pages: [{ id: 'p', title: 'P', html: '<img src="/labs/lab%20b/3/media/a%20b.svg" alt="x"><img src="https://example.org/x.png"><video src="/labs/lab%20b/3/media/v.webm"></video>' }], steps: [], grading: { mode: 'manual', maxScore: 1 } } as unknown as RenderedInstructions;
    const s = signMediaUrls(t, 'T.k');
    assert.equal(s.pages[0]!.html, '<img src="/labs/lab%20b/3/media/a%20b.svg?t=T.k" alt="x"><img src="https://example.org/x.png"><video src="/labs/lab%20b/3/media/v.webm?t=T.k"></video>');
  });
});
