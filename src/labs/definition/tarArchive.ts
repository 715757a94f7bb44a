/**
 * A small reader for .tar / .tar.gz lab archives (ustar, GNU long names, pax path headers):
 * regular files only, into a LabFiles map. Anything that could escape the lab folder (absolute
 * paths, "..", links, devices) is refused, and sizes are bounded before and after gunzip.
 *
 * The request thread stays free: gunzip runs on libuv's thread pool as a stream, the entries are
 * read as the bytes arrive, and reading stops at the first entry past MAX_ARCHIVE_ENTRIES or
 * deeper than MAX_PATH_DEPTH folders. An archive of 80,000 empty files (40 MiB unpacked) is
 * refused after its first thousand entries, without ever holding the rest in memory.
 */
import { createGunzip } from 'node:zlib';
import { BadRequest } from '../../errors.js';
import type { LabFiles } from './validateLab.js';

export const MAX_ARCHIVE_BYTES = 20 * 1024 * 1024;
/** Entries (files, folders, long-name records) in one archive. A lab needs a few dozen. */
export const MAX_ARCHIVE_ENTRIES = 1000;
/** Folders above a file inside the lab folder (`media/a/b/c.png` is 3), after the top folder. */
export const MAX_PATH_DEPTH = 8;

const MAX_UNPACKED_BYTES = MAX_ARCHIVE_BYTES * 2;

export function tooManyEntries(): BadRequest {
  return new BadRequest('too many entries', { publicMessage: `The lab has more than ${MAX_ARCHIVE_ENTRIES} entries (files and folders); a lab needs a few dozen.` });
}

export function nestedTooDeep(name: string): BadRequest {
  return new BadRequest('nested too deep', { publicMessage: `The lab has folders nested deeper than ${MAX_PATH_DEPTH} levels (${JSON.stringify(name.slice(0, 200))}).` });
}

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
export async function readTarArchive(input: Buffer): Promise<{ files: LabFiles; topFolder: string | undefined }> {
  if (input.length > MAX_ARCHIVE_BYTES) throw new BadRequest('archive too large', { publicMessage: `The archive is larger than ${MAX_ARCHIVE_BYTES / 1048576} MiB.` });
  const reader = new TarReader();
  if (input[0] === 0x1f && input[1] === 0x8b) {
    const gz = createGunzip({ chunkSize: 64 * 1024 });
    gz.end(input);
    let unpacked = 0;
    try {
      for await (const chunk of gz as AsyncIterable<Buffer>) {
        unpacked += chunk.length;
        if (unpacked > MAX_UNPACKED_BYTES) throw new BadRequest('archive too large unpacked', { publicMessage: `The archive is larger than ${MAX_UNPACKED_BYTES / 1048576} MiB unpacked.` });
        if (reader.push(chunk)) break;
      }
    } catch (err) {
      if (err instanceof BadRequest) throw err;
      throw new BadRequest('bad gzip', { cause: err, publicMessage: `The archive could not be decompressed (expected a .tar.gz, at most ${MAX_UNPACKED_BYTES / 1048576} MiB unpacked).` });
    } finally {
      gz.destroy();
    }
  } else {
    reader.push(input);
  }
  return stripTopFolder(reader.finish());
}

/** Chunks in arrival order; take(n) copies each byte at most once. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length) this.chunks.push(b);
    this.length += b.length;
  }

  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return out;
    }
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const c = this.chunks[0]!;
      if (c.length <= need) {
        parts.push(c);
        this.chunks.shift();
        need -= c.length;
      } else {
        parts.push(c.subarray(0, need));
        this.chunks[0] = c.subarray(need);
        need = 0;
      }
    }
    this.length -= n;
    return Buffer.concat(parts, n);
  }
}

/** The regular files of a tar stream, fed in chunks; bounded in entry count and depth. */
class TarReader {
  private readonly q = new ByteQueue();
  private readonly files: LabFiles = new Map();
  private entries = 0;
  private longName: string | undefined;
  /** The header whose data is awaited. */
  private pending: { name: string; type: string; size: number } | undefined;
  private done = false;

  /** Feed bytes; true once the end-of-archive block has been read (the rest can be dropped). */
  push(chunk: Buffer): boolean {
    if (this.done) return true;
    this.q.push(chunk);
    for (;;) {
      if (!this.pending) {
        if (this.q.length < 512) return false;
        const h = this.q.take(512);
        if (h.every((b) => b === 0)) return (this.done = true);
        this.pending = this.header(h);
      }
      const padded = Math.ceil(this.pending.size / 512) * 512;
      if (this.q.length < padded) return false;
      const data = this.q.take(padded).subarray(0, this.pending.size);
      this.entry(this.pending, data);
      this.pending = undefined;
    }
  }

  finish(): LabFiles {
    if (this.pending) throw new BadRequest('truncated tar', { publicMessage: 'The archive is truncated.' });
    return this.files;
  }

  private header(h: Buffer): { name: string; type: string; size: number } {
    if (++this.entries > MAX_ARCHIVE_ENTRIES) throw tooManyEntries();
    if (field(h, 257, 6) !== 'ustar' && field(h, 257, 5) !== 'ustar') throw new BadRequest('not a tar', { publicMessage: 'The archive is not a valid tar file.' });
    const size = octal(h, 124, 12);
    if (size > MAX_UNPACKED_BYTES) throw new BadRequest('tar entry too large', { publicMessage: 'The archive is truncated or has a file that is too large.' });
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = field(h, 345, 155);
    const name = this.longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    this.longName = undefined;
    return { name, type, size };
  }

  private entry(e: { name: string; type: string }, data: Buffer): void {
    if (e.type === 'L') this.longName = field(data, 0, data.length);
    else if (e.type === 'x') this.longName = paxPath(data);
    else if (e.type === 'g' || e.type === '5') return;
    else if (e.type === '0' || e.type === '7') {
      const p = safePath(e.name);
      if (p === undefined) throw new BadRequest(`unsafe path ${e.name}`, { publicMessage: `The archive contains an unsafe path: ${JSON.stringify(e.name)}.` });
      // a top folder (if any) is one level more than the lab's own
      if (p.split('/').length - 1 > MAX_PATH_DEPTH + 1) throw nestedTooDeep(p);
      if (p) this.files.set(p, Buffer.from(data));
    } else {
      throw new BadRequest(`tar entry type ${e.type}`, { publicMessage: `The archive may contain only files and folders (${JSON.stringify(e.name)} is a link or device).` });
    }
  }
}

function stripTopFolder(files: LabFiles): { files: LabFiles; topFolder: string | undefined } {
  const tops = new Set([...files.keys()].map((p) => p.split('/')[0]));
  if (tops.size === 1 && !files.has('lab.yaml')) {
    const top = [...tops][0]!;
    if ([...files.keys()].every((p) => p.startsWith(`${top}/`))) {
      const stripped: LabFiles = new Map([...files].map(([p, d]) => [p.slice(top.length + 1), d]));
      for (const p of stripped.keys()) if (p.split('/').length - 1 > MAX_PATH_DEPTH) throw nestedTooDeep(p);
      return { files: stripped, topFolder: top };
    }
  }
  for (const p of files.keys()) if (p.split('/').length - 1 > MAX_PATH_DEPTH) throw nestedTooDeep(p);
  return { files, topFolder: undefined };
}
