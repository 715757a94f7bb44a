/**
 * LabBackend on local QEMU: each VM machine is one qemu-system-x86_64 process (QemuRunner).
 *
 * Per lab, DATA_DIR/qemu/<handle.name>/ holds state.json (LabStore) and one dir per machine
 * (m0, m1, …) with its copy-on-write overlay home.qcow2 over the image's disk.qcow2, its fw_cfg
 * settings file, pidfile, logs and unix sockets (VNC, serial console, QMP, exec agent). Nothing
 * listens on TCP. The machines of a lab share a private segment (QEMU socket netdev, multicast
 * group+port of their own on 127.0.0.1) at 10.10.0.11, .12, … and reach each other by name; a
 * second NIC with QEMU user networking exists only when the lab allows internet egress.
 * QEMU processes are detached: after a tool restart they are found through their pidfiles and
 * re-attached (QMP), so the reconciler can adopt or destroy them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Duplex } from 'node:stream';
import { BackendFailure, BadRequest, CapacityExhausted, Conflict, NotFound } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { BackendLabSpec, ChannelKind, ExecOptions, ExecResult, LabBackend, LabHandle, MachineStatus, Progress } from '../types.js';
import { agentExec, machineAgentToken } from './agent.js';
import { detectAccel, type AccelSetting } from './kvm.js';
import { guestConfig, LabStore, type LabState, type MachineState } from './labState.js';
import { QemuRunner, alive, guestPaths, type RunningGuest } from './QemuRunner.js';
import { abortable, kernelOf, killProcessesMentioning, lastLine, readText, realpath } from './util.js';

const run = promisify(execFile);
/** The guest prints this on ttyS0 when booted (lab-tiny); other images are booted at their login prompt. */
const BOOTED = /lab-guest: ready|login: /;

export interface QemuBackendOptions {
  /** Run dirs go under dataDir/qemu. */
  dataDir: string;
  /** Guest images: imageDir/<name>/{vmlinuz,initramfs.gz,disk.qcow2}. */
  imageDir: string;
  qemuBin: string;
  accel: AccelSetting;
  /** Host capacity: VMs and guest memory of labs that run or are paused. */
  maxVms: number;
  maxMemoryMiB: number;
  log: Logger;
  bootTimeoutMs?: number;
}

export interface Capacity {
  maxVms: number;
  maxMemoryMiB: number;
  usedVms: number;
  usedMemoryMiB: number;
}

export class QemuBackend implements LabBackend {
  readonly kind = 'qemu' as const;
  private readonly store: LabStore;
  private readonly guests = new Map<string, RunningGuest>();
  private readonly consoles = new Map<string, net.Socket>();
  /** Machines this process is spawning right now: never attach to them (QEMU serves one QMP client; the spawner must get it). */
  private readonly starting = new Set<string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly log: Logger;

  constructor(private readonly o: QemuBackendOptions) {
    this.store = new LabStore(path.join(o.dataDir, 'qemu'));
    this.log = o.log.child({ backend: 'qemu' });
  }

  /**
   * Host capacity in use: every lab whose state file says running or paused (provisions under way
   * included: the state is written, synchronously after the check, before anything starts).
   */
  capacity(): Capacity {
    let usedVms = 0;
    let usedMemoryMiB = 0;
    for (const s of this.store.all()) {
      if (s.desired === 'stopped') continue;
      usedVms += s.machines.length;
      usedMemoryMiB += s.machines.reduce((n, m) => n + m.memoryMiB, 0);
    }
    return { maxVms: this.o.maxVms, maxMemoryMiB: this.o.maxMemoryMiB, usedVms, usedMemoryMiB };
  }

  /** Throws CapacityExhausted when a lab of this size would not fit now. */
  checkCapacity(vms: number, memoryMiB: number, labId = 'lab'): void {
    const c = this.capacity();
    if (c.usedVms + vms > c.maxVms || c.usedMemoryMiB + memoryMiB > c.maxMemoryMiB) {
      throw new CapacityExhausted(
        `capacity reached for ${labId}: needs ${vms} VM(s) and ${memoryMiB} MiB, in use ${c.usedVms}/${c.maxVms} VMs and ${c.usedMemoryMiB}/${c.maxMemoryMiB} MiB`,
        { publicMessage: 'Capacity reached: all lab machines on this server are in use. Please try again in a few minutes.' },
      );
    }
  }

  async provision(spec: BackendLabSpec, handle: LabHandle, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    this.validate(spec);
    await this.locked(handle.name, async () => {
      onProgress({ phase: 'queued', percent: 0, message: 'Preparing the lab' });
      let s = this.store.read(handle.name);
      if (s && s.handle.generation !== handle.generation) {
        this.log.info({ lab: handle.name, from: s.handle.generation, to: handle.generation }, 'qemu.generation_changed');
        await this.teardown(handle.name);
        s = undefined;
      }
      const fresh = !s;
      if (!s) {
        this.checkCapacity(spec.machines.length, sum(spec), spec.labId);
        s = {
          version: 1,
          handle,
          labId: spec.labId,
          net: this.store.allocateNet(),
          egress: spec.network.internetEgress,
          desired: 'running',
          createdAt: new Date().toISOString(),
          machines: spec.machines.map((m, i) => ({
            name: m.name, dir: `m${i}`, image: m.image, cpus: m.cpus, memoryMiB: m.memoryMiB, ...(m.diskGiB ? { diskGiB: m.diskGiB } : {}),
            ip: `10.10.0.${11 + i}/24`, mac: `52:54:00:0a:00:${(11 + i).toString(16).padStart(2, '0')}`, channels: m.channels,
          })),
        };
        this.store.write(s); // first, so list() finds the lab whatever happens next
      }
      const state = s;
      onProgress({ phase: 'network', percent: 10, message: `Private network ${state.net.group}:${state.net.port}` });
      signal?.throwIfAborted();
      for (const m of state.machines) {
        const dir = this.store.machineDir(handle.name, m);
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        const cfg = path.join(dir, 'config');
        const creds = spec.machines.find((x) => x.name === m.name)?.credentials;
        if (fresh || !fs.existsSync(cfg)) fs.writeFileSync(cfg, this.configFor(state, m, creds), { mode: 0o600 });
        const userData = spec.machines.find((x) => x.name === m.name)?.userData;
        if (userData && (fresh || !fs.existsSync(path.join(dir, 'userdata')))) fs.writeFileSync(path.join(dir, 'userdata'), userData, { mode: 0o600 });
        if (!fs.existsSync(path.join(dir, 'home.qcow2'))) await this.createOverlay(handle.name, m);
      }
      onProgress({ phase: 'disks', percent: 25, message: 'Disks ready' });
      signal?.throwIfAborted();
      if (state.desired === 'stopped') {
        this.checkCapacity(state.machines.length, state.machines.reduce((n, m) => n + m.memoryMiB, 0), state.labId);
        state.desired = 'running';
        this.store.write(state);
      }
      await this.bringUp(state, onProgress, signal);
      onProgress({ phase: 'machines-booted', percent: 100, message: 'All machines are running' });
    });
  }

  /** Start every machine of the lab that is not running and wait until all have booted. */
  private async bringUp(s: LabState, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    const name = s.handle.name;
    const guests: RunningGuest[] = [];
    let i = 0;
    for (const m of s.machines) {
      guests.push((await this.guest(name, m)) ?? (await this.startMachine(s, m)));
      i++;
      onProgress({ phase: 'machines-starting', percent: 25 + Math.round((25 * i) / s.machines.length), message: `Started ${m.name} (${i} of ${s.machines.length})` });
      signal?.throwIfAborted();
    }
    let booted = 0;
    await Promise.all(
      guests.map(async (g, k) => {
        await abortable(g.waitForConsole(BOOTED, this.o.bootTimeoutMs ?? 180_000), signal);
        booted++;
        onProgress({ phase: 'machines-starting', percent: 50 + Math.round((45 * booted) / guests.length), message: `${s.machines[k]?.name ?? ''} booted (${booted} of ${guests.length})` });
      }),
    );
  }

  private async startMachine(s: LabState, m: MachineState): Promise<RunningGuest> {
    const key = `${s.handle.name}/${m.name}`;
    this.starting.add(key);
    try {
      return await this.spawnMachine(s, m);
    } finally {
      this.starting.delete(key);
    }
  }

  private async spawnMachine(s: LabState, m: MachineState): Promise<RunningGuest> {
    const name = s.handle.name;
    const img = path.join(this.o.imageDir, m.image);
    const dir = this.store.machineDir(name, m);
    const kernel = kernelOf(img);
    const accel = await detectAccel({ setting: this.o.accel, qemuBin: this.o.qemuBin, kernel, log: this.log });
    // a QEMU for this dir that we could not attach to (e.g. spawned just before a crash, no pidfile yet) must not run twice
    await killProcessesMentioning(dir);
    const nics = [{ mac: m.mac, netdev: `socket,mcast=${s.net.group}:${s.net.port},localaddr=127.0.0.1` }];
    if (s.egress) nics.push({ mac: m.mac.replace(/^52:54:00/, '52:54:01'), netdev: 'user,restrict=off' });
    const g = await QemuRunner.start({
      runDir: dir, socketDir: this.store.socketDir(name, m), name: `${name}.${m.name}`, qemuBin: this.o.qemuBin, accel,
      kernel, initrd: path.join(img, 'initramfs.gz'), memoryMiB: m.memoryMiB, cpus: m.cpus,
      disk: path.join(dir, 'home.qcow2'), nics,
      fwCfg: { 'opt/lab/config': path.join(dir, 'config'), ...(fs.existsSync(path.join(dir, 'userdata')) ? { 'opt/lab/userdata': path.join(dir, 'userdata') } : {}) },
      vnc: m.channels.includes('vnc'), agent: true, log: this.log,
    });
    this.guests.set(`${name}/${m.name}`, g);
    void g.exited.then(() => { if (this.guests.get(`${name}/${m.name}`) === g) this.guests.delete(`${name}/${m.name}`); });
    this.log.info({ lab: name, machine: m.name, pid: g.pid, accel }, 'qemu.machine_started');
    return g;
  }

  /** The running guest of a machine: known in this process, or re-attached from its pidfile. */
  private async guest(name: string, m: MachineState): Promise<RunningGuest | undefined> {
    const key = `${name}/${m.name}`;
    const known = this.guests.get(key);
    if (known && alive(known.pid)) return known;
    if (this.starting.has(key)) return undefined;
    const g = await QemuRunner.attach(this.store.machineDir(name, m), this.store.socketDir(name, m));
    if (!g) return undefined;
    this.guests.set(key, g);
    void g.exited.then(() => { if (this.guests.get(key) === g) this.guests.delete(key); });
    this.log.info({ lab: name, machine: m.name, pid: g.pid }, 'qemu.machine_attached');
    return g;
  }

  async status(handle: LabHandle): Promise<Record<string, MachineStatus>> {
    const s = this.store.read(handle.name);
    const out: Record<string, MachineStatus> = {};
    if (!s || s.handle.generation !== handle.generation) return out; // unknown lab: every machine is 'gone'
    for (const m of s.machines) out[m.name] = await this.machineStatus(s, m);
    return out;
  }

  private async machineStatus(s: LabState, m: MachineState): Promise<MachineStatus> {
    if (this.starting.has(`${s.handle.name}/${m.name}`)) return { phase: 'booting' };
    const g = await this.guest(s.handle.name, m);
    if (!g) {
      if (s.desired === 'stopped') return { phase: 'stopped' };
      if (!fs.existsSync(guestPaths(this.store.machineDir(s.handle.name, m)).pidFile)) return { phase: 'pending' };
      return { phase: 'failed', reason: `QEMU for ${m.name} is not running${lastLine(guestPaths(this.store.machineDir(s.handle.name, m)).qemuLog)}` };
    }
    try {
      const st = await g.qmp.execute<{ status: string }>('query-status', undefined, 3000);
      if (st.status === 'paused' || st.status === 'suspended') return { phase: 'paused' };
      if (st.status === 'running') {
        const log = readText(g.consoleLog);
        return BOOTED.test(log) ? { phase: 'running' } : { phase: 'booting' };
      }
      if (st.status === 'prelaunch' || st.status === 'inmigrate') return { phase: 'pending' };
      return { phase: 'failed', reason: `QEMU reports ${st.status}` };
    } catch (err) {
      return { phase: 'failed', reason: `QEMU does not answer: ${(err as Error).message}` };
    }
  }

  async openChannel(handle: LabHandle, machine: string, channel: ChannelKind): Promise<Duplex> {
    const { s, m } = this.machineOf(handle, machine);
    if (!m.channels.includes(channel)) throw new NotFound(`machine ${machine} of lab ${s.labId} has no ${channel} channel`);
    const g = await this.guest(handle.name, m);
    if (!g) throw new Conflict(`machine ${machine} of lab ${s.labId} is not running`, { publicMessage: `Machine ${machine} is not running` });
    const sockPath = channel === 'vnc' ? g.vncSocket : g.consoleSocket;
    const key = `${handle.name}/${machine}`;
    if (channel === 'console') this.consoles.get(key)?.destroy(); // QEMU serves one console client: the newest viewer wins
    const sock = net.connect(sockPath);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', (e) => reject(new BackendFailure(`${channel} of ${machine}: ${e.message}`, { cause: e })));
    });
    if (channel === 'console') {
      this.consoles.set(key, sock);
      sock.once('close', () => { if (this.consoles.get(key) === sock) this.consoles.delete(key); });
    }
    return sock;
  }

  async exec(handle: LabHandle, machine: string, command: string, opts: ExecOptions): Promise<ExecResult> {
    const { m } = this.machineOf(handle, machine);
    const g = await this.guest(handle.name, m);
    if (!g) throw new Conflict(`machine ${machine} is not running`);
    const st = await g.qmp.execute<{ status: string }>('query-status', undefined, 3000);
    if (st.status !== 'running') throw new Conflict(`machine ${machine} is ${st.status}`, { publicMessage: `Machine ${machine} is paused` });
    // the agent port serves one client at a time: one exec per machine at a time
    const token = machineAgentToken(this.store.machineDir(handle.name, m));
    return this.locked(`${handle.name}/${machine}#exec`, () => agentExec(g.agentSocket, token, command, opts, `${handle.name}/${machine}`));
  }

  async pause(handle: LabHandle): Promise<void> {
    await this.locked(handle.name, async () => {
      const s = this.mustRead(handle);
      if (s.desired === 'stopped') return; // nothing runs: nothing to pause
      for (const m of s.machines) await (await this.guest(handle.name, m))?.qmp.execute('stop');
      s.desired = 'paused';
      this.store.write(s);
    });
  }

  async resume(handle: LabHandle): Promise<void> {
    await this.locked(handle.name, async () => {
      const s = this.mustRead(handle);
      if (s.desired === 'stopped') throw new Conflict(`lab ${s.labId} is stopped; start it instead of resuming`);
      for (const m of s.machines) await (await this.guest(handle.name, m))?.qmp.execute('cont');
      s.desired = 'running';
      this.store.write(s);
    });
  }

  async stop(handle: LabHandle): Promise<void> {
    await this.locked(handle.name, async () => {
      const s = this.mustRead(handle);
      await Promise.all(s.machines.map((m) => this.stopMachine(s, m)));
      s.desired = 'stopped';
      this.store.write(s);
    });
  }

  private async stopMachine(s: LabState, m: MachineState): Promise<void> {
    const g = await this.guest(s.handle.name, m);
    if (!g) return;
    // flush the guest's page cache to its disk before QEMU quits (QEMU flushes its own)
    try {
      await g.qmp.execute('cont');
      await agentExec(g.agentSocket, machineAgentToken(this.store.machineDir(s.handle.name, m)), 'sync', { timeoutMs: 3000, maxOutputBytes: 1024 });
    } catch { /* no agent: quit anyway */ }
    await g.stop(5000);
    this.guests.delete(`${s.handle.name}/${m.name}`);
  }

  async start(handle: LabHandle): Promise<void> {
    await this.locked(handle.name, async () => {
      const s = this.mustRead(handle);
      if (s.desired === 'stopped') this.checkCapacity(s.machines.length, s.machines.reduce((n, m) => n + m.memoryMiB, 0), s.labId);
      s.desired = 'running';
      this.store.write(s);
      await this.bringUp(s, () => undefined);
      for (const m of s.machines) await (await this.guest(handle.name, m))?.qmp.execute('cont');
    });
  }

  async reset(handle: LabHandle, machine?: string): Promise<void> {
    await this.locked(handle.name, async () => {
      const s = this.mustRead(handle);
      const targets = machine ? [this.machineOf(handle, machine).m] : s.machines;
      for (const m of targets) {
        const g = await this.guest(handle.name, m);
        await g?.kill();
        this.guests.delete(`${handle.name}/${m.name}`);
        fs.rmSync(path.join(this.store.machineDir(handle.name, m), 'home.qcow2'), { force: true });
        await this.createOverlay(handle.name, m);
      }
      if (s.desired === 'stopped') return;
      await this.bringUp(s, () => undefined);
      if (s.desired === 'paused') for (const m of targets) await (await this.guest(handle.name, m))?.qmp.execute('stop');
    });
  }

  async destroy(handle: LabHandle): Promise<void> {
    await this.locked(handle.name, () => this.teardown(handle.name));
  }

  /** Kill every QEMU of the lab (SIGKILL: its disks are thrown away) and remove its files. */
  private async teardown(name: string): Promise<void> {
    const s = this.store.read(name);
    for (const m of s?.machines ?? []) {
      const key = `${name}/${m.name}`;
      this.consoles.get(key)?.destroy();
      const g = this.guests.get(key);
      if (g) await g.kill();
      else await QemuRunner.killStray(this.store.machineDir(name, m));
      this.guests.delete(key);
    }
    // anything else started for this run dir (a crash between spawn and pidfile)
    await killProcessesMentioning(this.store.runDir(name));
    this.store.remove(s, name);
    this.log.info({ lab: name }, 'qemu.lab_destroyed');
  }

  async list(): Promise<LabHandle[]> {
    return this.store.all().map((s) => s.handle);
  }

  /** QEMU runs and the image dir exists (checked at most every 30 s). */
  async ready(): Promise<boolean> {
    if (this.readyCache && Date.now() - this.readyCache.at < 30_000) return this.readyCache.ok;
    let ok = false;
    try {
      await run(this.o.qemuBin, ['--version'], { timeout: 5000 });
      ok = fs.existsSync(this.o.imageDir);
    } catch {
      ok = false;
    }
    this.readyCache = { at: Date.now(), ok };
    return ok;
  }
  private readyCache: { at: number; ok: boolean } | undefined;

  async close(): Promise<void> {
    for (const c of this.consoles.values()) c.destroy();
    this.consoles.clear();
    for (const g of this.guests.values()) g.qmp.close();
    this.guests.clear();
  }

  // --- helpers ---------------------------------------------------------------------------------

  private validate(spec: BackendLabSpec): void {
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
      const img = path.join(this.o.imageDir, m.image);
      if (!/^[A-Za-z0-9._-]+$/.test(m.image) || !fs.existsSync(path.join(img, 'vmlinuz'))) {
        throw new BadRequest(`lab ${spec.labId}: machine ${m.name} uses image ${JSON.stringify(m.image)}, which is not in ${this.o.imageDir} (run scripts/setup.sh to build lab-tiny)`);
      }
    }
  }

  private configFor(s: LabState, m: MachineState, creds?: { username: string; password: string }): string {
    return guestConfig({
      hostname: m.name, ip: m.ip, egress: s.egress, agentToken: machineAgentToken(this.store.machineDir(s.handle.name, m)),
      ...(creds ? { user: creds.username, pass: creds.password } : {}),
      hosts: s.machines.map((x) => ({ name: x.name, ip: x.ip })),
    });
  }

  private async createOverlay(name: string, m: MachineState): Promise<void> {
    // the overlay names the exact base file (image folders are versioned; lab-tiny is a symlink that moves on upgrades)
    const base = realpath(path.join(this.o.imageDir, m.image, 'disk.qcow2'));
    const overlay = path.join(this.store.machineDir(name, m), 'home.qcow2');
    // a bigger virtual size than the base's: the guest grows its file system at boot
    const size = m.diskGiB ? [`${m.diskGiB}G`] : [];
    const args = fs.existsSync(base) ? ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay, ...size] : ['create', '-q', '-f', 'qcow2', overlay, size[0] ?? '1G'];
    try {
      await run(this.o.qemuBin.replace(/qemu-system-[^/]*$/, 'qemu-img'), args, { timeout: 30_000 });
    } catch (err) {
      throw new BackendFailure(`qemu-img create for ${m.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  private mustRead(handle: LabHandle): LabState {
    const s = this.store.read(handle.name);
    if (!s) throw new NotFound(`no QEMU lab ${handle.name}`);
    return s;
  }

  private machineOf(handle: LabHandle, machine: string): { s: LabState; m: MachineState } {
    const s = this.mustRead(handle);
    const m = s.machines.find((x) => x.name === machine);
    if (!m) throw new NotFound(`lab ${s.labId} has no machine ${machine}`);
    return { s, m };
  }

  /** Run fn after every earlier call for the same key (provisions, pause, stop … of one lab never interleave). */
  private locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(
      () => fn(),
      () => fn(),
    );
    const settled = next.catch(() => undefined);
    this.locks.set(key, settled);
    void settled.then(() => { if (this.locks.get(key) === settled) this.locks.delete(key); });
    return next;
  }
}

function sum(spec: BackendLabSpec): number {
  return spec.machines.reduce((n, m) => n + m.memoryMiB, 0);
}
export { kernelOf } from './util.js';
