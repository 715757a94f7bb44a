/**
 * Which accelerator to use. /dev/kvm may exist and still not work (nested setups where the
 * vCPU never runs, or faults as soon as it leaves real mode), so "auto" actually boots the guest
 * kernel under KVM for a moment and accepts KVM only if the kernel itself prints its version on
 * the serial port; otherwise TCG. Cached per process.
 *
 * The probe QEMU runs in its own process group, and its pid is written to a marker file in the
 * backend's run dir while it runs: a tool killed during the probe leaves the marker, and the next
 * start (reapStrayProbe) ends that process group.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logger.js';

export type Accel = 'kvm' | 'tcg';
export type AccelSetting = Accel | 'auto';

/** On the probe's command line: how a marker's pid is told from a reused one. */
const PROBE_NAME = 'lab-kvm-probe';

const cache = new Map<string, Promise<Accel>>();

export function detectAccel(opts: { setting: AccelSetting; qemuBin: string; kernel: string; runDir?: string; log?: Logger; timeoutMs?: number }): Promise<Accel> {
  if (opts.setting !== 'auto') return Promise.resolve(opts.setting);
  const key = `${opts.qemuBin}\0${opts.kernel}`;
  let p = cache.get(key);
  if (!p) {
    p = probeKvm(opts.qemuBin, opts.kernel, opts.timeoutMs ?? 5000, opts.runDir).then((ok) => {
      const accel: Accel = ok ? 'kvm' : 'tcg';
      opts.log?.info({ accel }, 'qemu.accel_detected');
      return accel;
    });
    cache.set(key, p);
  }
  return p;
}

export function probeMarker(runDir: string): string {
  return path.join(runDir, 'kvm-probe.pid');
}

/** End the probe a killed tool left running (its marker names it). True when there was one. */
export function reapStrayProbe(runDir: string, log?: Logger): boolean {
  const file = probeMarker(runDir);
  let pid: number;
  try {
    pid = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return false;
  }
  fs.rmSync(file, { force: true });
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(PROBE_NAME)) return false;
  } catch {
    return false; // already gone
  }
  try { process.kill(-pid, 'SIGKILL'); } catch { /* gone meanwhile */ }
  log?.warn({ pid }, 'qemu.kvm_probe_reaped');
  return true;
}

/** True when a kernel booted with -accel kvm writes to the serial port within timeoutMs. */
export async function probeKvm(qemuBin: string, kernel: string, timeoutMs: number, runDir?: string): Promise<boolean> {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return false;
  }
  if (runDir) {
    fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
    reapStrayProbe(runDir);
  }
  return new Promise((resolve) => {
    const child = spawn(
      qemuBin,
      ['-name', PROBE_NAME, '-accel', 'kvm', '-cpu', 'host', '-m', '64', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
        '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=serial panic=-1', '-serial', 'stdio'],
      { stdio: ['ignore', 'pipe', 'ignore'], detached: true },
    );
    const marker = runDir && child.pid ? probeMarker(runDir) : undefined;
    if (marker) fs.writeFileSync(marker, String(child.pid));
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (child.pid) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      if (marker) fs.rmSync(marker, { force: true });
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    // the kernel's own first line, not any output: the real-mode setup stub ("Probing EDD") prints
    // even where the vCPU then faults in protected mode and resets, over and over
    let seen = '';
    child.stdout.on('data', (c: Buffer) => {
      seen = (seen + c.toString('latin1')).slice(-4096);
      if (/Linux version \d/.test(seen)) finish(true);
    });
    child.on('error', () => finish(false));
    child.on('exit', () => finish(false));
  });
}
