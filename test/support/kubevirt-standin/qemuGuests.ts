/**
 * Real QEMU guests for the stand-in: the project's guest image (lab-tiny: kernel, initramfs,
 * /home base disk, built by scripts/build-guest-image.sh into $LAB_TOOLS_DIR/images) booted with
 * its VNC display, serial console and QMP on unix sockets under the stand-in's work dir. KVM when
 * usable, TCG otherwise. Pause/resume are QMP stop/cont; stop is QMP quit, then SIGKILL.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { defaultToolsDir } from '../../../src/config.js';
import type { Guest, GuestRequest, GuestRuntime } from './guests.js';

const run = promisify(execFile);

function kvmUsable(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/kvm', 'r+'));
    return true;
  } catch {
    return false;
  }
}

/** A line-oriented QMP client: one command at a time. */
class Qmp {
  private buf = '';
  private pending: Array<(msg: Record<string, unknown>) => void> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('return' in msg || 'error' in msg || 'QMP' in msg) this.pending.shift()?.(msg);
      }
    });
    sock.on('error', () => undefined);
  }

  static async connect(socketPath: string, timeoutMs: number): Promise<Qmp> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(socketPath);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await new Promise((r) => q.pending.push(r)); // greeting
        await q.cmd('qmp_capabilities');
        return q;
      } catch (err) {
        if (Date.now() > end) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  cmd(execute: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.pending.push((msg) => ('error' in msg ? reject(new Error(`QMP ${execute}: ${JSON.stringify(msg.error)}`)) : resolve(msg)));
      this.sock.write(`${JSON.stringify({ execute })}\n`);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

export async function createGuestRuntime(o: { workDir: string; log: Logger; imageDir?: string }): Promise<GuestRuntime> {
  const images = o.imageDir ?? path.join(defaultToolsDir(), 'images');
  let kvm = kvmUsable();
  let seq = 0;
  const runtime: GuestRuntime = {
    async boot(req: GuestRequest): Promise<Guest> {
      try {
        return await bootOnce(req);
      } catch (err) {
        // /dev/kvm can exist and still fail (nested virtualisation): fall back to TCG for good.
        if (!kvm) throw err;
        o.log.warn({ err: String(err) }, 'qemu.kvm.unusable; using TCG');
        kvm = false;
        return bootOnce(req);
      }
    },
  };
  return runtime;

  async function bootOnce(req: GuestRequest): Promise<Guest> {
      const image = path.join(images, req.image.replace(/[^a-z0-9._-]/gi, '_'));
      if (!fs.existsSync(path.join(image, 'vmlinuz'))) {
        throw new Error(`guest image ${req.image} not found under ${images} (scripts/setup-test.sh builds lab-tiny)`);
      }
      // Short directory names: unix socket paths are limited to 107 bytes.
      const dir = path.join(o.workDir, `g${++seq}`);
      fs.mkdirSync(dir, { recursive: true });
      const overlay = path.join(dir, 'home.qcow2');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.join(image, 'disk.qcow2'), overlay]);
      const hostname = req.key.split('/')[1] ?? 'lab';
      fs.writeFileSync(path.join(dir, 'config'), `hostname=${hostname}\nuser=student\npass=student\n`, { mode: 0o600 });
      const sockets = { vnc: path.join(dir, 'vnc.sock'), serial: path.join(dir, 'serial.sock'), qmp: path.join(dir, 'qmp.sock') };
      const args = [
        '-name', `guest=${req.key.replace('/', '_')},debug-threads=off`, '-nodefaults', '-no-user-config',
        '-machine', 'q35', ...(kvm ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg']), '-smp', String(req.cpus), '-m', String(req.memoryMiB),
        '-kernel', path.join(image, 'vmlinuz'), '-initrd', path.join(image, 'initramfs.gz'), '-append', 'console=ttyS0 console=tty1 quiet panic=-1',
        '-drive', `file=${overlay},if=virtio,format=qcow2`,
        '-fw_cfg', `name=opt/lab/config,file=${path.join(dir, 'config')}`,
        '-netdev', 'user,id=n0,restrict=on', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56',
        '-vga', 'std', '-vnc', `unix:${sockets.vnc}`,
        '-chardev', `socket,id=ser0,path=${sockets.serial},server=on,wait=off`, '-serial', 'chardev:ser0',
        '-qmp', `unix:${sockets.qmp},server=on,wait=off`, '-no-reboot',
      ];
      const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
        child.once('exit', (code, signal) => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve({ code, signal });
        });
      });
      let qmp: Qmp;
      try {
        qmp = await Promise.race([
          Qmp.connect(sockets.qmp, 20_000),
          exited.then((e) => { throw new Error(`qemu exited (${e.signal ?? e.code}): ${stderr.trim()}`); }),
        ]);
      } catch (err) {
        child.kill('SIGKILL');
        throw err;
      }
      o.log.info({ key: req.key, pid: child.pid, kvm }, 'qemu.started');
      let stopping: Promise<void> | undefined;
      return {
        pid: child.pid,
        vncSocket: sockets.vnc,
        serialSocket: sockets.serial,
        exited,
        pause: async () => { await qmp.cmd('stop'); },
        resume: async () => { await qmp.cmd('cont'); },
        stop() {
          stopping ??= (async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            await qmp.cmd('quit').catch(() => undefined);
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
            qmp.close();
          })();
          return stopping;
        },
      };
  }
}
