/**
 * A small PNG of a machine's screen for the teacher's overview: reads the screen image a backend
 * gets (a binary PPM from QEMU's screendump, or a PNG from KubeVirt's screenshot subresource),
 * scales it down by averaging (box filter) and encodes it again as an 8-bit RGB PNG. Node's zlib
 * only: no native image library.
 */
import zlib from 'node:zlib';
import { BackendFailure } from '../errors.js';

export interface Rgb {
  width: number;
  height: number;
  /** width × height × 3 bytes, row by row. */
  pixels: Buffer;
}

/** The widest thumbnail (pixels); its height keeps the screen's aspect ratio. */
export const THUMBNAIL_WIDTH = 320;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Larger screens are refused (a guest cannot make the tool decode a huge image). */
const MAX_PIXELS = 4096 * 4096;

function tooLarge(width: number, height: number): boolean {
  return width < 1 || height < 1 || width * height > MAX_PIXELS;
}

/** A binary PPM (P6, 8 bits per channel), as QEMU's screendump writes it. */
export function decodePpm(buf: Buffer): Rgb {
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(buf.subarray(0, 64).toString('latin1'));
  if (!header) throw new BackendFailure('the screen image is not a P6 PPM with 8-bit channels');
  const [width, height] = [Number(header[1]), Number(header[2])];
  if (tooLarge(width, height)) throw new BackendFailure(`the screen image is ${width}x${height}`);
  const start = header[0].length;
  if (buf.length < start + width * height * 3) throw new BackendFailure('the screen image is cut short');
  return { width, height, pixels: buf.subarray(start, start + width * height * 3) };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** A PNG with 8-bit RGB or RGBA pixels, not interlaced (what screenshot tools write); alpha is dropped. */
export function decodePng(buf: Buffer): Rgb {
  if (!buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw new BackendFailure('the screen image is not a PNG');
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at + 8 <= buf.length;) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0) throw new BackendFailure(`unsupported PNG (bit depth ${depth}, colour type ${colour}, interlace ${interlace})`);
      if (tooLarge(width, height)) throw new BackendFailure(`the screen image is ${width}x${height}`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + len;
  }
  if (!channels) throw new BackendFailure('the PNG has no header');
  const stride = width * channels;
  const raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: (stride + 1) * height });
  if (raw.length < (stride + 1) * height) throw new BackendFailure('the PNG is cut short');
  const out = Buffer.alloc(width * height * 3);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const row = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? row[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      const add = filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : 0;
      row[i] = (row[i]! + add) & 0xff;
    }
    for (let x = 0; x < width; x++) row.copy(out, (y * width + x) * 3, x * channels, x * channels + 3);
    prev = row;
  }
  return { width, height, pixels: out };
}

/** Either format, told apart by its first bytes. */
export function decodeScreen(buf: Buffer): Rgb {
  return buf.subarray(0, 8).equals(PNG_SIGNATURE) ? decodePng(buf) : decodePpm(buf);
}

/** Averages each block of source pixels into one (no scaling up). */
export function scaleDown(img: Rgb, maxWidth: number): Rgb {
  if (img.width <= maxWidth) return img;
  const width = maxWidth;
  const height = Math.max(1, Math.round((img.height * maxWidth) / img.width));
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const y0 = Math.floor((y * img.height) / height);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * img.height) / height));
    for (let x = 0; x < width; x++) {
      const x0 = Math.floor((x * img.width) / width);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * img.width) / width));
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = y0; sy < y1; sy++) {
        for (let sx = x0, i = (sy * img.width + x0) * 3; sx < x1; sx++, i += 3) {
          r += img.pixels[i]!;
          g += img.pixels[i + 1]!;
          b += img.pixels[i + 2]!;
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      const o = (y * width + x) * 3;
      out[o] = Math.round(r / n);
      out[o + 1] = Math.round(g / n);
      out[o + 2] = Math.round(b / n);
    }
  }
  return { width, height, pixels: out };
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG, each row with the "sub" filter (screens are mostly flat runs of one colour). */
export function encodePng(img: Rgb): Buffer {
  const stride = img.width * 3;
  const raw = Buffer.alloc((stride + 1) * img.height);
  for (let y = 0; y < img.height; y++) {
    const o = y * (stride + 1);
    raw[o] = 1;
    for (let i = 0; i < stride; i++) {
      const cur = img.pixels[y * stride + i]!;
      raw[o + 1 + i] = (cur - (i >= 3 ? img.pixels[y * stride + i - 3]! : 0)) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(img.width, 0);
  ihdr.writeUInt32BE(img.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 6 })), chunk('IEND', Buffer.alloc(0))]);
}

/** The screen image (PPM or PNG) as a thumbnail PNG at most `maxWidth` wide. */
export function thumbnailPng(screen: Buffer, maxWidth = THUMBNAIL_WIDTH): Buffer {
  return encodePng(scaleDown(decodeScreen(screen), maxWidth));
}
