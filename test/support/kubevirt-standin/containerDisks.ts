/**
 * containerDisk images as the node pulls them: the image a VMI's `containerDisk.image` (or a
 * DataVolume's `source.registry.url`) names is copied from its registry with skopeo (the kubelet's
 * or CDI importer's pull), its layers are applied in order, and the disk is taken out of it —
 * `containerDisk.path`, or else the one file in /disk (KubeVirt refuses a /disk with none or more
 * than one). For a VMI, QEMU in virt-launcher runs as uid/gid 107, so the file must be readable by
 * it by its owner, group or mode bits, or the VMI fails (`forQemu`); CDI's importer reads as root.
 *
 * Only registries on this host's loopback are pulled from (over plain HTTP, as container runtimes
 * do for localhost); a reference on any other registry is not pullable here (`pullable()`).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

const run = promisify(execFile);
/** virt-launcher's qemu user and group. */
const QEMU_ID = 107;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/;

export interface PulledDisk {
  /** The disk file taken out of the image (qcow2 or raw, see `format`), read-only. */
  file: string;
  format: 'qcow2' | 'raw';
  /** The pulled manifest's digest (sha256:…). */
  digest: string;
  /** The image's org.opencontainers.image.title label, if any (what the packager names it). */
  title?: string;
}

/** A reference the stand-in can pull: its registry host is on this host's loopback. */
export function pullable(ref: string): boolean {
  const host = ref.split('/')[0] ?? '';
  return ref.includes('/') && LOOPBACK.test(host);
}

interface TarEntry { name: string; mode: number; uid: number; gid: number; type: string }

/** `tar --numeric-owner -tv` lines: "-r--r--r-- 107/107  1310720 1970-01-01 00:00 disk/disk.qcow2". */
function listLayer(out: string): TarEntry[] {
  const entries: TarEntry[] = [];
  for (const line of out.split('\n')) {
    const m = /^(\S)(\S{9})\s+(\d+)\/(\d+)\s+\d+\s+\S+\s+\S+\s+(.+)$/.exec(line);
    if (!m) continue;
    const perms = m[2]!;
    let mode = 0;
    for (let i = 0; i < 9; i++) if (perms[i] !== '-' && perms[i] !== 'S' && perms[i] !== 'T') mode |= 1 << (8 - i);
    const name = m[5]!.replace(/ -> .*$/, '').replace(/^\.?\/+/, '').replace(/\/$/, '');
    entries.push({ name, mode, uid: Number(m[3]), gid: Number(m[4]), type: m[1]! });
  }
  return entries;
}

function readableByQemu(e: TarEntry): boolean {
  if (e.uid === QEMU_ID) return (e.mode & 0o400) !== 0;
  if (e.gid === QEMU_ID) return (e.mode & 0o040) !== 0;
  return (e.mode & 0o004) !== 0;
}

export class ContainerDiskPuller {
  private readonly pulled = new Map<string, Promise<PulledDisk>>();
  private seq = 0;

  constructor(private readonly dir: string, private readonly log: Logger) {}

  /**
   * The disk of `ref`. Pulled once per reference and kept (imagePullPolicy IfNotPresent); again on
   * every call for `:latest` or an untagged reference, or when `policy` is Always, as the kubelet does.
   */
  disk(ref: string, o: { path?: string; policy?: string; forQemu?: boolean } = {}): Promise<PulledDisk> {
    const lastPart = ref.split('/').pop() ?? '';
    const always = o.policy === 'Always' || (o.policy !== 'IfNotPresent' && !lastPart.includes('@') && (!lastPart.includes(':') || lastPart.endsWith(':latest')));
    const forQemu = o.forQemu !== false;
    const key = `${ref}\n${o.path ?? ''}\n${forQemu}`;
    let p = always ? undefined : this.pulled.get(key);
    if (!p) {
      p = this.pull(ref, o.path, forQemu);
      this.pulled.set(key, p);
      p.catch(() => { if (this.pulled.get(key) === p) this.pulled.delete(key); });
    }
    return p;
  }

  private async pull(ref: string, diskPath: string | undefined, forQemu: boolean): Promise<PulledDisk> {
    if (!pullable(ref)) throw new Error(`containerDisk ${ref}: the stand-in pulls only from registries on this host's loopback`);
    const t0 = Date.now();
    const work = path.join(this.dir, `pull${++this.seq}`);
    fs.mkdirSync(work, { recursive: true });
    const layout = path.join(work, 'oci');
    try {
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:pulled`], { maxBuffer: 1 << 20 });
    } catch (err) {
      fs.rmSync(work, { recursive: true, force: true });
      // skopeo's fatal line ends with the cause ("…: manifest unknown", "…: connect: connection refused")
      const line = ((err as { stderr?: string }).stderr ?? String(err)).trim().split('\n').pop() ?? '';
      const cause = line.replace(/^.*?msg="/, '').replace(/"\s*$/, '').split(': ').pop();
      throw new Error(`pulling containerDisk ${ref}: ${cause}`);
    }
    const blob = (digest: string) => path.join(layout, 'blobs', ...digest.split(':'));
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const digest = index.manifests[0]!.digest;
    const manifest = JSON.parse(fs.readFileSync(blob(digest), 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
    const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8')) as { config?: { Labels?: Record<string, string> } };

    // the image's file system, as far as the disk is concerned: the last layer that has a path wins; whiteouts remove
    const files = new Map<string, TarEntry & { layer: string }>();
    for (const layer of manifest.layers) {
      const { stdout } = await run('tar', ['--numeric-owner', '-tvf', blob(layer.digest)], { maxBuffer: 64 << 20 });
      for (const e of listLayer(stdout)) {
        const base = path.posix.basename(e.name);
        const dir = path.posix.dirname(e.name);
        if (base === '.wh..wh..opq') { for (const k of [...files.keys()]) if (k.startsWith(`${dir}/`)) files.delete(k); continue; }
        if (base.startsWith('.wh.')) { const gone = path.posix.join(dir, base.slice(4)); for (const k of [...files.keys()]) if (k === gone || k.startsWith(`${gone}/`)) files.delete(k); continue; }
        files.set(e.name, { ...e, layer: blob(layer.digest) });
      }
    }
    let wanted: string;
    if (diskPath) {
      wanted = diskPath.replace(/^\/+/, '');
      if (!files.has(wanted)) throw new Error(`containerDisk ${ref}: no file at ${diskPath} in the image`);
    } else {
      const inDisk = [...files.keys()].filter((k) => path.posix.dirname(k) === 'disk' && files.get(k)!.type !== 'd');
      if (inDisk.length !== 1) throw new Error(`containerDisk ${ref}: expected exactly one file in /disk, found ${inDisk.length}${inDisk.length ? ` (${inDisk.join(', ')})` : ''}`);
      wanted = inDisk[0]!;
    }
    const entry = files.get(wanted)!;
    if (entry.type !== '-') throw new Error(`containerDisk ${ref}: /${wanted} is not a regular file`);
    if (forQemu && !readableByQemu(entry)) {
      throw new Error(`containerDisk ${ref}: /${wanted} (owner ${entry.uid}:${entry.gid}, mode ${entry.mode.toString(8).padStart(4, '0')}) is not readable by virt-launcher's qemu user ${QEMU_ID}:${QEMU_ID}`);
    }
    const out = path.join(work, 'rootfs');
    fs.mkdirSync(out);
    await run('tar', ['-xf', entry.layer, '-C', out, '--no-same-owner', '--wildcards', `*${wanted}`]);
    const file = path.join(work, 'disk');
    fs.renameSync(path.join(out, wanted), file);
    fs.chmodSync(file, 0o444);
    fs.rmSync(layout, { recursive: true, force: true });
    fs.rmSync(out, { recursive: true, force: true });
    const { stdout: info } = await run('qemu-img', ['info', '--output=json', file]);
    const format = (JSON.parse(info) as { format: string }).format === 'qcow2' ? 'qcow2' : 'raw';
    const title = config.config?.Labels?.['org.opencontainers.image.title'];
    this.log.info({ ref, digest, disk: `/${wanted}`, format, ms: Date.now() - t0 }, 'containerdisk.pulled');
    return { file, format, digest, ...(title ? { title } : {}) };
  }
}
