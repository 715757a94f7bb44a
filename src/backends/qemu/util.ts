/** Small helpers of the QEMU backend: files, processes, abort. */
import fs from 'node:fs';
import path from 'node:path';
import { alive } from './QemuRunner.js';

/** Rejects as soon as signal aborts (what was started stays for destroy or a later provision). */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}

/** The image's uncompressed PVH kernel when there is one (half the CPU of a TCG boot), else its bzImage. */
export function kernelOf(imageDir: string): string {
  const elf = path.join(imageDir, 'vmlinux');
  return fs.existsSync(elf) ? elf : path.join(imageDir, 'vmlinuz');
}

export function realpath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function lastLine(file: string): string {
  const l = readText(file).trim().split('\n').pop();
  return l ? `: ${l.slice(0, 300)}` : '';
}

/** SIGKILL every process whose command line mentions dir (QEMU started for it), and wait until gone. */
export async function killProcessesMentioning(dir: string): Promise<void> {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes('qemu') && cmd.includes(dir + '/')) pids.push(Number(e));
    } catch { /* exited */ }
  }
  for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  const end = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
}

/**
 * The last `maxBytes` of a file (a guest's console log), starting at a line when it was cut so a
 * terminal never starts inside an escape sequence. Empty when the file is missing.
 */
export function fileTail(file: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    const n = fs.readSync(fd, buf, 0, len, size - len);
    const tail = buf.subarray(0, n);
    if (len === size) return tail;
    const nl = tail.indexOf(0x0a);
    return nl >= 0 && nl < tail.length - 1 ? tail.subarray(nl + 1) : tail;
  } finally {
    fs.closeSync(fd);
  }
}
