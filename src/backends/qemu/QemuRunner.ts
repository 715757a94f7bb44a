/**
 * Spawns ONE guest as a qemu-system-x86_64 process and hands back what is needed to drive it.
 * Used by QemuBackend (one per lab machine) and by the Kubernetes test stand-in.
 *
 * The process is detached (own process group, stdio to a log file) so it survives the tool being
 * killed: a later tool start re-attaches with QemuRunner.attach() or kills it. Everything it
 * creates lives in opts.runDir; `pgrep -f <runDir>` finds it (the path is on its command line).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BackendFailure } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { Qmp } from './Qmp.js';
import type { Accel } from './kvm.js';

/** Unix socket paths must fit sockaddr_un (108 bytes with the NUL). */
export const MAX_SOCKET_PATH = 107;

export interface NicOptions {
  /** MAC address, e.g. 52:54:00:0a:00:0b. The lab-tiny guest finds its lab NIC by the 52:54:00 prefix and the egress NIC by 52:54:01. */
  mac: string;
  /**
   * The -netdev backend without its id, e.g. "socket,mcast=230.1.2.3:40000,localaddr=127.0.0.1"
   * (a private per-lab segment) or "user,restrict=off" (NAT to the internet).
   */
  netdev: string;
}

export interface GuestOptions {
  /** Directory for this guest's pidfile, logs and (by default) sockets. Created if missing. Keep it short: socket paths must stay under 108 bytes. */
  runDir: string;
  /** Where the unix sockets go (default runDir). */
  socketDir?: string;
  /** Shown as the QEMU guest name (-name) and in logs. */
  name: string;
  /** qemu-system-x86_64 binary (default "qemu-system-x86_64"). */
  qemuBin?: string;
  /** 'kvm' or 'tcg'; decide it with detectAccel() from kvm.ts. */
  accel: Accel;
  /** Direct kernel boot: kernel image, initramfs and command line (console=ttyS0 is added first). */
  kernel: string;
  initrd: string;
  append?: string;
  memoryMiB: number;
  cpus: number;
  /** A qcow2 disk attached as virtio /dev/vda (e.g. an overlay over the image's disk.qcow2). */
  disk?: string;
  /** More virtio disks after it (/dev/vdb, …), e.g. the read-only cloud-init seed. */
  drives?: Array<{ file: string; format: 'qcow2' | 'raw'; readonly?: boolean }>;
  /** Start from a saved state instead of booting: QEMU's -incoming URI (e.g. "exec:cat state"). The guest is paused after loading. */
  incoming?: string;
  /** A VM generation ID device: a restored guest's kernel sees a new ID and reseeds its random number generator. */
  vmgenid?: boolean;
  /** Network interfaces, in order (virtio-net). None = no network at all. */
  nics?: NicOptions[];
  /** Files passed through fw_cfg: name (e.g. "opt/lab/config") → host file path. The lab-tiny guest reads its settings from opt/lab/config. */
  fwCfg?: Record<string, string>;
  /** Serve VGA on a VNC unix socket (default true). */
  vnc?: boolean;
  /** Add the virtio-serial port "lab.agent" on a unix socket for the exec agent (default true). */
  agent?: boolean;
  /** Start with the vCPUs stopped (-S); `cont` over QMP starts them. */
  paused?: boolean;
  /** seccomp sandbox (-sandbox on, no spawning, no privilege changes). Default: on when this QEMU supports it. */
  sandbox?: boolean;
  log?: Logger;
}

/** Paths of everything a guest uses; stable for a given runDir/socketDir so attach() can find it again. */
export interface GuestPaths {
  pidFile: string;
  qemuLog: string;
  /** Everything the guest wrote to its serial console (QEMU chardev logfile). */
  consoleLog: string;
  qmpSocket: string;
  vncSocket: string;
  consoleSocket: string;
  agentSocket: string;
}

export interface RunningGuest extends GuestPaths {
  pid: number;
  /** A connected QMP client (the only one: QEMU serves one client per QMP socket). */
  qmp: Qmp;
  /** Resolves when the QEMU process has exited. */
  exited: Promise<void>;
  /** Wait until the serial console output matches (the guest prints "lab-guest: ready <host>" when booted). */
  waitForConsole(pattern: RegExp, timeoutMs: number): Promise<void>;
  /** QMP "quit" (QEMU flushes its disks), SIGKILL if it has not exited within timeoutMs. */
  stop(timeoutMs?: number): Promise<void>;
  /** SIGKILL now; resolves when the process is gone. */
  kill(): Promise<void>;
}

export function guestPaths(runDir: string, socketDir = runDir): GuestPaths {
  return {
    pidFile: path.join(runDir, 'qemu.pid'),
    qemuLog: path.join(runDir, 'qemu.log'),
    consoleLog: path.join(runDir, 'console.log'),
    qmpSocket: path.join(socketDir, 'qmp.sock'),
    vncSocket: path.join(socketDir, 'vnc.sock'),
    consoleSocket: path.join(socketDir, 'con.sock'),
    agentSocket: path.join(socketDir, 'agent.sock'),
  };
}

export class QemuRunner {
  /** Build the QEMU command line for a guest (exported for tests and debugging). */
  static args(o: GuestOptions, p: GuestPaths): string[] {
    const a: string[] = [
      '-name', `guest=${o.name},debug-threads=off`,
      '-nodefaults', '-no-user-config',
      '-machine', 'pc', '-accel', o.accel,
      ...(o.accel === 'kvm' ? ['-cpu', 'host'] : []),
      '-smp', String(Math.max(1, o.cpus)), '-m', String(Math.max(64, o.memoryMiB)),
      '-kernel', o.kernel, '-initrd', o.initrd,
      '-append', ['console=ttyS0', 'quiet', 'panic=5', o.append ?? ''].join(' ').trim(),
      '-pidfile', p.pidFile,
      '-qmp', `unix:${p.qmpSocket},server=on,wait=off`,
      '-chardev', `socket,id=con,path=${p.consoleSocket},server=on,wait=off,logfile=${p.consoleLog},logappend=on`,
      '-serial', 'chardev:con',
      '-vga', 'std',
      '-display', 'none',
    ];
    if (o.vnc ?? true) a.push('-vnc', `unix:${p.vncSocket}`);
    if (o.disk) a.push('-drive', `file=${o.disk},if=virtio,format=qcow2,cache=writeback,discard=unmap`);
    for (const d of o.drives ?? []) a.push('-drive', `file=${d.file},if=virtio,format=${d.format}${d.readonly ? ',readonly=on' : ''}`);
    if (o.vmgenid) a.push('-device', 'vmgenid,guid=auto');
    (o.nics ?? []).forEach((nic, i) => {
      a.push('-netdev', `${nic.netdev},id=n${i}`, '-device', `virtio-net-pci,netdev=n${i},mac=${nic.mac}`);
    });
    for (const [name, file] of Object.entries(o.fwCfg ?? {})) a.push('-fw_cfg', `name=${name},file=${file}`);
    if (o.agent ?? true) {
      a.push('-device', 'virtio-serial-pci', '-chardev', `socket,id=agent,path=${p.agentSocket},server=on,wait=off`,
        '-device', 'virtserialport,chardev=agent,name=lab.agent');
    }
    if (o.paused) a.push('-S');
    if (o.incoming) a.push('-incoming', o.incoming);
    if (o.sandbox) a.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
    return a;
  }

  /** Spawn the guest and connect QMP. Throws BackendFailure (with the tail of QEMU's log) if QEMU does not come up. */
  static async start(opts: GuestOptions): Promise<RunningGuest> {
    const o = { ...opts, runDir: path.resolve(opts.runDir), ...(opts.socketDir ? { socketDir: path.resolve(opts.socketDir) } : {}) };
    fs.mkdirSync(o.runDir, { recursive: true });
    const socketDir = o.socketDir ?? o.runDir;
    fs.mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    const p = guestPaths(o.runDir, socketDir);
    for (const s of [p.qmpSocket, p.vncSocket, p.consoleSocket, p.agentSocket]) {
      if (Buffer.byteLength(s) > MAX_SOCKET_PATH) throw new BackendFailure(`socket path too long (${Buffer.byteLength(s)} > ${MAX_SOCKET_PATH} bytes): ${s}; use a shorter DATA_DIR`);
      fs.rmSync(s, { force: true });
    }
    fs.rmSync(p.pidFile, { force: true });
    fs.rmSync(p.consoleLog, { force: true }); // "booted" is read from this boot's console output
    const args = QemuRunner.args({ ...o, sandbox: o.sandbox ?? supportsSandbox(o.qemuBin ?? 'qemu-system-x86_64') }, p);
    const logFd = fs.openSync(p.qemuLog, 'a');
    const child = spawn(o.qemuBin ?? 'qemu-system-x86_64', args, { detached: true, stdio: ['ignore', logFd, logFd], cwd: o.runDir });
    fs.closeSync(logFd);
    let exitCode: number | null | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code) => { exitCode = code; resolve(); });
      child.once('error', (err) => { o.log?.error({ err }, 'qemu.spawn_failed'); exitCode = -1; resolve(); });
    });
    child.unref();
    const pid = child.pid;
    o.log?.debug({ guest: o.name, pid, accel: o.accel }, 'qemu.spawned');
    try {
      if (!pid) throw new Error('spawn failed');
      const qmp = await Promise.race([
        Qmp.connect(p.qmpSocket, 15_000),
        exited.then(() => { throw new Error(`QEMU exited (code ${String(exitCode)})`); }),
      ]);
      return makeGuest(pid, p, qmp, exited);
    } catch (err) {
      if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      throw new BackendFailure(`QEMU for ${o.name} did not start: ${(err as Error).message}\n${tail(p.qemuLog)}`, { cause: err, publicMessage: 'The virtual machine could not be started' });
    }
  }

  /**
   * Re-attach to a guest started earlier (by this or a previous tool process): reads the pidfile,
   * checks the process is QEMU for this runDir, connects QMP. Returns undefined if it is not running;
   * throws BackendFailure if it runs but its QMP socket is held by someone else.
   */
  static async attach(runDir: string, socketDir = runDir): Promise<RunningGuest | undefined> {
    const p = guestPaths(runDir, socketDir);
    const pid = readPid(p.pidFile);
    if (!pid || !isQemuOf(pid, runDir)) return undefined;
    let qmp: Qmp;
    try {
      qmp = await Qmp.connect(p.qmpSocket, 3000);
    } catch (err) {
      if (!alive(pid)) return undefined;
      // alive but QMP does not answer: another process holds it (QEMU serves one QMP client). Never restart it.
      throw new BackendFailure(`QEMU ${pid} of ${runDir} runs but its QMP socket does not answer (is another tool process attached?)`, {
        cause: err,
        publicMessage: 'The virtual machine is busy; try again',
      });
    }
    const exited = new Promise<void>((resolve) => {
      const check = setInterval(() => { if (!alive(pid)) { clearInterval(check); resolve(); } }, 500);
      check.unref();
      qmp.once('close', () => {
        // QMP closes when QEMU exits; give the process a moment to disappear
        const t = setInterval(() => { if (!alive(pid)) { clearInterval(t); clearInterval(check); resolve(); } }, 50);
        t.unref();
      });
    });
    return makeGuest(pid, p, qmp, exited);
  }

  /** Kill the QEMU of runDir if one runs (by pidfile, verified), without QMP. Resolves when it is gone. */
  static async killStray(runDir: string): Promise<boolean> {
    const pid = readPid(guestPaths(runDir).pidFile);
    if (!pid || !isQemuOf(pid, runDir)) return false;
    try { process.kill(pid, 'SIGKILL'); } catch { return false; }
    await waitGone(pid, 5000);
    return true;
  }
}

function makeGuest(pid: number, p: GuestPaths, qmp: Qmp, exited: Promise<void>): RunningGuest {
  let gone = false;
  void exited.then(() => { gone = true; qmp.close(); });
  const kill = async () => {
    if (!gone) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await Promise.race([exited, waitGone(pid, 5000)]);
  };
  return {
    ...p,
    pid,
    qmp,
    exited,
    waitForConsole: (pattern, timeoutMs) => waitForFile(p.consoleLog, pattern, timeoutMs, () => gone),
    kill,
    async stop(timeoutMs = 5000) {
      if (gone) return;
      try {
        await qmp.execute('quit', undefined, timeoutMs);
      } catch { /* closed while quitting is normal */ }
      const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
      if (!done) await kill();
    },
  };
}

async function waitForFile(file: string, pattern: RegExp, timeoutMs: number, isGone: () => boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try { text = fs.readFileSync(file, 'utf8'); } catch { /* not yet */ }
    if (pattern.test(text)) return;
    if (isGone()) throw new BackendFailure(`guest exited before its console showed ${String(pattern)}`);
    if (Date.now() > end) throw new BackendFailure(`guest console did not show ${String(pattern)} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sandboxSupport = new Map<string, boolean>();
/** Whether this QEMU was built with seccomp (-sandbox is listed in its help only then). */
export function supportsSandbox(qemuBin: string): boolean {
  let ok = sandboxSupport.get(qemuBin);
  if (ok === undefined) {
    try {
      ok = execFileSync(qemuBin, ['-help'], { encoding: 'utf8', timeout: 10_000 }).includes('-sandbox');
    } catch {
      ok = false;
    }
    sandboxSupport.set(qemuBin, ok);
  }
  return ok;
}

export function readPid(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie is not alive for our purposes
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** The process exists and its command line mentions runDir (guards against pid reuse). */
export function isQemuOf(pid: number, runDir: string): boolean {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes(path.resolve(runDir)) && alive(pid);
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
}

function tail(file: string, bytes = 2000): string {
  try {
    const t = fs.readFileSync(file, 'utf8');
    return t.slice(-bytes);
  } catch {
    return '';
  }
}
