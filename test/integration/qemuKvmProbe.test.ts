import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import { alive } from '../../src/backends/qemu/QemuRunner.js';
import { probeMarker } from '../../src/backends/qemu/kvm.js';
import { ensureGuestImage, killQemuUnder } from '../support/guestImage.js';

describe('QemuBackend: the KVM probe of a killed tool', function () {
  this.timeout(120_000);
  let dataDir: string;
  let probePid: number | undefined;
  after(() => {
    if (probePid) try { process.kill(-probePid, 'SIGKILL'); } catch { /* gone */ }
    if (dataDir) {
      killQemuUnder(dataDir);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a tool SIGKILLed during the probe leaves its marker, and the next start ends that QEMU', async function () {
    if (!fs.existsSync('/dev/kvm')) this.skip(); // no probe without /dev/kvm
    const images = ensureGuestImage();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qk-'));
    const marker = probeMarker(path.join(dataDir, 'qemu'));
    // The failure seen in the field: a nested KVM whose vCPU never runs, so the probe waits. Where KVM
    // works or fails at once, the same real QEMU stands in for it: TCG with its vCPU stopped (-S).
    const bin = path.join(dataDir, 'bin');
    fs.mkdirSync(bin);
    const real = execFileSync('bash', ['-c', 'command -v qemu-system-x86_64']).toString().trim();
    const hung = path.join(bin, 'qemu-system-x86_64');
    fs.writeFileSync(hung, `#!/bin/bash\na=("\${@/#kvm/tcg}"); exec ${real} "\${a[@]/#host/max}" -S\n`, { mode: 0o755 });
    fs.symlinkSync(path.join(path.dirname(real), 'qemu-img'), path.join(bin, 'qemu-img'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/qemuProvisionChild.ts', dataDir, images, 'probe-lab', 'one', hung], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    const end = Date.now() + 60_000;
    while (!fs.existsSync(marker) && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    assert.ok(fs.existsSync(marker), 'the probe wrote its marker');
    probePid = Number(fs.readFileSync(marker, 'utf8'));
    child.kill('SIGKILL');
    await exited;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(alive(probePid), 'the probe QEMU outlived its tool');
    new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 1, maxMemoryMiB: 256, log: pino({ level: 'silent' }) });
    const gone = Date.now() + 5000;
    while (alive(probePid) && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(probePid), false, 'the next start ended the stray probe QEMU');
    assert.equal(fs.existsSync(marker), false);
  });
});
