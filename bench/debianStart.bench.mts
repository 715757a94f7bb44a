/**
 * Click-to-console for a debian-12 lab on the QEMU backend under TCG, in one run: a cold boot
 * (NoCloud seed, cloud-init) beside a start from the image's saved running state (the same image
 * and machine size). Timed from provision() to the serial console answering Enter with the lab's
 * login prompt (provision resolves when the guest said it is ready and its check agent answered).
 * With debian-12-desktop built: click-to-desktop, provision() to a VNC frame of the desktop.
 * Goals: restored console ≤ 3 s, restored desktop ≤ 5 s.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QemuBackend } from '../src/backends/qemu/QemuBackend.js';
import type { BackendLabSpec, LabHandle } from '../src/backends/types.js';
import { createLogger } from '../src/logger.js';
import { ConsoleSession } from '../test/support/console.js';
import { ensureCloudImage, killQemuUnder } from '../test/support/guestImage.js';
import { rfbHandshake } from '../test/support/rfb.js';
import type { BenchRow } from './lib.mjs';

const MEM = Number(process.env.DEBIAN_BENCH_MEMORY_MIB ?? 1024);
const log = createLogger({ level: 'fatal', format: 'json' });

function spec(name: string, image: string): BackendLabSpec {
  return {
    labId: name, labVersion: '1', network: { internetEgress: false },
    machines: [{ name: 'box', kind: 'vm', image, cpus: 1, memoryMiB: MEM, channels: ['console', 'vnc'], credentials: { username: 'student', password: 'Bench-pw-1' } }],
  };
}
const handle = (name: string): LabHandle => ({ instanceId: `bench-${name}`, backend: 'qemu', name, generation: 1 });

/** Seconds from provision() to the login prompt on the serial console. */
async function toConsole(b: QemuBackend, name: string, image: string): Promise<number> {
  const t0 = performance.now();
  await b.provision(spec(name, image), handle(name), () => undefined);
  const con = new ConsoleSession(await b.openChannel(handle(name), 'box', 'console'));
  con.send('\r');
  await con.expect(/box login: /, 60_000);
  const s = (performance.now() - t0) / 1000;
  con.stream.destroy();
  return s;
}

/** Seconds from provision() to a VNC frame of a graphical screen (not the BIOS's text mode, mostly not black). */
async function toDesktop(b: QemuBackend, name: string, image: string): Promise<number> {
  const t0 = performance.now();
  await b.provision(spec(name, image), handle(name), () => undefined);
  for (;;) {
    const vnc = await b.openChannel(handle(name), 'box', 'vnc');
    const f = await rfbHandshake(vnc);
    vnc.destroy();
    if (f.width >= 800 && f.nonZeroPixels > f.totalPixels / 4) return (performance.now() - t0) / 1000;
    if (performance.now() - t0 > 600_000) throw new Error('no desktop on the screen within 600 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function run(): Promise<BenchRow[]> {
  const images = ensureCloudImage('debian-12');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-deb-'));
  const opts = { dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'tcg' as const, maxVms: 4, maxMemoryMiB: 4 * MEM, log, bootTimeoutMs: 900_000, autoBuildSavedStates: false };
  const rows: BenchRow[] = [];
  try {
    const cold = new QemuBackend({ ...opts, savedStates: false });
    const coldS = await toConsole(cold, 'cold', 'debian-12');
    process.stderr.write(`    debian-12 cold click-to-console: ${coldS.toFixed(1)} s\n`);
    await cold.destroy(handle('cold'));
    const warm = new QemuBackend(opts);
    const b0 = performance.now();
    if (!(await warm.prepareSavedState({ image: 'debian-12', memoryMiB: MEM, cpus: 1 }, false))) throw new Error('the saved state was not built');
    const buildS = (performance.now() - b0) / 1000;
    process.stderr.write(`    debian-12 saved state built in ${buildS.toFixed(1)} s\n`);
    const warmS = await toConsole(warm, 'warm', 'debian-12');
    process.stderr.write(`    debian-12 restored click-to-console: ${warmS.toFixed(2)} s\n`);
    await warm.destroy(handle('warm'));
    const stateDir = path.join(dataDir, 'qemu-states');
    const stateMiB = fs.readdirSync(stateDir).reduce((n, d) => n + (fs.existsSync(path.join(stateDir, d, 'state.bin')) ? fs.statSync(path.join(stateDir, d, 'state.bin')).size : 0), 0) / 2 ** 20;
    rows.push(
      { bench: 'debian-12 start', metric: 'click-to-console, cold boot (TCG)', value: coldS, unit: 's', goal: 'floor of the row below', meets: undefined },
      { bench: 'debian-12 start', metric: 'click-to-console, saved state (TCG)', value: warmS, floor: coldS, unit: 's', goal: '≤ 3 s', meets: warmS <= 3 },
      { bench: 'debian-12 start', metric: 'saved state build (once per image and size)', value: buildS, unit: 's', goal: 'info', meets: undefined, note: `${stateMiB.toFixed(0)} MiB memory state for ${MEM} MiB RAM` },
    );
    let desktopImages: string | undefined;
    try { desktopImages = ensureCloudImage('debian-12-desktop'); } catch { desktopImages = undefined; }
    if (desktopImages) {
      const d = new QemuBackend({ ...opts, imageDir: desktopImages });
      await d.prepareSavedState({ image: 'debian-12-desktop', memoryMiB: MEM, cpus: 1 }, false);
      const desk = await toDesktop(d, 'desk', 'debian-12-desktop');
      process.stderr.write(`    debian-12-desktop restored click-to-desktop: ${desk.toFixed(2)} s\n`);
      await d.destroy(handle('desk'));
      rows.push({ bench: 'debian-12-desktop start', metric: 'click-to-desktop, saved state (TCG)', value: desk, unit: 's', goal: '≤ 5 s', meets: desk <= 5 });
    }
  } finally {
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}
