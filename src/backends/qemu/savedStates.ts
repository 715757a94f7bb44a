/**
 * Saved running states of cloud images: per image version, machine size, internet NIC and host
 * (QEMU version, accelerator), a template guest is booted once to its ready state and saved:
 *   DATA_DIR/qemu-states/<key>.<build time>/frozen.qcow2   its disk (an overlay over the image's disk, read-only from then on)
 *                                          /state.bin      memory and device state (QEMU migration stream)
 *                                          /meta.json      what it was built from, its agent token, sizes
 * A lab machine then starts on its own overlay over frozen.qcow2 from state.bin (seconds instead of
 * a cold boot) and gets its identity through the agent (identity.ts).
 *
 * The key names the exact image version folder: a rebuilt image gets a new state; the old one is
 * removed by gc() once no lab's overlay is built on it, as is any state unused for maxIdleMs. A
 * state QEMU refuses to load is set aside (discard: its frozen disk stays for the labs built on
 * it) and the lab boots cold.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BackendFailure } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { newAgentToken } from '../guest/agentProtocol.js';
import { READY_LINE } from '../guest/cloudInit.js';
import { agentExec } from './agent.js';
import { cloudGuestOptions, createOverlay, writeMachineSeed } from './cloudMachine.js';
import type { LocalImage } from './image.js';
import type { Accel } from './kvm.js';
import { saveState } from './migration.js';
import { QemuRunner, type RunningGuest } from './QemuRunner.js';
import { waitForDrawnScreen } from './screen.js';

/** The template's NICs: a restored machine changes these to its own inside the guest. */
export const TEMPLATE_MAC = '52:54:00:0a:00:fe';
export const TEMPLATE_EGRESS_MAC = '52:54:01:0a:00:fe';
export const TEMPLATE_ADDRESS = '10.10.0.254/24';
/** The lab user the template has (a lab with another user name boots cold). */
export const TEMPLATE_USER = 'student';
/** Bumped when what a template boots with changes (seed contents, device set). */
const TEMPLATE_FORMAT = 2;

/** Prints "graphical" when the guest has a desktop session (the host then watches its screen). */
export const GRAPHICAL = 'if [ -x /usr/bin/xfdesktop ]; then echo graphical; fi';

const SETTLE = `systemctl is-system-running --wait >/dev/null 2>&1
if [ -x /usr/bin/xfdesktop ]; then
  for i in $(seq 300); do pgrep -x xfdesktop >/dev/null && pgrep -x xfce4-panel >/dev/null && break; sleep 1; done
fi
${GRAPHICAL}
sleep 2; sync`;

export interface TemplateSpec {
  image: LocalImage;
  memoryMiB: number;
  cpus: number;
  egress: boolean;
  accel: Accel;
  qemuVersion: string;
}

export interface SavedState {
  /** The build's id, <key>.<build time>: what a lab machine built on it records. */
  key: string;
  dir: string;
  frozen: string;
  state: string;
  /** The template's agent token (the restored guest answers to it until identity replaces it). */
  token: string;
}

interface Meta { key: string; image: string; memoryMiB: number; cpus: number; egress: boolean; accel: Accel; token: string; stateBytes: number; builtAt: string; buildMs: number }

export class SavedStates {
  private readonly building = new Map<string, Promise<SavedState | undefined>>();
  constructor(private readonly o: { root: string; qemuBin: string; log: Logger; bootTimeoutMs: number }) {}

  key(t: TemplateSpec): string {
    const id = JSON.stringify([TEMPLATE_FORMAT, t.image.dir, t.memoryMiB, t.cpus, t.egress, t.accel, t.qemuVersion]);
    return `${t.image.name.replace(/[^A-Za-z0-9-]/g, '-')}-${crypto.createHash('sha256').update(id).digest('hex').slice(0, 16)}`;
  }

  /** The newest complete saved state for this spec, or undefined. Marks it used now. */
  find(t: TemplateSpec): SavedState | undefined {
    const key = this.key(t);
    const builds = this.builds().filter((b) => b.startsWith(`${key}.`)).sort();
    const id = builds.at(-1);
    if (!id) return undefined;
    const dir = path.join(this.o.root, id);
    const meta = readMeta(dir);
    if (!meta) return undefined;
    const s: SavedState = { key: id, dir, frozen: path.join(dir, 'frozen.qcow2'), state: path.join(dir, 'state.bin'), token: meta.token };
    let size = -1;
    try { size = fs.statSync(s.state).size; } catch { /* missing */ }
    if (size !== meta.stateBytes || !fs.existsSync(s.frozen)) {
      this.discard(id, `state.bin has ${size} bytes, expected ${meta.stateBytes}`);
      return undefined;
    }
    const now = new Date();
    try { fs.utimesSync(path.join(dir, 'meta.json'), now, now); } catch { /* raced with gc */ }
    return s;
  }

  /** Names of finished builds (<key>.<build time>). */
  private builds(): string[] {
    try {
      return fs.readdirSync(this.o.root).filter((n) => /^[^.]+\.\d+$/.test(n));
    } catch {
      return [];
    }
  }

  /** Build the saved state for this spec unless it exists or is being built. Never throws (logs why it could not). */
  ensure(t: TemplateSpec): Promise<SavedState | undefined> {
    const found = this.find(t);
    if (found) return Promise.resolve(found);
    const key = this.key(t);
    let p = this.building.get(key);
    if (!p) {
      p = this.build(t, key).catch((err: unknown) => {
        this.o.log.warn({ key, err: (err as Error).message }, 'qemu.saved_state_build_failed');
        return undefined;
      }).finally(() => this.building.delete(key));
      this.building.set(key, p);
    }
    return p;
  }

  /**
   * Set a state aside (QEMU refused it, or its files do not match): its memory state goes, its
   * frozen disk stays while labs are built on it; the next lab boots cold and a new one is built.
   */
  discard(id: string, reason: string): void {
    const dir = path.join(this.o.root, id);
    if (!fs.existsSync(path.join(dir, 'meta.json'))) return;
    fs.rmSync(path.join(dir, 'meta.json'), { force: true });
    fs.rmSync(path.join(dir, 'state.bin'), { force: true });
    this.o.log.warn({ state: id, reason }, 'qemu.saved_state_discarded');
  }

  /**
   * Remove the builds no lab is built on (`inUse`: ids named by labs' machines) that are set
   * aside, superseded by a newer build, unused for maxIdleMs, or made from an image version that
   * is no longer the current one.
   */
  gc(inUse: Set<string>, maxIdleMs: number, currentImageDirs: Set<string>): void {
    const builds = this.builds().sort();
    for (const id of builds) {
      if (inUse.has(id)) continue;
      const dir = path.join(this.o.root, id);
      const meta = readMeta(dir);
      let idle = Infinity;
      try { idle = Date.now() - fs.statSync(path.join(dir, 'meta.json')).mtimeMs; } catch { /* set aside */ }
      const key = id.slice(0, id.lastIndexOf('.'));
      const newest = builds.filter((b) => b.startsWith(`${key}.`)).at(-1) === id;
      if (meta && newest && idle <= maxIdleMs && currentImageDirs.has(meta.image)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      this.o.log.info({ state: id }, 'qemu.saved_state_removed');
    }
  }

  private async build(t: TemplateSpec, key: string): Promise<SavedState> {
    const t0 = Date.now();
    const tmp = path.join(this.o.root, `${key}.tmp-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
    const socketDir = path.join(os.tmpdir(), `lab-qst-${crypto.createHash('sha256').update(tmp).digest('hex').slice(0, 12)}`);
    fs.mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    const token = newAgentToken();
    const frozen = path.join(tmp, 'frozen.qcow2');
    const seed = path.join(tmp, 'seed.iso');
    let g: RunningGuest | undefined;
    try {
      this.o.log.info({ key, image: t.image.dir }, 'qemu.saved_state_building');
      await createOverlay(this.o.qemuBin, t.image.disk, frozen);
      await writeMachineSeed({
        instanceId: `template-${key}`, hostname: 'lab-template',
        user: { name: TEMPLATE_USER, password: crypto.randomBytes(12).toString('base64url') },
        agentToken: token, hosts: [],
        lab: { mac: TEMPLATE_MAC, address: TEMPLATE_ADDRESS }, ...(t.egress ? { egress: { mac: TEMPLATE_EGRESS_MAC } } : {}),
      }, seed);
      g = await QemuRunner.start({ ...cloudGuestOptions({
        image: t.image, runDir: tmp, socketDir, name: `template.${key}`, qemuBin: this.o.qemuBin, accel: t.accel,
        memoryMiB: t.memoryMiB, cpus: t.cpus, rootDisk: frozen, seed,
        lab: { mac: TEMPLATE_MAC, netdev: `socket,mcast=${templateGroup(key)},localaddr=127.0.0.1` },
        ...(t.egress ? { egress: { mac: TEMPLATE_EGRESS_MAC, netdev: 'user,restrict=off' } } : {}),
        vnc: false,
      }), log: this.o.log });
      await g.waitForConsole(new RegExp(READY_LINE), this.o.bootTimeoutMs);
      // settle: every unit started, a graphical session (if the image has one) drawn on the screen
      // (its processes run long before Xfce has painted anything), caches written, then save
      const settled = await agentExec(g.agentSocket, token, SETTLE, { timeoutMs: this.o.bootTimeoutMs, maxOutputBytes: 1024 });
      if (/^graphical$/m.test(settled.stdout)) {
        const screen = await waitForDrawnScreen(g.qmp, path.join(tmp, 'screen.ppm'), Math.max(60_000, this.o.bootTimeoutMs - (Date.now() - t0)));
        this.o.log.info({ key, colours: screen.colours, black: screen.black, width: screen.width, height: screen.height, ms: Date.now() - t0 }, 'qemu.saved_state_desktop_drawn');
      }
      await saveState(g.qmp, path.join(socketDir, 'mig.sock'), path.join(tmp, 'state.bin'));
      await g.stop(10_000);
      fs.chmodSync(frozen, 0o444);
      fs.rmSync(seed, { force: true });
      const meta: Meta = {
        key, image: t.image.dir, memoryMiB: t.memoryMiB, cpus: t.cpus, egress: t.egress, accel: t.accel, token,
        stateBytes: fs.statSync(path.join(tmp, 'state.bin')).size, builtAt: new Date().toISOString(), buildMs: Date.now() - t0,
      };
      fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 1), { mode: 0o600 });
      const id = `${key}.${Date.now()}`;
      const dir = path.join(this.o.root, id);
      fs.renameSync(tmp, dir);
      this.o.log.info({ state: id, ms: meta.buildMs, stateBytes: meta.stateBytes }, 'qemu.saved_state_built');
      return { key: id, dir, frozen: path.join(dir, 'frozen.qcow2'), state: path.join(dir, 'state.bin'), token };
    } catch (err) {
      await g?.kill();
      fs.rmSync(tmp, { recursive: true, force: true });
      throw err instanceof BackendFailure ? err : new BackendFailure(`saved state ${key}: ${(err as Error).message}`, { cause: err });
    } finally {
      fs.rmSync(socketDir, { recursive: true, force: true });
    }
  }
}

function readMeta(dir: string): Meta | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as Meta;
  } catch {
    return undefined;
  }
}

/** A multicast group of the template's own (nothing else is on its lab segment). */
function templateGroup(key: string): string {
  const b = crypto.createHash('sha256').update(key).digest();
  return `231.${b[0]}.${b[1]}.${b[2]}:${20000 + (b.readUInt16BE(3) % 30000)}`;
}
