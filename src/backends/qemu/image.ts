/**
 * A guest image's files on this host: imageDir/<name> (a symlink to the current version folder,
 * <name>-<hash>, built by scripts/build-image.sh). Two layouts:
 * - cloud images (debian-12, debian-12-desktop): image.json names disk.qcow2 (the system disk),
 *   the kernel and initrd it boots and their command line; the machine's identity comes from a
 *   cloud-init NoCloud seed;
 * - lab-tiny (no image.json): vmlinuz (+ vmlinux), initramfs.gz and a /home disk.qcow2; its
 *   settings come through fw_cfg.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BadRequest } from '../../errors.js';

export interface LocalImage {
  name: string;
  /** The version folder, symlinks resolved: overlays and saved states name these exact files. */
  dir: string;
  kind: 'cloud' | 'tiny';
  disk: string;
  kernel: string;
  initrd: string;
  cmdline: string;
}

interface Manifest { disk?: string; kernel?: string; initrd?: string; vmlinux?: string | null; cmdline?: string }

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function buildHint(name: string): string {
  return name === 'lab-tiny' ? 'scripts/setup.sh' : `scripts/build-image.sh ${name}`;
}

/** The image's files, or BadRequest naming the image and the command that builds it. */
export function localImage(imageDir: string, name: string): LocalImage {
  if (!NAME.test(name) || name.includes('..')) throw new BadRequest(`image name ${JSON.stringify(name)} is not a plain name (letters, digits, '.', '_', '-'; no '/' or '..')`);
  const missing = (what: string) => new BadRequest(`image "${name}" is not on this host (${what}): build it with \`${buildHint(name)}\``, {
    publicMessage: `This lab cannot run here yet: its image "${name}" is not built on this server. Tell your administrator.`,
  });
  let dir: string;
  try {
    dir = fs.realpathSync(path.join(imageDir, name));
  } catch {
    throw missing(`no ${path.join(imageDir, name)}`);
  }
  const file = (f: string | null | undefined) => {
    if (!f || f.includes('/')) return undefined;
    const p = path.join(dir, f);
    return fs.existsSync(p) ? p : undefined;
  };
  const manifest = path.join(dir, 'image.json');
  if (!fs.existsSync(manifest)) {
    const kernel = file('vmlinux') ?? file('vmlinuz');
    const initrd = file('initramfs.gz');
    const disk = file('disk.qcow2');
    if (!kernel || !initrd || !disk) throw missing(`${dir} has neither image.json nor vmlinuz, initramfs.gz and disk.qcow2`);
    return { name, dir, kind: 'tiny', disk, kernel, initrd, cmdline: '' };
  }
  let m: Manifest;
  try {
    m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as Manifest;
  } catch (err) {
    throw missing(`${manifest} is not readable JSON: ${(err as Error).message}`);
  }
  // the compressed kernel: the PVH entry of vmlinux skips the real-mode setup that gives the VGA text console
  const kernel = file(m.kernel);
  const initrd = file(m.initrd);
  const disk = file(m.disk);
  if (!kernel || !initrd || !disk) throw missing(`${manifest} names a disk, kernel or initrd that is not there`);
  return { name, dir, kind: 'cloud', disk, kernel, initrd, cmdline: m.cmdline ?? 'root=/dev/vda rw' };
}
