/**
 * Real QEMU guests for the stand-in, through the project's QemuRunner: the guest image (lab-tiny:
 * kernel, initramfs, /home base disk, built by scripts/build-guest-image.sh into
 * $LAB_TOOLS_DIR/images) with a copy-on-write overlay per VMI, its VNC display and serial console
 * on unix sockets under the stand-in's work dir. KVM when it really works, TCG otherwise.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { defaultToolsDir } from '../../../src/config.js';
import { QemuRunner } from '../../../src/backends/qemu/QemuRunner.js';
import { detectAccel } from '../../../src/backends/qemu/kvm.js';
import type { Guest, GuestRequest, GuestRuntime } from './guests.js';

const run = promisify(execFile);
const QEMU = 'qemu-system-x86_64';

export async function createGuestRuntime(o: { workDir: string; log: Logger; imageDir?: string }): Promise<GuestRuntime> {
  const images = o.imageDir ?? path.join(defaultToolsDir(), 'images');
  let seq = 0;
  return {
    async boot(req: GuestRequest): Promise<Guest> {
      // A stand-in cannot pull container images: "registry/x/lab-tiny:tag" → images/lab-tiny, and
      // an image we do not have boots lab-tiny (said in the log).
      const wanted = (req.image.split('/').pop() ?? '').replace(/[:@].*$/, '').replace(/[^a-z0-9._-]/gi, '_');
      let image = path.join(images, wanted || 'lab-tiny');
      if (!fs.existsSync(path.join(image, 'vmlinuz'))) {
        o.log.info({ key: req.key, image: req.image }, 'qemu.image.unknown; booting lab-tiny');
        image = path.join(images, 'lab-tiny');
      }
      const kernel = path.join(image, 'vmlinuz');
      if (!fs.existsSync(kernel)) throw new Error(`guest image lab-tiny not found under ${images} (scripts/setup-test.sh builds it)`);
      const accel = await detectAccel({ setting: 'auto', qemuBin: QEMU, kernel, log: o.log });
      // Short directory names: unix socket paths are limited to 107 bytes.
      const runDir = path.join(o.workDir, `g${++seq}`);
      fs.mkdirSync(runDir, { recursive: true });
      const overlay = path.join(runDir, 'home.qcow2');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.join(image, 'disk.qcow2'), overlay]);
      const config = path.join(runDir, 'config');
      const line = (v: string): string => v.replace(/[\r\n]/g, '');
      fs.writeFileSync(config, `hostname=${line(req.hostname).slice(0, 63)}\nuser=${line(req.user ?? 'student')}\npass=${line(req.password ?? 'student')}\n`, { mode: 0o600 });
      const g = await QemuRunner.start({
        runDir, name: req.key.replace('/', '_'), qemuBin: QEMU, accel,
        kernel, initrd: path.join(image, 'initramfs.gz'),
        memoryMiB: req.memoryMiB, cpus: req.cpus, disk: overlay,
        nics: [{ mac: '52:54:00:12:34:56', netdev: 'user,restrict=on' }],
        fwCfg: { 'opt/lab/config': config },
        vnc: req.graphics, agent: false, log: o.log,
      });
      o.log.info({ key: req.key, pid: g.pid, accel }, 'qemu.started');
      const exited = g.exited.then(() => {
        if (process.env.LAB_K8S_KEEP !== '1') fs.rmSync(runDir, { recursive: true, force: true });
        return { code: 0 as number | null, signal: null as string | null };
      });
      let stopping: Promise<void> | undefined;
      return {
        pid: g.pid,
        vncSocket: g.vncSocket,
        serialSocket: g.consoleSocket,
        exited,
        pause: async () => { await g.qmp.execute('stop'); },
        resume: async () => { await g.qmp.execute('cont'); },
        kill: () => g.kill(),
        stop() {
          stopping ??= (async () => {
            await g.stop(5000);
            await exited;
          })();
          return stopping;
        },
      };
    },
  };
}
