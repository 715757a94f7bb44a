/**
 * A small reader for .tar / .tar.gz lab archives (ustar, GNU long names, pax path headers):
 * regular files only, into a LabFiles map. Anything that could escape the lab folder (absolute
 * paths, "..", links, devices) is refused, and sizes are bounded before and after gunzip.
 */
import { gunzipSync } from 'node:zlib';
import { BadRequest } from '../../errors.js';
import type { LabFiles } from './validateLab.js';

export const MAX_ARCHIVE_BYTES = 20 * 1024 * 1024;

function field(buf: Buffer, off: number, len: number): string {
  const raw = buf.subarray(off, off + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function octal(buf: Buffer, off: number, len: number): number {
  const s = field(buf, off, len).trim();
  if (!/^[0-7]*$/.test(s)) throw new BadRequest('bad tar header', { publicMessage: 'The archive is not a valid tar file.' });
  return s ? parseInt(s, 8) : 0;
}

function paxPath(data: Buffer): string | undefined {
  // records: "<len> key=value\n"
  let off = 0;
  let path: string | undefined;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(data.subarray(off, sp).toString());
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (rec.slice(0, eq) === 'path') path = rec.slice(eq + 1);
    off += len;
  }
  return path;
}

/** Normalized relative path, or undefined for anything unsafe. */
function safePath(p: string): string | undefined {
  const parts = p.replace(/^\.\//, '').split('/').filter((s) => s !== '' && s !== '.');
  if (p.startsWith('/') || parts.some((s) => s === '..' || s.includes('\\') || s.includes('\0'))) return undefined;
  return parts.join('/');
}

/** Read a tar or tar.gz archive. A single top-level folder is stripped (`lab/lab.yaml` → `lab.yaml`); its name is returned. */
export function readTarArchive(input: Buffer): { files: LabFiles; topFolder: string | undefined } {
  if (input.length > MAX_ARCHIVE_BYTES) throw new BadRequest('archive too large', { publicMessage: `The archive is larger than ${MAX_ARCHIVE_BYTES / 1048576} MiB.` });
  let tar = input;
  if (input[0] === 0x1f && input[1] === 0x8b) {
    try {
      tar = gunzipSync(input, { maxOutputLength: MAX_ARCHIVE_BYTES * 2 });
    } catch (err) {
      throw new BadRequest('bad gzip', { cause: err, publicMessage: 'The archive could not be decompressed (expected a .tar.gz, at most 40 MiB unpacked).' });
    }
  }
  const files: LabFiles = new Map();
  let off = 0;
  let longName: string | undefined;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    if (field(h, 257, 6) !== 'ustar' && field(h, 257, 5) !== 'ustar') throw new BadRequest('not a tar', { publicMessage: 'The archive is not a valid tar file.' });
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = field(h, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    longName = undefined;
    const dataStart = off + 512;
    if (dataStart + size > tar.length) throw new BadRequest('truncated tar', { publicMessage: 'The archive is truncated.' });
    const data = tar.subarray(dataStart, dataStart + size);
    off = dataStart + Math.ceil(size / 512) * 512;
    if (type === 'L') longName = field(data, 0, data.length);
    else if (type === 'x') longName = paxPath(data);
    else if (type === 'g' || type === '5') continue;
    else if (type === '0' || type === '7') {
      const p = safePath(name);
      if (p === undefined) throw new BadRequest(`unsafe path ${name}`, { publicMessage: `The archive contains an unsafe path: ${JSON.stringify(name)}.` });
      if (p) files.set(p, Buffer.from(data));
    } else {
      throw new BadRequest(`tar entry type ${type}`, { publicMessage: `The archive may contain only files and folders (${JSON.stringify(name)} is a link or device).` });
    }
  }
  // strip a single top-level folder
  const tops = new Set([...files.keys()].map((p) => p.split('/')[0]));
  if (tops.size === 1 && !files.has('lab.yaml')) {
    const top = [...tops][0]!;
    if ([...files.keys()].every((p) => p.startsWith(`${top}/`))) {
      return { files: new Map([...files].map(([p, d]) => [p.slice(top.length + 1), d])), topFolder: top };
    }
  }
  return { files, topFolder: undefined };
}
