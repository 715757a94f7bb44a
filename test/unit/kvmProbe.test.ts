/**
 * The KVM probe accepts KVM only when the guest kernel itself prints its version: the real-mode
 * setup stub's "Probing EDD" line comes out even where the vCPU faults right after it and resets
 * (seen on a nested host whose KVM resets every guest). A shell script stands in for QEMU and
 * prints what each kind of host printed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeKvm } from '../../src/backends/qemu/kvm.js';

function fakeQemu(dir: string, name: string, script: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return file;
}

describe('KVM probe', () => {
  let dir: string;
  before(function () {
    try {
      fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    } catch {
      this.skip(); // without /dev/kvm the probe answers TCG before starting anything
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmprobe-'));
  });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it('refuses KVM when only the setup stub prints and the guest keeps resetting', async () => {
    const qemu = fakeQemu(dir, 'resetting', 'while :; do echo "Probing EDD (edd=off to disable)... ok"; sleep 0.2; done');
    assert.equal(await probeKvm(qemu, '/nonexistent/vmlinuz', 1500, path.join(dir, 'run1')), false);
  });

  it('accepts KVM once the kernel prints its version, even split across reads', async () => {
    const qemu = fakeQemu(dir, 'booting', 'echo "Probing EDD (edd=off to disable)... ok"; printf "[    0.000000] Linux ver"; sleep 0.2; echo "sion 6.1.0-57-amd64 (debian-kernel)"; sleep 30');
    assert.equal(await probeKvm(qemu, '/nonexistent/vmlinuz', 5000, path.join(dir, 'run2')), true);
  });

  it('refuses KVM when QEMU exits before the kernel speaks', async () => {
    const qemu = fakeQemu(dir, 'failing', 'echo "qemu-system-x86_64: failed to initialize kvm: Permission denied" >&2; exit 1');
    assert.equal(await probeKvm(qemu, '/nonexistent/vmlinuz', 5000, path.join(dir, 'run3')), false);
  });
});
