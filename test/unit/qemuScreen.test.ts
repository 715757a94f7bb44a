import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { looksDrawn, readPpm } from '../../src/backends/qemu/screen.js';

/** A P6 screen of w×h filled by `px(x, y)` (0xRRGGBB). */
function ppm(file: string, w: number, h: number, px: (x: number, y: number) => number): string {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const c = px(x, y);
    data.set([c >> 16, (c >> 8) & 0xff, c & 0xff], (y * w + x) * 3);
  }
  fs.writeFileSync(file, Buffer.concat([Buffer.from(`P6\n${w} ${h}\n255\n`), data]));
  return file;
}

describe('QEMU screen samples (is the desktop drawn?)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'screen-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads size, colours, the black share and a digest from a screendump', () => {
    const s = readPpm(ppm(path.join(dir, 'a.ppm'), 40, 10, (x) => (x < 10 ? 0 : 0x152233)));
    assert.deepEqual([s.width, s.height, s.colours, s.black], [40, 10, 2, 0.25]);
    assert.equal(readPpm(ppm(path.join(dir, 'b.ppm'), 40, 10, (x) => (x < 10 ? 0 : 0x152233))).digest, s.digest);
    assert.notEqual(readPpm(ppm(path.join(dir, 'c.ppm'), 40, 10, (x) => (x < 11 ? 0 : 0x152233))).digest, s.digest);
    assert.throws(() => readPpm(path.join(dir, 'x.ppm')), /ENOENT/);
    fs.writeFileSync(path.join(dir, 'p5.ppm'), 'P5\n1 1\n255\n\0');
    assert.throws(() => readPpm(path.join(dir, 'p5.ppm')), /not a P6 PPM/);
  });

  it('tells a drawn desktop from a text console, an empty black X screen with its pointer, and one colour', () => {
    const [w, h] = [320, 200];
    const text = ppm(path.join(dir, 'text.ppm'), w, h, (x, y) => (y < 16 && x % 3 === 0 ? 0xaaaaaa : 0));
    const pointer = ppm(path.join(dir, 'pointer.ppm'), w, h, (x, y) => (x < 20 && y < 20 ? ((x * 4 + y) % 80) * 0x030303 : 0));
    const flat = ppm(path.join(dir, 'flat.ppm'), w, h, () => 0x152233);
    const desktop = ppm(path.join(dir, 'desk.ppm'), w, h, (x, y) => (y < 14 ? 0xf6f5f4 - (x % 300) : y > 180 && x < 64 ? (x << 16) | (y << 8) | (x + y) : 0x152233));
    assert.equal(looksDrawn(readPpm(text)), false);
    assert.equal(looksDrawn(readPpm(pointer)), false);
    assert.equal(looksDrawn(readPpm(flat)), false);
    assert.equal(looksDrawn(readPpm(desktop)), true);
  });
});
