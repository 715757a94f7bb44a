/** A minimal ustar writer, to craft archives the system tar would refuse (or take long) to make. */
import fs from 'node:fs';
import path from 'node:path';

export interface TarEntry {
  name: string;
  data?: string | Buffer;
  /** '0' file (default), '5' folder, '1'/'2' links. */
  type?: string;
}

function header(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

export function tar(entries: Iterable<TarEntry>): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data ?? '');
    blocks.push(header(e.name, data.length, e.type ?? '0'), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Every file of the folder `src` as entries under a top folder `top` (a lab's id), then `extra`. */
export function folderEntries(src: string, top: string, extra: Iterable<TarEntry> = []): TarEntry[] {
  const out: TarEntry[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(src, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else out.push({ name: `${top}/${p}`, data: fs.readFileSync(path.join(src, p)) });
    }
  };
  walk('');
  return [...out, ...extra];
}
