import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { MAX_ARCHIVE_ENTRIES, MAX_PATH_DEPTH, readTarArchive } from '../../src/labs/definition/tarArchive.js';
import { tar } from '../support/tarWriter.js';

describe('lab archives (.tar.gz upload)', () => {
  it('reads files, strips a single top folder and names it', async () => {
    const r = await readTarArchive(gzipSync(tar([{ name: 'net/', type: '5' }, { name: 'net/lab.yaml', data: 'x: 1\n' }, { name: 'net/media/a.svg', data: '<svg/>' }])));
    assert.equal(r.topFolder, 'net');
    assert.deepEqual([...r.files.keys()].sort(), ['lab.yaml', 'media/a.svg']);
    assert.equal(r.files.get('lab.yaml')!.toString(), 'x: 1\n');
  });

  it('keeps a flat archive as it is', async () => {
    const r = await readTarArchive(tar([{ name: './lab.yaml', data: 'a' }, { name: './instructions/a.md', data: 'b' }]));
    assert.equal(r.topFolder, undefined);
    assert.deepEqual([...r.files.keys()].sort(), ['instructions/a.md', 'lab.yaml']);
  });

  for (const [what, entries] of [
    ['a ".." path', [{ name: 'net/../../etc/passwd', data: 'x' }]],
    ['an absolute path', [{ name: '/etc/passwd', data: 'x' }]],
    ['a symlink', [{ name: 'net/media/x', type: '2' }]],
    ['a hard link', [{ name: 'net/media/x', type: '1' }]],
  ] as const) {
    it(`refuses an archive with ${what}`, async () => {
      await assert.rejects(readTarArchive(gzipSync(tar([...entries]))), { name: 'BadRequest' });
    });
  }

  it('refuses data that is not a tar archive', async () => {
    await assert.rejects(readTarArchive(gzipSync(Buffer.alloc(2048, 'a'))), { name: 'BadRequest' });
    await assert.rejects(readTarArchive(Buffer.from([0x1f, 0x8b, 1, 2, 3])), { name: 'BadRequest' });
  });

  it('keeps empty files', async () => {
    const r = await readTarArchive(tar([{ name: 'lab.yaml', data: 'a' }, { name: 'media/empty.txt' }]));
    assert.equal(r.files.get('media/empty.txt')?.length, 0);
  });

  it(`counts entries (folders too) and refuses more than ${MAX_ARCHIVE_ENTRIES}`, async () => {
    const entries = Array.from({ length: MAX_ARCHIVE_ENTRIES - 1 }, (_, i) => ({ name: `lab/media/d${i}/`, type: '5' }));
    await readTarArchive(tar([...entries, { name: 'lab/lab.yaml', data: 'a' }]));
    await assert.rejects(readTarArchive(tar([...entries, { name: 'lab/lab.yaml', data: 'a' }, { name: 'lab/x' }])), { name: 'BadRequest', publicMessage: new RegExp(`more than ${MAX_ARCHIVE_ENTRIES} entries`) } as never);
  });

  it(`refuses files nested deeper than ${MAX_PATH_DEPTH} folders inside the lab (a top folder does not count)`, async () => {
    const dirs = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`).join('/');
    const ok = await readTarArchive(tar([{ name: `lab/lab.yaml`, data: 'a' }, { name: `lab/${dirs(MAX_PATH_DEPTH)}/x` }]));
    assert.equal(ok.topFolder, 'lab');
    await readTarArchive(tar([{ name: 'lab.yaml', data: 'a' }, { name: `${dirs(MAX_PATH_DEPTH)}/x` }]));
    await assert.rejects(readTarArchive(tar([{ name: 'lab.yaml', data: 'a' }, { name: `${dirs(MAX_PATH_DEPTH + 1)}/x` }])), { name: 'BadRequest' });
    await assert.rejects(readTarArchive(tar([{ name: `lab/lab.yaml`, data: 'a' }, { name: `lab/${dirs(MAX_PATH_DEPTH + 1)}/x` }])), { name: 'BadRequest' });
  });
});
