/**
 * How a machine on a cloud image (image.json: Debian) is started, cold or from a saved state: the
 * QEMU options (identical device set both ways, which a restore needs), its disks and its seed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { BackendFailure } from '../../errors.js';
import { noCloudSeed } from '../guest/cloudInit.js';
import type { LocalImage } from './image.js';
import type { Accel } from './kvm.js';
import type { GuestOptions, NicOptions } from './QemuRunner.js';
import { writeSeedDisk } from './seedDisk.js';

const run = promisify(execFile);

export interface CloudLaunch {
  image: LocalImage;
  runDir: string;
  socketDir: string;
  name: string;
  qemuBin: string;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  rootDisk: string;
  seed: string;
  lab: NicOptions;
  egress?: NicOptions;
  vnc: boolean;
  /** Start from a saved state streamed into this unix socket. */
  incomingSocket?: string;
}

export function cloudGuestOptions(c: CloudLaunch): GuestOptions {
  return {
    runDir: c.runDir, socketDir: c.socketDir, name: c.name, qemuBin: c.qemuBin, accel: c.accel,
    kernel: c.image.kernel, initrd: c.image.initrd, append: c.image.cmdline,
    memoryMiB: c.memoryMiB, cpus: c.cpus,
    disk: c.rootDisk, drives: [{ file: c.seed, format: 'raw', readonly: true }],
    nics: c.egress ? [c.lab, c.egress] : [c.lab],
    vnc: c.vnc, agent: true, vmgenid: true,
    ...(c.incomingSocket ? { incoming: `unix:${c.incomingSocket}` } : {}),
  };
}

export function qemuImg(qemuBin: string): string {
  return qemuBin.replace(/qemu-system-[^/]*$/, 'qemu-img');
}

/** A copy-on-write overlay over `base` (exact file: image folders are versioned). */
export async function createOverlay(qemuBin: string, base: string, overlay: string, sizeGiB?: number): Promise<void> {
  fs.rmSync(overlay, { force: true });
  try {
    await run(qemuImg(qemuBin), ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay, ...(sizeGiB ? [`${sizeGiB}G`] : [])], { timeout: 30_000 });
  } catch (err) {
    throw new BackendFailure(`qemu-img create ${overlay}: ${(err as Error).message}`, { cause: err });
  }
}

export interface SeedIdentity {
  instanceId: string;
  hostname: string;
  user?: { name: string; password: string };
  agentToken: string;
  hosts: Array<{ name: string; ip: string }>;
  lab: { mac: string; address: string };
  egress?: { mac: string };
  labUserData?: string;
}

export async function writeMachineSeed(i: SeedIdentity, file: string): Promise<void> {
  await writeSeedDisk(noCloudSeed({
    instanceId: i.instanceId, hostname: i.hostname, ...(i.user ? { user: i.user } : {}),
    agent: { token: i.agentToken, transport: 'virtio-serial' }, hosts: i.hosts,
    network: { lab: i.lab, ...(i.egress ? { egress: i.egress } : {}) },
    ...(i.labUserData ? { labUserData: i.labUserData } : {}),
  }), file);
}
