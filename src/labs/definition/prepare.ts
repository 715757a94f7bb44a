/**
 * A lab version + an instance's stored credentials → what the runtime needs to run it
 * (BackendLabSpec, lifetime, credentials). Pure, apart from random password generation.
 */
import { randomInt } from 'node:crypto';
import type { BackendKind, ChannelKind, MachineSpec } from '../../backends/types.js';
import { Conflict } from '../../errors.js';
import { ImageCatalog } from '../../images/ImageCatalog.js';
import type { InstanceMachines, PreparedLab } from '../contracts.js';
import { quantityMiB, type LabYaml, type MachineYaml } from './schema.js';
import { hasCredentials } from './validateLab.js';
import { VARIABLE } from './scanInstructions.js';

/** Lab network addresses by machine order (the QEMU backend's convention): 10.10.0.11, .12, … */
export const LAB_SUBNET = '10.10.0.0/24';
export function machineIp(index: number): string {
  return `10.10.0.${11 + index}`;
}

// no 0/O, 1/l/I: passwords are read off the page and typed into a console
const ALPHABET = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export function generatePassword(length = 14): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

function channels(m: MachineYaml): ChannelKind[] {
  const consoles = m.consoles ?? (m.kind === 'vm' ? ['serial', 'vnc'] : ['terminal']);
  const out = new Set<ChannelKind>(consoles.map((c) => (c === 'vnc' ? 'vnc' : 'console')));
  return [...out];
}

/** Versions stored before images were one catalog name per machine hold a map per backend. */
type LegacyImage = { qemu?: string; kubevirt?: string; container?: string };

/**
 * The machine's image for the backend: QEMU gets the catalog name (it finds the files on this host),
 * KubeVirt the name's containerDisk reference; containers their OCI reference. An image the catalog
 * does not have (or has no containerDisk for) throws ImageMissing before anything is created.
 */
function imageFor(labId: string, m: MachineYaml, backend: BackendKind | undefined, images: ImageCatalog): string {
  const stored = m.image as string | LegacyImage;
  if (typeof stored === 'string') {
    if (m.kind === 'container') return stored;
    images.require(stored);
    return backend === 'kubevirt' ? images.kubevirtContainerDisk(stored) : stored;
  }
  if (m.kind === 'container') return stored.container ?? '';
  const img = backend ? stored[backend] : (stored.qemu ?? stored.kubevirt);
  if (!img) {
    throw new Conflict(`lab ${labId} machine ${m.name} has no ${backend} image`, {
      publicMessage: `This lab cannot run here: its machine "${m.name}" has no image for the ${backend} backend.`,
    });
  }
  return img;
}

/** `{{name}}` → value, for texts that are not HTML (cloud-init, check commands, hints). Unknown names stay as they are (validation rejects them). */
export function fillText(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(VARIABLE, (all, name: string) => vars[name] ?? all);
}

/** Flat variable map: user.name, lab.title, lab.expires, machines.NAME.{username,password,ip,host}. */
export function flatVariables(o: { user?: { name: string }; lab: { title?: string; expires?: string }; machines: InstanceMachines }): Record<string, string | undefined> {
  const v: Record<string, string | undefined> = { 'user.name': o.user?.name, 'lab.title': o.lab.title, 'lab.expires': o.lab.expires };
  for (const [name, m] of Object.entries(o.machines)) {
    v[`machines.${name}.username`] = m.username;
    v[`machines.${name}.password`] = m.password;
    v[`machines.${name}.ip`] = m.ip;
    v[`machines.${name}.host`] = m.host ?? name;
  }
  return v;
}

/** Credentials and addresses per machine: `existing` ones are kept; missing passwords are generated (or the lab's fixed one). */
export function instanceMachines(def: LabYaml, existing: InstanceMachines): InstanceMachines {
  const out: InstanceMachines = {};
  def.machines.forEach((m, i) => {
    const prev = existing[m.name];
    const entry: InstanceMachines[string] = { ip: prev?.ip ?? machineIp(i) };
    if (hasCredentials(m)) {
      entry.username = prev?.username ?? m.credentials?.username ?? 'student';
      entry.password = prev?.password ?? m.credentials?.password ?? generatePassword();
    }
    out[m.name] = entry;
  });
  return out;
}

export function prepareLab(labId: string, version: string, def: LabYaml, existing: InstanceMachines, backend?: BackendKind, images: ImageCatalog = ImageCatalog.builtIn()): PreparedLab {
  const machines = instanceMachines(def, existing);
  const vars = flatVariables({ lab: { title: def.title }, machines });
  const specs: MachineSpec[] = def.machines.map((m) => {
    const creds = machines[m.name];
    const spec: MachineSpec = {
      name: m.name,
      kind: m.kind,
      image: imageFor(labId, m, backend, images),
      cpus: m.cpus,
      memoryMiB: quantityMiB(m.memory),
      channels: channels(m),
    };
    if (m.disk) spec.diskGiB = Math.ceil(quantityMiB(m.disk) / 1024);
    if (creds?.username && creds.password) spec.credentials = { username: creds.username, password: creds.password };
    if (m.userData !== undefined) spec.userData = fillText(m.userData, vars);
    if (m.ports?.length) spec.ports = [...m.ports];
    return spec;
  });
  return {
    spec: { labId, labVersion: version, machines: specs, network: { internetEgress: def.network.internetEgress } },
    lifetime: { ...def.lifetime },
    machines,
  };
}
