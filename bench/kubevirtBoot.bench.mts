/**
 * Boot of a debian-12 lab on the KubeVirt backend, through the real test API server and the
 * KubeVirt stand-in (real QEMU, the image's own kernel and cloud-init, KubeVirt's NoCloud seed):
 * click to ready (the golden-disk check, the clone, the VMI, cloud-init until the check agent
 * answers the readiness probe), then stop and start of the same lab (its own disk kept; cloud-init
 * does not run again). KubeVirt has no memory snapshots, so every start is a boot. The floor is the
 * bare boot of the same image with the same kind of seed under QEMU, to its serial "ready" line.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sharedKubeVirt, stopSharedKubeVirt } from '../test/support/kubevirt-standin/launcher.js';
import { stopSharedControlPlane } from '../test/support/k8s/controlPlane.js';
import { installGoldenImages, newHandle, toolBackend } from '../test/support/kubevirtTool.js';
import { defaultToolsDir } from '../src/config.js';
import { QemuRunner } from '../src/backends/qemu/QemuRunner.js';
import { detectAccel } from '../src/backends/qemu/kvm.js';
import { writeSeedDisk } from '../src/backends/qemu/seedDisk.js';
import { noCloudSeed, READY_LINE } from '../src/backends/guest/cloudInit.js';
import type { BackendLabSpec } from '../src/backends/types.js';
import { createLogger } from '../src/logger.js';
import type { BenchRow } from './lib.mjs';

const exec = promisify(execFile);
const log = createLogger({ level: 'fatal', format: 'json' });
const IMAGE = 'registry.invalid/labs/debian-12:bench';

async function bareBoot(): Promise<number> {
  const dir = fs.realpathSync(path.join(defaultToolsDir(), 'images', 'debian-12'));
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'image.json'), 'utf8')) as { disk: string; kernel: string; vmlinux?: string; initrd: string; cmdline: string };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kvb-'));
  try {
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.join(dir, m.disk), path.join(work, 'root.qcow2')]);
    const seed = noCloudSeed({ instanceId: 'bench', hostname: 'box', user: { name: 'student', password: 'pw' }, agent: { token: 't', transport: 'tcp' } });
    await writeSeedDisk(seed, path.join(work, 'seed.iso'));
    const kernel = path.join(dir, m.vmlinux ?? m.kernel);
    const accel = await detectAccel({ setting: 'auto', qemuBin: 'qemu-system-x86_64', kernel, log });
    const t0 = performance.now();
    const g = await QemuRunner.start({
      runDir: work, name: 'bench', accel, kernel, initrd: path.join(dir, m.initrd), append: m.cmdline, memoryMiB: 1024, cpus: 1,
      disk: path.join(work, 'root.qcow2'), drives: [{ file: path.join(work, 'seed.iso'), format: 'raw', readonly: true }],
      nics: [{ mac: '52:54:00:12:34:56', netdev: 'user,restrict=on' }], vnc: false, agent: false, log,
    });
    try {
      for (;;) {
        if (fs.existsSync(g.consoleLog) && fs.readFileSync(g.consoleLog, 'utf8').includes(READY_LINE)) return performance.now() - t0;
        if (performance.now() - t0 > 600_000) throw new Error('bare boot: no ready line in 600 s');
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await g.stop(5000).catch(() => g.kill());
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchRow[]> {
  const { cp, standIn } = await sharedKubeVirt();
  const { backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 900_000 });
  const h = newHandle();
  try {
    await installGoldenImages(cp, [IMAGE]);
    const spec: BackendLabSpec = {
      labId: 'bench-boot', labVersion: '1', network: { internetEgress: false },
      machines: [{ name: 'box', kind: 'vm', image: IMAGE, cpus: 1, memoryMiB: 1024, diskGiB: 5, channels: ['console'], credentials: { username: 'student', password: 'pw' } }],
    };
    const phases: Record<string, number> = {};
    const t0 = performance.now();
    await backend.provision(spec, h, (p) => { phases[p.phase] ??= performance.now() - t0; });
    const firstMs = performance.now() - t0;
    await backend.stop(h);
    const t1 = performance.now();
    await backend.start(h);
    const againMs = performance.now() - t1;
    const floorMs = await bareBoot();
    const clonedMs = phases['machines-starting'] ?? NaN;
    return [
      { bench: 'kubevirt boot (stand-in)', metric: 'debian-12, click to ready (clone + boot + cloud-init + agent)', value: firstMs / 1000, floor: floorMs / 1000, unit: 's', goal: 'measured (no memory snapshots on KubeVirt)', meets: undefined, note: `disks cloned after ${(clonedMs / 1000).toFixed(1)} s` },
      { bench: 'kubevirt boot (stand-in)', metric: 'debian-12, start after stop (own disk kept, cloud-init done)', value: againMs / 1000, floor: floorMs / 1000, unit: 's', goal: 'measured', meets: undefined },
    ];
  } finally {
    await backend.destroy(h).catch(() => undefined);
    await backend.close();
    await stopSharedKubeVirt();
    await stopSharedControlPlane();
  }
}
