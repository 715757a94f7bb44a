/**
 * The QEMU backend's on-disk record of a lab: DATA_DIR/qemu/<handle.name>/state.json, written
 * before anything is started, so list() and a restarted tool find every lab (and its processes,
 * through each machine's pidfile) again. Credentials are not in it (they live only in each
 * machine's fw_cfg file, mode 0600).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChannelKind, LabHandle } from '../types.js';
import { MAX_SOCKET_PATH } from './QemuRunner.js';

export type Desired = 'running' | 'paused' | 'stopped';

export interface MachineState {
  name: string;
  /** Sub-directory of the lab's run dir: m0, m1, … */
  dir: string;
  image: string;
  cpus: number;
  memoryMiB: number;
  /** Size of the /home disk when bigger than the image's base disk. */
  diskGiB?: number;
  /** Address on the lab network, with prefix (10.10.0.11/24). */
  ip: string;
  mac: string;
  channels: ChannelKind[];
  /** The image's layout (absent: 'tiny', labs made before cloud images). */
  kind?: 'tiny' | 'cloud';
  /** The saved state (key) this machine's disk overlay is built on, when it was restored from one. */
  savedState?: string;
}

export interface LabState {
  version: 1;
  handle: LabHandle;
  labId: string;
  /** The lab's private segment: QEMU socket netdev multicast group and port on 127.0.0.1. */
  net: { group: string; port: number };
  egress: boolean;
  desired: Desired;
  machines: MachineState[];
  createdAt: string;
}

export class LabStore {
  constructor(readonly root: string) {}

  runDir(name: string): string {
    return path.join(this.root, name);
  }
  machineDir(name: string, m: MachineState): string {
    return path.join(this.runDir(name), m.dir);
  }
  /** Where a machine's unix sockets live: its own dir if the paths fit in sockaddr_un, else a short dir under the OS temp dir (derived from the machine dir, so it is found again). */
  socketDir(name: string, m: MachineState): string {
    const dir = this.machineDir(name, m);
    if (Buffer.byteLength(path.join(dir, 'agent.sock')) <= MAX_SOCKET_PATH) return dir;
    return path.join(os.tmpdir(), `lab-qemu-${crypto.createHash('sha256').update(dir).digest('hex').slice(0, 16)}`);
  }

  read(name: string): LabState | undefined {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(this.runDir(name), 'state.json'), 'utf8')) as LabState;
      return s.version === 1 ? s : undefined;
    } catch {
      return undefined;
    }
  }

  write(s: LabState): void {
    const dir = this.runDir(s.handle.name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `state.json.${process.pid}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(s, null, 2), { mode: 0o600 });
    fs.renameSync(tmp, path.join(dir, 'state.json'));
  }

  all(): LabState[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.root);
    } catch {
      return [];
    }
    return names.map((n) => this.read(n)).filter((s): s is LabState => s !== undefined);
  }

  /** Remove the run dir and any socket dirs outside it. */
  remove(s: LabState | undefined, name: string): void {
    for (const m of s?.machines ?? []) {
      const sd = this.socketDir(name, m);
      if (!sd.startsWith(this.runDir(name))) fs.rmSync(sd, { recursive: true, force: true });
    }
    fs.rmSync(this.runDir(name), { recursive: true, force: true });
  }

  /** A multicast group and port no other lab here uses. */
  allocateNet(): { group: string; port: number } {
    const used = new Set(this.all().map((s) => `${s.net.group}:${s.net.port}`));
    for (;;) {
      const b = crypto.randomBytes(5);
      const group = `230.${b[0]}.${b[1]}.${b[2]}`;
      const port = 20000 + (b.readUInt16BE(3) % 30000);
      if (!used.has(`${group}:${port}`)) return { group, port };
    }
  }
}

/** The lab-tiny guest settings file (fw_cfg opt/lab/config). Values must not contain newlines. */
export function guestConfig(o: { hostname: string; ip: string; user?: string; pass?: string; egress: boolean; agentToken: string; hosts: Array<{ name: string; ip: string }> }): string {
  const clean = (v: string) => v.replace(/[\r\n]/g, '');
  const lines = [`hostname=${clean(o.hostname)}`, `ip=${clean(o.ip)}`];
  if (o.user) lines.push(`user=${clean(o.user)}`);
  if (o.pass) lines.push(`pass=${clean(o.pass)}`);
  if (o.egress) lines.push('egress=1');
  lines.push(`agenttoken=${clean(o.agentToken)}`);
  for (const h of o.hosts) lines.push(`host=${clean(h.name)} ${clean(h.ip.split('/')[0] ?? h.ip)}`);
  return lines.join('\n') + '\n';
}
