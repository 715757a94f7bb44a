/**
 * LabBackend on local QEMU: each VM machine is one qemu-system-x86_64 process (QemuRunner).
 *
 * Per lab, DATA_DIR/qemu/<handle.name>/ holds state.json (LabStore) and one dir per machine
 * (m0, m1, …): its copy-on-write disk overlay (lab-tiny: home.qcow2 over the image's /home disk,
 * settings through fw_cfg; cloud images such as debian-12: root.qcow2 over the system disk or
 * over a saved running state's frozen disk, identity from a NoCloud seed.iso — cloudStart.ts),
 * pidfile, logs and unix sockets (VNC, serial console, QMP, check agent). Nothing
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
import { BackendFailure, CapacityExhausted, Conflict, NotFound } from '../../errors.js';
import { KeyedMutex } from '../../KeyedMutex.js';
import type { Logger } from '../../logger.js';
import type { BackendCapacity, BackendLabSpec, ChannelKind, ExecOptions, ExecResult, LabBackend, LabHandle, MachineAddress, MachineStatus, Progress } from '../types.js';
import { agentExec, machineAgentToken } from './agent.js';
import { startCloudMachine, templateSpec } from './cloudStart.js';
import { localImage, type LocalImage } from './image.js';
import { detectAccel, reapStrayProbe, type Accel, type AccelSetting } from './kvm.js';
import { GRAPHICAL, SavedStates } from './savedStates.js';
import { waitForDrawnScreen } from './screen.js';
import { thumbnailPng } from '../thumbnail.js';
import { LabStore, type LabState, type MachineState } from './labState.js';
import { QemuRunner, alive, guestPaths, type RunningGuest } from './QemuRunner.js';
import { validateSpec, prepareMachine, createHomeOverlay } from './machineFiles.js';
import { BOOTED, waitBooted } from './bootWait.js';
import { abortable, fileTail, killProcessesMentioning, lastLine, readText, realpath } from './util.js';

/** How much of a guest's console log a new console connection starts with. */
const CONSOLE_REPLAY_BYTES = 16 * 1024;

const run = promisify(execFile);

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
  /** Start cloud-image machines from saved running states (built in the background after a first cold boot). Default true. */
  savedStates?: boolean;
  /** Build missing saved states in the background after a lab booted (default true; false: only prepareSavedState builds them). */
  autoBuildSavedStates?: boolean;
  /** Saved states unused this long are removed (default 7 days). */
  savedStateMaxIdleMs?: number;
}

export class QemuBackend implements LabBackend {
  readonly kind = 'qemu' as const;

  cannotRun(machines: ReadonlyArray<{ name: string; kind: 'vm' | 'container' }>): string | null {
    const c = machines.find((m) => m.kind === 'container');
    return c ? `machine ${c.name} is a container, and this server runs virtual machines only (QEMU backend)` : null;
  }
  private readonly store: LabStore;
  private readonly guests = new Map<string, RunningGuest>();
  private readonly consoles = new Map<string, net.Socket>();
  /** Machines this process is spawning right now: never attach to them (QEMU serves one QMP client; the spawner must get it). */
  private readonly starting = new Set<string>();
  private readonly locks = new KeyedMutex();
  private readonly log: Logger;
  readonly states: SavedStates | undefined;

  constructor(private readonly o: QemuBackendOptions) {
    this.store = new LabStore(path.join(o.dataDir, 'qemu'));
    this.log = o.log.child({ backend: 'qemu' });
    reapStrayProbe(this.store.root, this.log); // a tool killed while probing KVM
    this.states = o.savedStates === false ? undefined : new SavedStates({ root: path.join(o.dataDir, 'qemu-states'), qemuBin: o.qemuBin, log: this.log, bootTimeoutMs: this.bootTimeoutMs });
    this.gcSavedStates(); // images rebuilt or states unused while the tool was down
  }

  private get bootTimeoutMs(): number {
    return this.o.bootTimeoutMs ?? 180_000;
  }

  /**
   * Host capacity in use: every lab whose state file says running or paused (provisions under way
   * included: the state is written, synchronously after the check, before anything starts).
   */
  capacity(): Required<BackendCapacity> {
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
    validateSpec(spec, this.o.imageDir);
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
            kind: localImage(this.o.imageDir, m.image).kind,
          })),
        };
        this.store.write(s); // first, so list() finds the lab whatever happens next
      }
      const state = s;
      onProgress({ phase: 'network', percent: 10, message: `Private network ${state.net.group}:${state.net.port}` });
      signal?.throwIfAborted();
      for (const m of state.machines) await prepareMachine({ dir: this.store.machineDir(handle.name, m), qemuBin: this.o.qemuBin, imageDir: this.o.imageDir }, state, m, spec, fresh);
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
    const deadline = Date.now() + this.bootTimeoutMs;
    try {
      await Promise.all(
        guests.map(async (g, k) => {
          const m = s.machines[k]!;
          const token = machineAgentToken(this.store.machineDir(name, m));
          const ping = (timeoutMs: number) => this.locked(`${name}/${m.name}#exec`, () => agentExec(g.agentSocket, token, 'true', { timeoutMs, maxOutputBytes: 64 }));
          await abortable(waitBooted(m.name, g, ping, deadline, this.bootTimeoutMs, signal), signal);
          if (m.kind === 'cloud' && m.channels.includes('vnc')) await abortable(this.waitDesktop(name, m, g, token, deadline), signal);
          booted++;
          onProgress({ phase: 'machines-starting', percent: 50 + Math.round((45 * booted) / guests.length), message: `${m.name} booted (${booted} of ${guests.length})`, booted: { done: booted, total: guests.length } });
        }),
      );
    } catch (err) {
      if (!(err instanceof BackendFailure)) throw err;
      // a lab that did not come up in time runs nothing: its disks stay for destroy (or another try)
      for (const m of s.machines) await this.killMachine(s.handle.name, m);
      this.log.warn({ lab: name, err: err.message }, 'qemu.boot_failed');
      throw err;
    }
    this.store.write(s); // which machines were restored from a saved state
    if (this.states && this.o.autoBuildSavedStates !== false) void this.buildSavedStates(s);
  }

  /**
   * A machine with a desktop session counts as booted once its desktop is drawn on the screen (the
   * lab page's Desktop tab shows it): after a cold boot Xfce paints it tens of seconds after the
   * check agent answers, and until then the screen is black or shows the boot console. A machine
   * restored from a saved state has it drawn already. Never fails the lab (its consoles work
   * either way): a desktop not drawn by the deadline is logged.
   */
  private async waitDesktop(name: string, m: MachineState, g: RunningGuest, token: string, deadline: number): Promise<void> {
    try {
      const r = await this.locked(`${name}/${m.name}#exec`, () => agentExec(g.agentSocket, token, GRAPHICAL, { timeoutMs: 30_000, maxOutputBytes: 64 }));
      if (!/^graphical$/m.test(r.stdout)) return;
      const t0 = Date.now();
      const s = await waitForDrawnScreen(g.qmp, path.join(this.store.machineDir(name, m), 'screen.ppm'), Math.max(10_000, deadline - Date.now()), { settled: false });
      this.log.info({ lab: name, machine: m.name, ms: Date.now() - t0, colours: s.colours }, 'qemu.desktop_drawn');
    } catch (err) {
      this.log.warn({ lab: name, machine: m.name, err: (err as Error).message }, 'qemu.desktop_not_drawn');
    }
  }

  /** After a lab booted: build the saved states its cloud machines could start from next time (one at a time, in the background). */
  private async buildSavedStates(s: LabState): Promise<void> {
    for (const m of s.machines) {
      if (m.kind !== 'cloud' || m.diskGiB || !this.states) continue;
      try {
        const image = localImage(this.o.imageDir, m.image);
        await this.states.ensure(templateSpec(s, m, image, { accel: await this.accelFor(image), qemuVersion: await this.qemuVersion() }));
      } catch (err) {
        this.log.warn({ lab: s.handle.name, machine: m.name, err: (err as Error).message }, 'qemu.saved_state_skipped');
      }
    }
  }

  /** Build (or find) the saved state lab machines of this size would start from; for benchmarks and tests. */
  async prepareSavedState(machine: { image: string; memoryMiB: number; cpus: number }, egress: boolean): Promise<boolean> {
    if (!this.states) return false;
    const image = localImage(this.o.imageDir, machine.image);
    if (image.kind !== 'cloud') return false;
    const t = { image, memoryMiB: machine.memoryMiB, cpus: machine.cpus, egress, accel: await this.accelFor(image), qemuVersion: await this.qemuVersion() };
    return (await this.states.ensure(t)) !== undefined;
  }

  private accelFor(image: LocalImage): Promise<Accel> {
    return detectAccel({ setting: this.o.accel, qemuBin: this.o.qemuBin, kernel: image.kernel, runDir: this.store.root, log: this.log });
  }

  private qemuVersionP: Promise<string> | undefined;
  private qemuVersion(): Promise<string> {
    this.qemuVersionP ??= run(this.o.qemuBin, ['--version'], { timeout: 10_000 }).then((r) => r.stdout.split('\n')[0] ?? '', () => 'unknown');
    return this.qemuVersionP;
  }

  private async killMachine(name: string, m: MachineState): Promise<void> {
    const key = `${name}/${m.name}`;
    this.consoles.get(key)?.destroy();
    const g = this.guests.get(key);
    if (g) await g.kill();
    else await QemuRunner.killStray(this.store.machineDir(name, m));
    this.guests.delete(key);
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
    const image = localImage(this.o.imageDir, m.image);
    const dir = this.store.machineDir(name, m);
    const accel = await this.accelFor(image);
    // a QEMU for this dir that we could not attach to (e.g. spawned just before a crash, no pidfile yet) must not run twice
    await killProcessesMentioning(dir);
    const track = (g: RunningGuest) => {
      this.guests.set(`${name}/${m.name}`, g);
      void g.exited.then(() => { if (this.guests.get(`${name}/${m.name}`) === g) this.guests.delete(`${name}/${m.name}`); });
    };
    if (image.kind === 'cloud') {
      const g = await startCloudMachine(s, m, image, {
        qemuBin: this.o.qemuBin, accel, qemuVersion: await this.qemuVersion(), dir, socketDir: this.store.socketDir(name, m),
        ...(this.states ? { states: this.states } : {}), log: this.log, track,
      });
      this.store.write(s); // which saved state its disk is built on, before anything can collect it
      this.log.info({ lab: name, machine: m.name, pid: g.pid, accel, savedState: m.savedState }, 'qemu.machine_started');
      return g;
    }
    const nics = [{ mac: m.mac, netdev: `socket,mcast=${s.net.group}:${s.net.port},localaddr=127.0.0.1` }];
    if (s.egress) nics.push({ mac: m.mac.replace(/^52:54:00/, '52:54:01'), netdev: 'user,restrict=off' });
    const g = await QemuRunner.start({
      runDir: dir, socketDir: this.store.socketDir(name, m), name: `${name}.${m.name}`, qemuBin: this.o.qemuBin, accel,
      kernel: image.kernel, initrd: image.initrd, memoryMiB: m.memoryMiB, cpus: m.cpus,
      disk: path.join(dir, 'home.qcow2'), nics,
      fwCfg: { 'opt/lab/config': path.join(dir, 'config'), ...(fs.existsSync(path.join(dir, 'userdata')) ? { 'opt/lab/userdata': path.join(dir, 'userdata') } : {}) },
      vnc: m.channels.includes('vnc'), agent: true, log: this.log,
    });
    track(g);
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
      // QEMU's socket only carries output from now on: what the guest printed before (banner, login
      // prompt) comes from its console log, read at once so the two barely overlap
      const recent = fileTail(g.consoleLog, CONSOLE_REPLAY_BYTES);
      if (recent.length) sock.unshift(recent);
      this.consoles.set(key, sock);
      sock.once('close', () => { if (this.consoles.get(key) === sock) this.consoles.delete(key); });
    }
    return sock;
  }

  async screenshot(handle: LabHandle, machine: string): Promise<Buffer> {
    const { s, m } = this.machineOf(handle, machine);
    if (!m.channels.includes('vnc')) throw new NotFound(`machine ${machine} of lab ${s.labId} has no screen`);
    const g = await this.guest(handle.name, m);
    if (!g) throw new Conflict(`machine ${machine} of lab ${s.labId} is not running`, { publicMessage: `Machine ${machine} is not running` });
    const file = path.join(this.store.machineDir(handle.name, m), 'thumbnail.ppm');
    // one screendump per machine at a time: they share the file
    return this.locked(`${handle.name}/${machine}#screen`, async () => {
      fs.rmSync(file, { force: true });
      await g.qmp.execute('screendump', { filename: file }, 10_000);
      try {
        return thumbnailPng(fs.readFileSync(file));
      } finally {
        fs.rmSync(file, { force: true });
      }
    });
  }

  /** The tail of the guest's console log (QEMU writes every byte the serial console prints to it). */
  async consoleHistory(handle: LabHandle, machine: string, maxBytes: number): Promise<Buffer | null> {
    const { m } = this.machineOf(handle, machine);
    if (!m.channels.includes('console')) return null;
    const log = guestPaths(this.store.machineDir(handle.name, m)).consoleLog;
    return fs.existsSync(log) ? fileTail(log, maxBytes) : null;
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
        const dir = this.store.machineDir(handle.name, m);
        fs.rmSync(path.join(dir, 'home.qcow2'), { force: true });
        fs.rmSync(path.join(dir, 'root.qcow2'), { force: true }); // cloud images: made again at start (from a saved state when there is one)
        if (m.kind !== 'cloud') await createHomeOverlay(dir, this.o.qemuBin, this.o.imageDir, m);
      }
      if (s.desired === 'stopped') return this.store.write(s);
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
    for (const m of s?.machines ?? []) await this.killMachine(name, m);
    // anything else started for this run dir (a crash between spawn and pidfile)
    await killProcessesMentioning(this.store.runDir(name));
    this.store.remove(s, name);
    this.log.info({ lab: name }, 'qemu.lab_destroyed');
    this.gcSavedStates();
  }

  /** Remove saved states no lab is built on that are unused, set aside, or of an image version no longer current. */
  gcSavedStates(): void {
    if (!this.states) return;
    const inUse = new Set(this.store.all().flatMap((s) => s.machines.flatMap((m) => (m.savedState ? [m.savedState] : []))));
    const current = new Set<string>();
    try {
      for (const n of fs.readdirSync(this.o.imageDir)) current.add(realpath(path.join(this.o.imageDir, n)));
    } catch { /* no images */ }
    this.states.gc(inUse, this.o.savedStateMaxIdleMs ?? 7 * 24 * 3600_000, current);
  }

  async addresses(handle: LabHandle): Promise<Record<string, MachineAddress>> {
    const s = this.mustRead(handle);
    return Object.fromEntries(s.machines.map((m) => [m.name, { ip: m.ip.split('/')[0] ?? m.ip, host: m.name }]));
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
    return this.locks.run(key, fn);
  }
}

function sum(spec: BackendLabSpec): number {
  return spec.machines.reduce((n, m) => n + m.memoryMiB, 0);
}
export { kernelOf } from './util.js';
