/**
 * Starting one lab machine on a cloud image: from the image's saved running state when there is
 * one (own overlay over the frozen disk, -incoming, then the lab's identity through the agent),
 * else a cold boot with its NoCloud seed. Any failure of the fast path falls back to the cold boot
 * (logged); a state QEMU refuses is discarded.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logger.js';
import { agentExec, machineAgentToken } from './agent.js';
import { cloudGuestOptions, createOverlay, writeMachineSeed, type CloudLaunch } from './cloudMachine.js';
import { identityCommand } from './identity.js';
import type { LocalImage } from './image.js';
import type { Accel } from './kvm.js';
import type { LabState, MachineState } from './labState.js';
import { loadState } from './migration.js';
import { QemuRunner, type RunningGuest } from './QemuRunner.js';
import { TEMPLATE_ADDRESS, TEMPLATE_USER, type SavedState, type SavedStates, type TemplateSpec } from './savedStates.js';

/** What a cloud machine needs besides its state: kept in its run dir (0600) so reset and restart find it. */
export interface MachineSecrets {
  user?: { name: string; password: string };
  labUserData?: string;
}

export interface CloudStartContext {
  qemuBin: string;
  accel: Accel;
  qemuVersion: string;
  dir: string;
  socketDir: string;
  states?: SavedStates;
  log: Logger;
  /** Called as soon as QEMU runs (the backend tracks the guest from then on). */
  track: (g: RunningGuest) => void;
}

export function secretsFile(dir: string): string {
  return path.join(dir, 'machine.json');
}

export function readSecrets(dir: string): MachineSecrets {
  try {
    return JSON.parse(fs.readFileSync(secretsFile(dir), 'utf8')) as MachineSecrets;
  } catch {
    return {};
  }
}

export function templateSpec(s: LabState, m: MachineState, image: LocalImage, c: Pick<CloudStartContext, 'accel' | 'qemuVersion'>): TemplateSpec {
  return { image, memoryMiB: m.memoryMiB, cpus: m.cpus, egress: s.egress, accel: c.accel, qemuVersion: c.qemuVersion };
}

function launch(s: LabState, m: MachineState, image: LocalImage, c: CloudStartContext): CloudLaunch {
  return {
    image, runDir: c.dir, socketDir: c.socketDir, name: `${s.handle.name}.${m.name}`, qemuBin: c.qemuBin, accel: c.accel,
    memoryMiB: m.memoryMiB, cpus: m.cpus, rootDisk: path.join(c.dir, 'root.qcow2'), seed: path.join(c.dir, 'seed.iso'),
    lab: { mac: m.mac, netdev: `socket,mcast=${s.net.group}:${s.net.port},localaddr=127.0.0.1` },
    ...(s.egress ? { egress: { mac: m.mac.replace(/^52:54:00/, '52:54:01'), netdev: 'user,restrict=off' } } : {}),
    vnc: m.channels.includes('vnc'),
  };
}

/** The machine's NoCloud seed (identity for cold boots, and for any later reboot of a restored one). */
export async function writeSeed(s: LabState, m: MachineState, dir: string, secrets: MachineSecrets): Promise<void> {
  await writeMachineSeed({
    instanceId: `${s.handle.name}-${s.handle.generation}-${m.name}`, hostname: m.name,
    ...(secrets.user ? { user: secrets.user } : {}),
    agentToken: machineAgentToken(dir),
    hosts: s.machines.map((x) => ({ name: x.name, ip: x.ip })),
    lab: { mac: m.mac, address: m.ip },
    ...(s.egress ? { egress: { mac: m.mac.replace(/^52:54:00/, '52:54:01') } } : {}),
    ...(secrets.labUserData ? { labUserData: secrets.labUserData } : {}),
  }, path.join(dir, 'seed.iso'));
}

/** Start the machine; `m.savedState` says which saved state its disk is built on (if any). */
export async function startCloudMachine(s: LabState, m: MachineState, image: LocalImage, c: CloudStartContext): Promise<RunningGuest> {
  const l = launch(s, m, image, c);
  const secrets = readSecrets(c.dir);
  const fresh = !fs.existsSync(l.rootDisk);
  const warmable = fresh && c.states && !m.diskGiB && (!secrets.user || secrets.user.name === TEMPLATE_USER);
  const st = warmable ? c.states?.find(templateSpec(s, m, image, c)) : undefined;
  if (st) {
    const t0 = Date.now();
    try {
      const g = await restore(s, m, l, st, secrets, c);
      c.log.info({ lab: s.handle.name, machine: m.name, state: st.key, ms: Date.now() - t0 }, 'qemu.machine_restored');
      return g;
    } catch (err) {
      c.log.warn({ lab: s.handle.name, machine: m.name, state: st.key, err: (err as Error).message }, 'qemu.restore_failed_cold_boot');
      fs.rmSync(l.rootDisk, { force: true });
    }
  }
  if (!fs.existsSync(l.rootDisk)) {
    delete m.savedState; // a new overlay on the image itself (an existing one may be built on a saved state: it keeps it)
    await createOverlay(c.qemuBin, image.disk, l.rootDisk, m.diskGiB);
  }
  const g = await QemuRunner.start({ ...cloudGuestOptions(l), log: c.log });
  c.track(g);
  return g;
}

async function restore(s: LabState, m: MachineState, l: CloudLaunch, st: SavedState, secrets: MachineSecrets, c: CloudStartContext): Promise<RunningGuest> {
  await createOverlay(c.qemuBin, st.frozen, l.rootDisk);
  m.savedState = st.key;
  const incoming = path.join(c.socketDir, 'mig.sock');
  fs.rmSync(incoming, { force: true });
  const g = await QemuRunner.start({ ...cloudGuestOptions({ ...l, incomingSocket: incoming }), log: c.log });
  try {
    try {
      await loadState(g.qmp, incoming, st.state, g.exited);
    } catch (err) {
      c.states?.discard(st.key, `QEMU refused it: ${(err as Error).message}`);
      throw err;
    }
    await g.qmp.execute('cont');
    const id = identityCommand({
      hostname: m.name, ...(secrets.user ? { user: secrets.user } : {}), mac: m.mac, address: m.ip,
      hosts: s.machines.map((x) => ({ name: x.name, ip: x.ip })), agentToken: machineAgentToken(c.dir), templateAddress: TEMPLATE_ADDRESS,
    });
    const r = await agentExec(g.agentSocket, st.token, id.command, { timeoutMs: 120_000, maxOutputBytes: 4096, env: id.env }, `${s.handle.name}/${m.name}`);
    if (r.exitCode !== 0 || r.timedOut) throw new Error(`identity step exited ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.slice(0, 300)}`);
  } catch (err) {
    await g.kill();
    delete m.savedState;
    throw err;
  }
  c.track(g);
  return g;
}
