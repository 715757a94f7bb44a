/** The lab-tiny guest image for tests that boot real VMs (built by scripts/lib.sh need_guest_image, cached). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultToolsDir } from '../../src/config.js';

export function guestImageDir(): string {
  return path.join(defaultToolsDir(), 'images');
}

/**
 * Build the image this checkout describes if missing (about a second), then return an images
 * directory whose lab-tiny is exactly that build (a temp dir with a symlink: other checkouts
 * sharing the tools cache may switch images/lab-tiny to their own build at any time).
 */
export function ensureGuestImage(): string {
  const root = path.resolve(import.meta.dirname, '../..');
  const version = execFileSync('bash', ['-c', `source "${root}/scripts/lib.sh"; need_guest_image; echo "$GUEST_IMAGE_PATH"`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  }).toString().trim().split('\n').pop() ?? '';
  if (!fs.existsSync(path.join(version, 'vmlinuz'))) throw new Error(`guest image missing in ${version}`);
  const dir = path.join(os.tmpdir(), `lab-images-${path.basename(version)}`);
  fs.mkdirSync(dir, { recursive: true });
  const link = path.join(dir, 'lab-tiny');
  if (!fs.existsSync(link)) fs.symlinkSync(version, link);
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

/**
 * An images directory holding the cloud image `name` (debian-12, …), built by scripts/build-image.sh
 * if missing (minutes, first time only). LAB_TEST_IMAGE_DIR names a directory that already has it.
 */
export function ensureCloudImage(name: string): string {
  const given = process.env.LAB_TEST_IMAGE_DIR;
  if (given && fs.existsSync(path.join(given, name, 'image.json'))) return given;
  const root = path.resolve(import.meta.dirname, '../..');
  const version = execFileSync('bash', [path.join(root, 'scripts/build-image.sh'), name], { stdio: ['ignore', 'pipe', 'inherit'] })
    .toString().trim().split('\n').pop() ?? '';
  if (!fs.existsSync(path.join(version, 'image.json'))) throw new Error(`image ${name} missing in ${version}`);
  const dir = path.join(os.tmpdir(), `lab-images-${path.basename(version)}`);
  fs.mkdirSync(dir, { recursive: true });
  const link = path.join(dir, name);
  if (!fs.existsSync(link)) fs.symlinkSync(version, link);
  return dir;
}

/**
 * A new images directory (a temp dir of symlinks) holding lab-tiny and the cloud images `names`,
 * for a test whose labs use several. Never add to the directories above: they are shared by every
 * test file of the run, and a link left there would let another file boot an image it never asked for.
 */
export function imageDirWith(...names: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-images-'));
  fs.symlinkSync(fs.realpathSync(path.join(ensureGuestImage(), 'lab-tiny')), path.join(dir, 'lab-tiny'));
  for (const n of names) fs.symlinkSync(fs.realpathSync(path.join(ensureCloudImage(n), n)), path.join(dir, n));
  return dir;
}
