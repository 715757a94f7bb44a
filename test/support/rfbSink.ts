/**
 * A minimal RFB 3.8 server for page tests over the loopback runtime: security None, a 640×400
 * true-colour framebuffer drawn with a pattern and a light "text" band, answered in Raw encoding.
 * Records the key events it receives, so a test can tell whether input reached the "machine".
 */
import type { Duplex } from 'node:stream';

export interface RfbSinkState {
  keys: number[];
  pointerEvents: number;
}

export function serveRfb(socket: Duplex, state: RfbSinkState, size = { w: 640, h: 400 }): void {
  let buf = Buffer.alloc(0);
  let stage: 'version' | 'security' | 'init' | 'messages' = 'version';
  socket.write('RFB 003.008\n');
  const frame = (): Buffer => {
    const { w, h } = size;
    const head = Buffer.alloc(16);
    head.writeUInt8(0, 0); // FramebufferUpdate
    head.writeUInt16BE(1, 2);
    head.writeUInt16BE(0, 4); head.writeUInt16BE(0, 6); head.writeUInt16BE(w, 8); head.writeUInt16BE(h, 10);
    head.writeInt32BE(0, 12); // Raw
    const px = Buffer.alloc(w * h * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        const band = y > 40 && y < 120 && x > 30 && x < 600 && (x >> 3) % 2 === 0 && (y >> 4) % 2 === 0;
        px[o] = band ? 230 : 20 + (x % 64); // noVNC's pixel format: R, G, B, pad
        px[o + 1] = band ? 230 : 40 + (y % 64);
        px[o + 2] = band ? 230 : 90;
      }
    }
    return Buffer.concat([head, px]);
  };
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (stage === 'version') {
        if (buf.length < 12) return;
        buf = buf.subarray(12);
        socket.write(Buffer.from([1, 1])); // one security type: None
        stage = 'security';
      } else if (stage === 'security') {
        if (buf.length < 1) return;
        buf = buf.subarray(1);
        socket.write(Buffer.from([0, 0, 0, 0])); // SecurityResult OK
        stage = 'init';
      } else if (stage === 'init') {
        if (buf.length < 1) return;
        buf = buf.subarray(1);
        const name = Buffer.from('lab-desktop');
        const init = Buffer.alloc(24);
        init.writeUInt16BE(size.w, 0); init.writeUInt16BE(size.h, 2);
        Buffer.from([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0]).copy(init, 4);
        init.writeUInt32BE(name.length, 20);
        socket.write(Buffer.concat([init, name]));
        stage = 'messages';
      } else {
        if (buf.length < 1) return;
        const t = buf[0]!;
        const len = t === 0 ? 20 : t === 2 ? (buf.length < 4 ? -1 : 4 + 4 * buf.readUInt16BE(2)) : t === 3 ? 10 : t === 4 ? 8 : t === 5 ? 6
          : t === 6 ? (buf.length < 8 ? -1 : 8 + Math.abs(buf.readInt32BE(4))) : t === 248 ? (buf.length < 9 ? -1 : 9 + buf[8]!) : t === 150 ? 10
            : t === 255 ? (buf.length < 2 ? -1 : buf[1] === 0 ? 12 : 4) : 1;
        if (len < 0 || buf.length < len) return;
        const msg = buf.subarray(0, len);
        buf = buf.subarray(len);
        if (t === 3 && msg[1] === 0) socket.write(frame()); // answer full requests; incremental ones wait
        if (t === 4 && msg[1] === 1) state.keys.push(msg.readUInt32BE(4));
        if (t === 255 && msg[1] === 0 && msg.readUInt16BE(2) === 1) state.keys.push(msg.readUInt32BE(4));
        if (t === 5) state.pointerEvents++;
      }
    }
  });
}
