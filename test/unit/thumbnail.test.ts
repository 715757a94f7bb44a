import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { decodePng, decodePpm, decodeScreen, encodePng, scaleDown, thumbnailPng } from '../../src/backends/thumbnail.js';

const ppm = (w: number, h: number, f: (x: number, y: number) => [number, number, number]) => {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set(f(x, y), (y * w + x) * 3);
  return Buffer.concat([Buffer.from(`P6\n${w} ${h}\n255\n`, 'latin1'), px]);
};

describe('screen thumbnails (PPM/PNG → small PNG)', () => {
  it('encodes a PNG that decodes to the same pixels, with valid chunk CRCs', () => {
    const src = decodePpm(ppm(7, 5, (x, y) => [x * 30, y * 50, (x * y) & 255]));
    const png = encodePng(src);
    assert.deepEqual(decodePng(png), { width: 7, height: 5, pixels: Buffer.from(src.pixels) });
    // every chunk's CRC is the CRC of its type and data (what browsers check)
    for (let at = 8; at < png.length;) {
      const len = png.readUInt32BE(at);
      assert.equal(png.readUInt32BE(at + 8 + len), zlib.crc32(png.subarray(at + 4, at + 8 + len)) >>> 0);
      at += 12 + len;
    }
  });

  it('decodes RGBA PNG rows with the Paeth and average filters', () => {
    // 3x2 RGBA rows: filter 4 (Paeth) then filter 3 (average), built by hand
    const rows = [
      [4, 10, 20, 30, 255, 5, 5, 5, 0, 1, 1, 1, 0],
      [3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    const ihdr = Buffer.from([0, 0, 0, 3, 0, 0, 0, 2, 8, 6, 0, 0, 0]);
    const chunk = (type: string, data: Buffer) => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(data.length);
      head.write(type, 4, 'latin1');
      return Buffer.concat([head, data, Buffer.alloc(4)]);
    };
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.from(rows.flat()))), chunk('IEND', Buffer.alloc(0))]);
    const img = decodeScreen(png);
    // row 0, Paeth with no row above = "sub": 10,20,30 | 15,25,35 | 16,26,36
    assert.deepEqual([...img.pixels.subarray(0, 9)], [10, 20, 30, 15, 25, 35, 16, 26, 36]);
    // row 1, average of left and above: 1+5=6,2+10=12,3+15=18 | 6+(6+15)/2=16 ...
    assert.deepEqual([...img.pixels.subarray(9, 12)], [6, 12, 18]);
    assert.deepEqual([...img.pixels.subarray(12, 15)], [(6 + 15) >> 1, (12 + 25) >> 1, (18 + 35) >> 1]);
  });

  it('scales down by averaging blocks and keeps the aspect ratio', () => {
    const img = decodePpm(ppm(4, 2, (x) => (x % 2 ? [200, 100, 0] : [0, 100, 200])));
    const small = scaleDown(img, 2);
    assert.deepEqual([small.width, small.height], [2, 1]);
    assert.deepEqual([...small.pixels], [100, 100, 100, 100, 100, 100]);
    const t = decodePng(thumbnailPng(ppm(1024, 768, () => [1, 2, 3])));
    assert.deepEqual([t.width, t.height], [320, 240]);
  });

  it('refuses what is not a screen image, and screens too large to decode', () => {
    assert.throws(() => decodeScreen(Buffer.from('hello')), /not a P6 PPM/);
    assert.throws(() => decodePpm(Buffer.from('P6\n100000 100000\n255\n')), /100000x100000/);
    assert.throws(() => decodePpm(Buffer.from('P6\n10 10\n255\nabc')), /cut short/);
  });
});
