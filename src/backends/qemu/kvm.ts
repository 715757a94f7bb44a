/**
 * Which accelerator to use. /dev/kvm may exist and still not work (nested setups where the
 * vCPU never runs), so "auto" actually boots the guest kernel under KVM for a moment and
 * accepts KVM only if the kernel prints on the serial port; otherwise TCG. Cached per process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from '../../logger.js';

export type Accel = 'kvm' | 'tcg';
export type AccelSetting = Accel | 'auto';

const cache = new Map<string, Promise<Accel>>();

export function detectAccel(opts: { setting: AccelSetting; qemuBin: string; kernel: string; log?: Logger; timeoutMs?: number }): Promise<Accel> {
  if (opts.setting !== 'auto') return Promise.resolve(opts.setting);
  const key = `${opts.qemuBin}\0${opts.kernel}`;
  let p = cache.get(key);
  if (!p) {
    p = probeKvm(opts.qemuBin, opts.kernel, opts.timeoutMs ?? 5000).then((ok) => {
      const accel: Accel = ok ? 'kvm' : 'tcg';
      opts.log?.info({ accel }, 'qemu.accel_detected');
      return accel;
    });
    cache.set(key, p);
  }
  return p;
}

/** True when a kernel booted with -accel kvm writes to the serial port within timeoutMs. */
export async function probeKvm(qemuBin: string, kernel: string, timeoutMs: number): Promise<boolean> {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const child = spawn(
      qemuBin,
      ['-accel', 'kvm', '-cpu', 'host', '-m', '64', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
        '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=serial panic=-1', '-serial', 'stdio'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    child.stdout.on('data', (c: Buffer) => { if (/Linux version|\w{4,}/.test(c.toString())) finish(true); });
    child.on('error', () => finish(false));
    child.on('exit', () => finish(false));
  });
}
