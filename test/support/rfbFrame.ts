/** Reads one whole frame from an RFB (VNC) server, as noVNC first sees it: handshake (no auth), a full raw update. */
import type { Duplex } from 'node:stream';
import { ByteReader } from './rfb.js';

export interface RfbFrame {
  width: number;
  height: number;
  /** 0xRRGGBB per pixel, row by row. */
  pixels: Uint32Array;
}

export async function rfbFrame(stream: Duplex, timeoutMs = 30_000): Promise<RfbFrame> {
  const r = new ByteReader(stream);
  const version = (await r.read(12, timeoutMs)).toString('latin1');
  if (!/^RFB \d{3}\.\d{3}\n$/.test(version)) throw new Error(`bad RFB version ${JSON.stringify(version)}`);
  stream.write('RFB 003.008\n');
  const n = (await r.read(1))[0] ?? 0;
  if (n === 0) throw new Error('RFB refused the connection');
  if (![...(await r.read(n))].includes(1)) throw new Error('no "None" security type');
  stream.write(Buffer.from([1]));
  if ((await r.read(4)).readUInt32BE(0) !== 0) throw new Error('RFB security failed');
  stream.write(Buffer.from([1])); // ClientInit: shared
  const init = await r.read(24);
  const width = init.readUInt16BE(0);
  const height = init.readUInt16BE(2);
  await r.read(init.readUInt32BE(20)); // desktop name
  // SetPixelFormat: 32 bpp, depth 24, little endian, true colour, red at bit 16, green 8, blue 0
  const pf = Buffer.alloc(20);
  pf.writeUInt8(0, 0);
  pf.set([32, 24, 0, 1], 4);
  pf.writeUInt16BE(255, 8); pf.writeUInt16BE(255, 10); pf.writeUInt16BE(255, 12);
  pf.set([16, 8, 0], 14);
  stream.write(pf);
  const enc = Buffer.alloc(8); // SetEncodings [raw]
  enc.writeUInt8(2, 0); enc.writeUInt16BE(1, 2); enc.writeInt32BE(0, 4);
  stream.write(enc);
  const req = Buffer.alloc(10); // FramebufferUpdateRequest, not incremental, the whole screen
  req.writeUInt8(3, 0); req.writeUInt16BE(width, 6); req.writeUInt16BE(height, 8);
  stream.write(req);
  const pixels = new Uint32Array(width * height);
  for (;;) {
    const type = (await r.read(1, timeoutMs))[0];
    if (type === 2) continue; // bell
    if (type === 3) { const h = await r.read(7); await r.read(h.readUInt32BE(3)); continue; }
    if (type !== 0) throw new Error(`unexpected RFB server message ${String(type)}`);
    const rects = (await r.read(3)).readUInt16BE(1);
    for (let i = 0; i < rects; i++) {
      const rh = await r.read(12);
      const [x, y, w, h, encoding] = [rh.readUInt16BE(0), rh.readUInt16BE(2), rh.readUInt16BE(4), rh.readUInt16BE(6), rh.readInt32BE(8)];
      if (encoding !== 0) continue; // pseudo-encodings carry no pixels
      const px = await r.read(w * h * 4, timeoutMs);
      for (let row = 0; row < h; row++) {
        for (let col = 0; col < w; col++) pixels[(y + row) * width + x + col] = px.readUInt32LE((row * w + col) * 4) & 0xffffff;
      }
    }
    return { width, height, pixels };
  }
}

/** Distinct colours and the most common one (0xRRGGBB) with its share of the screen. */
export function frameColours(f: RfbFrame): { colours: number; dominant: number; dominantShare: number } {
  const counts = new Map<number, number>();
  for (const p of f.pixels) counts.set(p, (counts.get(p) ?? 0) + 1);
  let dominant = 0;
  let most = 0;
  for (const [c, k] of counts) if (k > most) { most = k; dominant = c; }
  return { colours: counts.size, dominant, dominantShare: most / Math.max(1, f.pixels.length) };
}
