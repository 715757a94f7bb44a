/** The lab-tiny guest image for tests that boot real VMs (built by scripts/lib.sh need_guest_image, cached). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { defaultToolsDir } from '../../src/config.js';

export function guestImageDir(): string {
  return path.join(defaultToolsDir(), 'images');
}

/** Build the image if missing or stale (about a second), then return the images directory. */
export function ensureGuestImage(): string {
  const root = path.resolve(import.meta.dirname, '../..');
  execFileSync('bash', ['-c', `source "${root}/scripts/lib.sh"; need_guest_image`], { stdio: ['ignore', 'ignore', 'inherit'] });
  const dir = guestImageDir();
  if (!fs.existsSync(path.join(dir, 'lab-tiny', 'vmlinuz'))) throw new Error(`guest image missing in ${dir}`);
  return dir;
}

/** QEMU processes whose command line mentions dir (strays a test must not leave behind). */
export function qemuProcessesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.startsWith('qemu-system') || cmd.includes('/qemu-system')) {
        if (cmd.includes(dir)) pids.push(Number(e));
      }
    } catch { /* raced with exit */ }
  }
  return pids;
}

/** SIGKILL every QEMU under dir (test cleanup). */
export function killQemuUnder(dir: string): void {
  for (const pid of qemuProcessesUnder(dir)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}
