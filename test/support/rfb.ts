/** A tiny RFB (VNC) client for tests: handshake (no auth), one raw framebuffer update. */
import type { Duplex } from 'node:stream';

export class ByteReader {
  private chunks: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;
  constructor(private readonly stream: Duplex) {
    stream.on('data', (c: Buffer) => { this.chunks = Buffer.concat([this.chunks, c]); this.waiter?.(); });
    stream.on('close', () => { this.ended = true; this.waiter?.(); });
  }
  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const end = Date.now() + timeoutMs;
    while (this.chunks.length < n) {
      if (this.ended) throw new Error(`stream ended after ${this.chunks.length}/${n} bytes`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out reading ${n} bytes (have ${this.chunks.length})`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiter = () => { clearTimeout(t); r(); }; });
      this.waiter = undefined;
    }
    const out = this.chunks.subarray(0, n);
    this.chunks = this.chunks.subarray(n);
    return out;
  }
}

export interface RfbResult {
  serverVersion: string;
  securityTypes: number[];
  width: number;
  height: number;
  name: string;
  /** Pixels of the first framebuffer update that are not black. */
  nonZeroPixels: number;
  totalPixels: number;
}

/** Runs the RFB 3.8 handshake with security "None", asks for a full raw update and counts non-black pixels. */
export async function rfbHandshake(stream: Duplex, timeoutMs = 15_000): Promise<RfbResult> {
  const r = new ByteReader(stream);
  const serverVersion = (await r.read(12, timeoutMs)).toString('latin1');
  if (!/^RFB \d{3}\.\d{3}\n$/.test(serverVersion)) throw new Error(`bad RFB version ${JSON.stringify(serverVersion)}`);
  stream.write('RFB 003.008\n');
  const n = (await r.read(1))[0] ?? 0;
  if (n === 0) {
    const len = (await r.read(4)).readUInt32BE(0);
    throw new Error(`RFB refused: ${(await r.read(len)).toString()}`);
  }
  const securityTypes = [...(await r.read(n))];
  if (!securityTypes.includes(1)) throw new Error(`no "None" security type in ${securityTypes.join(',')}`);
  stream.write(Buffer.from([1]));
  const result = (await r.read(4)).readUInt32BE(0);
  if (result !== 0) throw new Error(`RFB security result ${result}`);
  stream.write(Buffer.from([1])); // ClientInit: shared
  const init = await r.read(24);
  const width = init.readUInt16BE(0);
  const height = init.readUInt16BE(2);
  const bpp = init[4] ?? 32;
  const name = (await r.read(init.readUInt32BE(20))).toString('utf8');
  // SetEncodings [raw]
  const enc = Buffer.alloc(8);
  enc.writeUInt8(2, 0); enc.writeUInt16BE(1, 2); enc.writeInt32BE(0, 4);
  stream.write(enc);
  const req = Buffer.alloc(10);
  req.writeUInt8(3, 0); req.writeUInt8(0, 1); req.writeUInt16BE(0, 2); req.writeUInt16BE(0, 4); req.writeUInt16BE(width, 6); req.writeUInt16BE(height, 8);
  stream.write(req);
  let nonZeroPixels = 0;
  let totalPixels = 0;
  for (;;) {
    const type = (await r.read(1, timeoutMs))[0];
    if (type === 0) {
      const hdr = await r.read(3);
      const rects = hdr.readUInt16BE(1);
      for (let i = 0; i < rects; i++) {
        const rh = await r.read(12);
        const w = rh.readUInt16BE(4);
        const h = rh.readUInt16BE(6);
        const encoding = rh.readInt32BE(8);
        if (encoding !== 0) {
          if (encoding === -223) continue; // DesktopSize pseudo-rect: no payload
          throw new Error(`unexpected encoding ${encoding}`);
        }
        const px = await r.read((w * h * bpp) / 8, timeoutMs);
        const step = bpp / 8;
        for (let o = 0; o < px.length; o += step) {
          totalPixels++;
          for (let b = 0; b < step; b++) if (px[o + b] !== 0) { nonZeroPixels++; break; }
        }
      }
      break;
    } else if (type === 2) {
      continue; // bell
    } else if (type === 3) {
      const h = await r.read(7);
      await r.read(h.readUInt32BE(3));
    } else {
      throw new Error(`unexpected RFB server message ${String(type)}`);
    }
  }
  return { serverVersion: serverVersion.trim(), securityTypes, width, height, name, nonZeroPixels, totalPixels };
}

/**
 * The first screen with more than `minPixels` non-black pixels, handshaking anew every 250 ms (a
 * guest draws its screen asynchronously: lab-tiny's tty1 login comes after its "ready" line);
 * the last screen seen when none has by `timeoutMs`.
 */
export async function rfbScreenWithContent(open: () => Duplex, minPixels: number, timeoutMs = 30_000): Promise<RfbResult> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = open();
    try {
      const r = await rfbHandshake(s);
      if (r.nonZeroPixels > minPixels || Date.now() > end) return r;
    } finally {
      s.destroy();
    }
    await new Promise((res) => setTimeout(res, 250));
  }
}
