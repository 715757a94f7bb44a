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
