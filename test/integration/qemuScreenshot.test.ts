/**
 * QemuBackend.screenshot on a real lab-tiny guest: a QMP screendump of its VGA screen, scaled to a
 * thumbnail PNG, taken while a VNC viewer is connected (the screendump is no VNC session: the
 * viewer stays), and the console history read from the guest's console log without a console.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import type { BackendLabSpec, LabHandle } from '../../src/backends/types.js';
import { decodePng, THUMBNAIL_WIDTH } from '../../src/backends/thumbnail.js';
import { NotFound } from '../../src/errors.js';
import { lastLines } from '../../src/proxy/consoleText.js';
import { ensureGuestImage, killQemuUnder } from '../support/guestImage.js';
import { rfbHandshake } from '../support/rfb.js';

const log = pino({ level: 'silent' });
const spec: BackendLabSpec = {
  labId: 'screens', labVersion: '1', network: { internetEgress: false },
  machines: [
    { name: 'desk', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['vnc', 'console'], credentials: { username: 'student', password: 'Secr3t-pw' } },
    { name: 'shell', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console'], credentials: { username: 'student', password: 'Secr3t-pw' } },
  ],
};
const handle: LabHandle = { instanceId: 'inst-screens', backend: 'qemu', name: 'screens', generation: 1 };

describe('QemuBackend: screen thumbnails and console history of a real lab-tiny guest', function () {
  this.timeout(180_000);
  let dataDir: string;
  let backend: QemuBackend;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-'));
    backend = new QemuBackend({ dataDir, imageDir: ensureGuestImage(), qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 2, maxMemoryMiB: 512, log });
    await backend.provision(spec, handle, () => undefined);
  });
  after(async () => {
    await backend?.close();
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('takes a PNG thumbnail of the VGA screen while a VNC viewer stays connected', async () => {
    const viewer = await backend.openChannel(handle, 'desk', 'vnc');
    await rfbHandshake(viewer as net.Socket);
    const png = await backend.screenshot(handle, 'desk');
    const img = decodePng(png);
    assert.equal(img.width, THUMBNAIL_WIDTH);
    assert.ok(img.height >= 160 && img.height <= 320, `height ${img.height}`);
    const colours = new Set<number>();
    for (let i = 0; i < img.pixels.length; i += 3) colours.add((img.pixels[i]! << 16) | (img.pixels[i + 1]! << 8) | img.pixels[i + 2]!);
    // lab-tiny's VGA text console: light text on black, blended by the scaling
    assert.ok(colours.size > 2, `${colours.size} colours: the screen shows text`);
    if (process.env.THUMBNAIL_OUT) fs.writeFileSync(process.env.THUMBNAIL_OUT, png);
    assert.equal(viewer.destroyed, false, 'the VNC viewer is still connected');
    viewer.destroy();
    assert.equal(fs.readdirSync(path.join(dataDir, 'qemu', 'screens', 'm0')).filter((f) => f.endsWith('.ppm')).length, 0, 'no screendump left behind');
  });

  it('refuses a machine without a screen; reads the console history without opening the console', async () => {
    await assert.rejects(backend.screenshot(handle, 'shell'), NotFound);
    const history = await backend.consoleHistory(handle, 'shell', 4096);
    assert.ok(history && history.length > 0 && history.length <= 4096);
    assert.ok(lastLines(history, 6).some((l) => /login:/.test(l)), lastLines(history, 6).join('\n'));
  });
});
