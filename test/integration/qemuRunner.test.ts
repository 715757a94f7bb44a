import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { QemuRunner, type RunningGuest } from '../../src/backends/qemu/QemuRunner.js';
import { detectAccel } from '../../src/backends/qemu/kvm.js';
import { kernelOf } from '../../src/backends/qemu/QemuBackend.js';
import { ensureGuestImage, killQemuUnder, qemuProcessesUnder } from '../support/guestImage.js';
import { rfbScreenWithContent } from '../support/rfb.js';
import { ConsoleSession } from '../support/console.js';

describe('QemuRunner: one lab-tiny guest under QEMU', function () {
  this.timeout(90_000);
  let dir: string;
  let images: string;
  let guest: RunningGuest | undefined;

  before(() => {
    images = ensureGuestImage();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qr-'));
  });
  after(async () => {
    await guest?.kill();
    killQemuUnder(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('boots to a login prompt, serves RFB on its VNC socket and a shell on its serial console, and stops leaving no process', async () => {
    const img = path.join(images, 'lab-tiny');
    const kernel = kernelOf(img);
    const accel = await detectAccel({ setting: 'auto', qemuBin: 'qemu-system-x86_64', kernel });
    const cfg = path.join(dir, 'config');
    fs.writeFileSync(cfg, 'hostname=alpha\nip=10.10.0.11/24\nuser=student\npass=pa55-word\nhost=alpha 10.10.0.11\n', { mode: 0o600 });
    const t0 = Date.now();
    guest = await QemuRunner.start({
      runDir: path.join(dir, 'g'), name: 'alpha', accel, kernel, initrd: path.join(img, 'initramfs.gz'),
      memoryMiB: 128, cpus: 1, fwCfg: { 'opt/lab/config': cfg },
    });
    assert.ok(guest.pid > 0);
    const status = await guest.qmp.execute<{ status: string }>('query-status');
    assert.equal(status.status, 'running');
    await guest.waitForConsole(/lab-guest: ready alpha/, 60_000);
    const bootMs = Date.now() - t0;
    console.log(`      boot to ready under ${accel}: ${bootMs} ms`);

    // tty1's login is drawn by a getty init starts after the boot script that printed "ready"
    const vncSocket = guest.vncSocket;
    const rfb = await rfbScreenWithContent(() => net.connect(vncSocket), 100);
    assert.match(rfb.serverVersion, /^RFB 003\.00\d$/);
    assert.ok(rfb.securityTypes.includes(1));
    assert.ok(rfb.width >= 640 && rfb.height >= 400, `${rfb.width}x${rfb.height}`);
    assert.ok(rfb.nonZeroPixels > 100, `non-black pixels: ${rfb.nonZeroPixels}`);

    const con = new ConsoleSession(net.connect(guest.consoleSocket));
    await con.login('student', 'pa55-word');
    assert.equal((await con.run('echo hello-$((6*7)) && hostname')).trim(), 'hello-42\nalpha');
    assert.equal((await con.run('grep alpha /etc/hosts')).trim(), '10.10.0.11 alpha');
    assert.equal((await con.run('whoami; id -u')).trim(), 'student\n1000');
    assert.match(await con.run('ping -c 1 -W 2 127.0.0.1'), /1 packets received/);
    con.stream.destroy();

    await guest.stop();
    assert.deepEqual(qemuProcessesUnder(dir), []);
    guest = undefined;
  });
});
