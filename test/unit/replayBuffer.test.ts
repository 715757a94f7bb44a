import assert from 'node:assert/strict';
import { ReplayBuffer } from '../../src/proxy/ReplayBuffer.js';

describe('ReplayBuffer (console history replayed on join)', () => {
  it('replays everything while under the bound', () => {
    const b = new ReplayBuffer(64);
    b.push(Buffer.from('banner\r\n'));
    b.push(Buffer.from('login: '));
    assert.equal(b.replay().toString(), 'banner\r\nlogin: ');
  });

  it('keeps at most maxBytes, starting at a line once old output was dropped', () => {
    const b = new ReplayBuffer(32);
    for (let i = 0; i < 100; i++) b.push(Buffer.from(`line ${i}\r\n`));
    b.push(Buffer.from('$ '));
    const r = b.replay();
    assert.ok(r.length <= 32, `bounded: ${r.length}`);
    assert.match(r.toString(), /^line \d+\r\n(line \d+\r\n)*\$ $/);
    assert.ok(r.toString().endsWith('line 99\r\n$ '));
  });

  it('keeps the tail of a single chunk larger than the bound', () => {
    const b = new ReplayBuffer(8);
    b.push(Buffer.from('0123456789abcdef'));
    assert.equal(b.replay().toString(), '89abcdef');
  });

  it('keeps nothing with a bound of 0', () => {
    const b = new ReplayBuffer(0);
    b.push(Buffer.from('x'));
    assert.equal(b.replay().length, 0);
  });
});
