/**
 * An image's files on this host, for the backends that boot them here (QEMU, the KubeVirt stand-in).
 *
 * A built image is a folder (images/<name>-<version>, with images/<name> a symlink to the current
 * version) holding image.json and the files it names:
 *   {"name", "version", "disk": "disk.qcow2", "kernel": "vmlinuz", "initrd": "initrd.img",
 *    "vmlinux": "vmlinux" | null, "cmdline": "root=LABEL=lab-root rw …", "rootLabel", …}
 * disk.qcow2 is the whole system disk (bootable by its own boot loader too); the kernel and initrd
 * are the same ones it boots, for a direct boot. lab-tiny predates image.json: an initramfs system
 * (vmlinuz, initramfs.gz) and disk.qcow2 is its /home disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildCommand, ImageMissing, type ImageCatalog } from './ImageCatalog.js';

export interface LocalImage {
  name: string;
  /** Version folder, symlinks resolved: overlays and saved states must name these exact files. */
  dir: string;
  version: string;
  /** 'root': disk is the system disk (Debian images); 'home': lab-tiny's /home disk beside its initramfs. */
  diskRole: 'root' | 'home';
  disk: string;
  /** Files for a direct kernel boot; vmlinux (uncompressed, PVH) boots faster under TCG when present. */
  boot: { kernel: string; vmlinux?: string; initrd: string; cmdline: string };
  /** The guest takes its identity from a cloud-init NoCloud seed. */
  cloudInit: boolean;
}

interface Manifest {
  name?: string;
  version?: string;
  disk?: string;
  kernel?: string;
  initrd?: string;
  vmlinux?: string | null;
  cmdline?: string;
}

/** The image's files on this host, or ImageMissing naming the image and the command that builds it. */
export function resolveLocalImage(catalog: ImageCatalog, imageDir: string, name: string): LocalImage {
  const entry = catalog.require(name);
  const folder = path.resolve(imageDir, entry.qemu.dir);
  const missing = (what: string): ImageMissing => {
    const build = buildCommand(entry);
    const how = build ? `build it with \`${build}\`` : `put its files in ${folder}`;
    return new ImageMissing(`image "${name}" is not on this host (${what}): ${how}`, {
      publicMessage: `This lab cannot run here yet: its image "${name}" is not built on this server. Tell your administrator.`,
    });
  };
  let dir: string;
  try {
    dir = fs.realpathSync(folder);
  } catch {
    throw missing(`no ${folder}`);
  }
  const file = (f: string | undefined, what: string): string => {
    if (!f || f.includes('/')) throw missing(`image.json names no ${what}`);
    const p = path.join(dir, f);
    if (!fs.existsSync(p)) throw missing(`no ${p}`);
    return p;
  };
  const version = path.basename(dir).slice(path.basename(folder).length + 1) || path.basename(dir);
  const manifestFile = path.join(dir, 'image.json');
  if (!fs.existsSync(manifestFile)) {
    if (!fs.existsSync(path.join(dir, 'initramfs.gz'))) throw missing(`no ${manifestFile}`);
    const vmlinux = path.join(dir, 'vmlinux');
    return {
      name, dir, version, diskRole: 'home', disk: file('disk.qcow2', 'disk'), cloudInit: false,
      boot: { kernel: file('vmlinuz', 'kernel'), ...(fs.existsSync(vmlinux) ? { vmlinux } : {}), initrd: file('initramfs.gz', 'initrd'), cmdline: '' },
    };
  }
  let m: Manifest;
  try {
    m = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as Manifest;
  } catch (err) {
    throw missing(`${manifestFile} is not readable JSON: ${(err as Error).message}`);
  }
  return {
    name,
    dir,
    version: m.version ?? version,
    diskRole: 'root',
    disk: file(m.disk, 'disk'),
    cloudInit: true,
    boot: {
      kernel: file(m.kernel, 'kernel'),
      ...(m.vmlinux ? { vmlinux: file(m.vmlinux, 'vmlinux') } : {}),
      initrd: file(m.initrd, 'initrd'),
      cmdline: m.cmdline ?? '',
    },
  };
}
