import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { readTarArchive } from '../../src/labs/definition/tarArchive.js';

/** A minimal ustar writer, to craft archives the system tar would refuse to make. */
function tar(entries: Array<{ name: string; data?: string; type?: string }>): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write(e.type ?? '0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

describe('lab archives (.tar.gz upload)', () => {
  it('reads files, strips a single top folder and names it', () => {
    const r = readTarArchive(gzipSync(tar([{ name: 'net/', type: '5' }, { name: 'net/lab.yaml', data: 'x: 1\n' }, { name: 'net/media/a.svg', data: '<svg/>' }])));
    assert.equal(r.topFolder, 'net');
    assert.deepEqual([...r.files.keys()].sort(), ['lab.yaml', 'media/a.svg']);
    assert.equal(r.files.get('lab.yaml')!.toString(), 'x: 1\n');
  });

  it('keeps a flat archive as it is', () => {
    const r = readTarArchive(tar([{ name: './lab.yaml', data: 'a' }, { name: './instructions/a.md', data: 'b' }]));
    assert.equal(r.topFolder, undefined);
    assert.deepEqual([...r.files.keys()].sort(), ['instructions/a.md', 'lab.yaml']);
  });

  for (const [what, entries] of [
    ['a ".." path', [{ name: 'net/../../etc/passwd', data: 'x' }]],
    ['an absolute path', [{ name: '/etc/passwd', data: 'x' }]],
    ['a symlink', [{ name: 'net/media/x', type: '2' }]],
    ['a hard link', [{ name: 'net/media/x', type: '1' }]],
  ] as const) {
    it(`refuses an archive with ${what}`, () => {
      assert.throws(() => readTarArchive(gzipSync(tar([...entries]))), { name: 'BadRequest' });
    });
  }

  it('refuses data that is not a tar archive', () => {
    assert.throws(() => readTarArchive(gzipSync(Buffer.alloc(2048, 'a'))), { name: 'BadRequest' });
    assert.throws(() => readTarArchive(Buffer.from([0x1f, 0x8b, 1, 2, 3])), { name: 'BadRequest' });
  });
});
