/**
 * A lab's machines before they start: the spec checked, and each machine's files in its run dir
 * (lab-tiny: the fw_cfg settings file, user data and /home disk; cloud images: the secrets file
 * and the NoCloud seed).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BackendFailure, BadRequest } from '../../errors.js';
import type { BackendLabSpec } from '../types.js';
import { machineAgentToken } from './agent.js';
import { qemuImg } from './cloudMachine.js';
import { readSecrets, secretsFile, writeSeed } from './cloudStart.js';
import { localImage } from './image.js';
import { guestConfig, type LabState, type MachineState } from './labState.js';
import { realpath } from './util.js';

const run = promisify(execFile);

export function validateSpec(spec: BackendLabSpec, imageDir: string): void {
  if (spec.machines.length === 0) throw new BadRequest(`lab ${spec.labId} has no machines`);
  if (spec.machines.length > 200) throw new BadRequest(`lab ${spec.labId} has more than 200 machines`);
  for (const m of spec.machines) {
    if (m.kind === 'container') {
      throw new BadRequest(
        `lab ${spec.labId}: machine ${m.name} is a container; the local QEMU backend runs only VMs (use BACKEND=kubevirt for container machines)`,
      );
    }
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(m.name)) throw new BadRequest(`lab ${spec.labId}: machine name ${JSON.stringify(m.name)} is not a DNS label`);
    const user = m.credentials?.username;
    if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new BadRequest(`lab ${spec.labId}: machine ${m.name}: user name ${JSON.stringify(user)} is not a valid Linux user name`);
    if (m.credentials && /[\r\n]/.test(m.credentials.password)) throw new BadRequest(`lab ${spec.labId}: machine ${m.name}: the password contains a line break`);
    try {
      localImage(imageDir, m.image);
    } catch (err) {
      if (err instanceof BadRequest) throw new BadRequest(`lab ${spec.labId}: machine ${m.name}: ${err.message}`, { publicMessage: err.publicMessage });
      throw err;
    }
  }
}

export interface MachineFilesContext {
  dir: string;
  qemuBin: string;
  imageDir: string;
}

/** Write what is missing (everything when fresh). */
export async function prepareMachine(c: MachineFilesContext, s: LabState, m: MachineState, spec: BackendLabSpec, fresh: boolean): Promise<void> {
  const { dir } = c;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ms = spec.machines.find((x) => x.name === m.name);
  const creds = ms?.credentials;
  if (m.kind === 'cloud') {
    if (fresh || !fs.existsSync(secretsFile(dir))) {
      const secrets = { ...(creds ? { user: { name: creds.username, password: creds.password } } : {}), ...(ms?.userData ? { labUserData: ms.userData } : {}) };
      fs.writeFileSync(secretsFile(dir), JSON.stringify(secrets), { mode: 0o600 });
    }
    if (fresh || !fs.existsSync(path.join(dir, 'seed.iso'))) await writeSeed(s, m, dir, readSecrets(dir));
    return;
  }
  const cfg = path.join(dir, 'config');
  if (fresh || !fs.existsSync(cfg)) {
    const config = guestConfig({
      hostname: m.name, ip: m.ip, egress: s.egress, agentToken: machineAgentToken(dir),
      ...(creds ? { user: creds.username, pass: creds.password } : {}),
      hosts: s.machines.map((x) => ({ name: x.name, ip: x.ip })),
    });
    fs.writeFileSync(cfg, config, { mode: 0o600 });
  }
  if (ms?.userData && (fresh || !fs.existsSync(path.join(dir, 'userdata')))) fs.writeFileSync(path.join(dir, 'userdata'), ms.userData, { mode: 0o600 });
  if (!fs.existsSync(path.join(dir, 'home.qcow2'))) await createHomeOverlay(dir, c.qemuBin, c.imageDir, m);
}

/** lab-tiny's /home disk: an overlay over the image's disk.qcow2, bigger when the lab asks (the guest grows its file system). */
export async function createHomeOverlay(dir: string, qemuBin: string, imageDir: string, m: MachineState): Promise<void> {
  // the overlay names the exact base file (image folders are versioned; lab-tiny is a symlink that moves on upgrades)
  const base = realpath(path.join(imageDir, m.image, 'disk.qcow2'));
  const overlay = path.join(dir, 'home.qcow2');
  const size = m.diskGiB ? [`${m.diskGiB}G`] : [];
  const args = fs.existsSync(base) ? ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay, ...size] : ['create', '-q', '-f', 'qcow2', overlay, size[0] ?? '1G'];
  try {
    await run(qemuImg(qemuBin), args, { timeout: 30_000 });
  } catch (err) {
    throw new BackendFailure(`qemu-img create for ${m.name}: ${(err as Error).message}`, { cause: err });
  }
}
