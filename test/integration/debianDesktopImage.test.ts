/**
 * The debian-12-desktop guest image as built here, on the QEMU backend as students get it: the
 * image boots once (TCG, direct kernel boot, NoCloud seed) into a saved running state, which the
 * backend takes only once the Xfce desktop is drawn on the VGA screen (polled screendumps, with a
 * deadline); a lab restored from it then shows that desktop on its VNC console (the lab page's
 * Desktop tab) from the first frame once the backend reports it booted, with the lab user logged in to Xfce and a terminal, a text
 * editor and a web browser; and the lab page's Desktop tab (noVNC in Chromium) shows it for a
 * student's lab restored from the same state. Builds the image only if this host does not have it
 * yet; boots it once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import type { BackendLabSpec, LabHandle } from '../../src/backends/types.js';
import { execFileSync } from 'node:child_process';
import type { FrameLocator } from 'playwright-core';
import { launchChromium, screenshot } from '../support/chromium.js';
import { ensureCloudImage, killQemuUnder, qemuProcessesUnder } from '../support/guestImage.js';
import { launchInPlatform, startLabPageFlow } from '../support/labPageFlow.js';
import { frameColours, rfbFrame } from '../support/rfbFrame.js';
import { waitFor } from '../support/tool.js';

/** The canvas as the browser-side function uses it (the test compiles without the DOM lib). */
type Canvas = { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null };

/** What the Desktop tab's noVNC canvas shows: its size, distinct colours and the most common one. */
async function canvasColours(frame: FrameLocator): Promise<{ width: number; height: number; colours: number; dominant: number }> {
  return frame.locator('.panel:not([hidden]) .host-vnc canvas').first().evaluate((el) => {
    const c = el as unknown as Canvas;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const counts = new Map<number, number>();
    for (let i = 0; i < d.length; i += 4) {
      const k = (d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    let dominant = 0;
    let most = 0;
    for (const [k, n] of counts) if (n > most) { most = n; dominant = k; }
    return { width: c.width, height: c.height, colours: counts.size, dominant };
  });
}

const lines: string[] = [];
const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(s); } });
const events = (msg: string) => lines.map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown }).filter((e) => e.msg === msg);

const MEM = 2048;
const X = { timeoutMs: 30_000, maxOutputBytes: 64 * 1024 };

describe('debian-12-desktop guest image (Xfce, lab user logged in on the screen)', function () {
  this.timeout(45 * 60_000);
  let dataDir: string;
  let backend: QemuBackend;
  const handle: LabHandle = { instanceId: 'inst-desk', backend: 'qemu', name: 'desk-lab', generation: 1 };
  const spec: BackendLabSpec = {
    labId: 'desktop', labVersion: '1', network: { internetEgress: false },
    machines: [{ name: 'desk', kind: 'vm', image: 'debian-12-desktop', cpus: 1, memoryMiB: MEM, channels: ['vnc', 'console'], credentials: { username: 'student', password: 'Desk-pw-1' } }],
  };

  before(() => {
    const images = ensureCloudImage('debian-12-desktop');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdesk-'));
    backend = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 2, maxMemoryMiB: 2 * MEM, log, bootTimeoutMs: 1_200_000, autoBuildSavedStates: false });
  });
  after(async () => {
    await backend?.close();
    if (dataDir) {
      killQemuUnder(dataDir);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('boots once until the Xfce desktop is drawn on the VGA screen, and saves that running state', async () => {
    const started = Date.now();
    assert.equal(await backend.prepareSavedState({ image: 'debian-12-desktop', memoryMiB: MEM, cpus: 1 }, false), true, lines.filter((l) => /warn|error/.test(l)).join('\n'));
    const [drawn] = events('qemu.saved_state_desktop_drawn');
    assert.ok(drawn, 'the state was taken after the desktop was drawn');
    process.stderr.write(`      [debian-12-desktop] desktop drawn ${Math.round(Number(drawn.ms) / 1000)} s after power-on, ${String(drawn.colours)} colours; state saved after ${Math.round((Date.now() - started) / 1000)} s (TCG)\n`);
  });

  it('a lab restored from it shows the desktop on its VNC console from the first frame (not a text console or one colour)', async () => {
    await backend.provision(spec, handle, () => undefined);
    assert.equal(events('qemu.machine_restored').length, 1, 'the machine came from the saved state');
    // the backend reports a desktop machine booted once its screen shows the desktop: a restored
    // one brings it drawn (a cold boot would wait tens of seconds for Xfce to paint)
    const [drawn] = events('qemu.desktop_drawn');
    assert.ok(drawn && Number(drawn.ms) < 10_000, `drawn at once after the restore: ${JSON.stringify(drawn ?? events('qemu.desktop_not_drawn'))}`);
    const vnc = await backend.openChannel(handle, 'desk', 'vnc');
    const frame = await rfbFrame(vnc).finally(() => vnc.destroy());
    const c = frameColours(frame);
    const hex = `#${c.dominant.toString(16).padStart(6, '0')}`;
    assert.ok(frame.width >= 1024 && frame.height >= 600, `a graphical mode, got ${frame.width}x${frame.height}`);
    // the SeaBIOS/boot text console has 2-3 colours on black, Xorg's empty screen is black with a
    // mouse pointer (some 80 colours)
    assert.ok(c.colours >= 256, `a drawn desktop: ${c.colours} colours (most common ${hex})`);
    assert.notEqual(c.dominant, 0, `the background is the desktop's, not black (${Math.round(c.dominantShare * 100)} % ${hex})`);
  });

  it('logs the lab user in on the screen: an Xfce session with its panel, on display :0', async () => {
    const r = await backend.exec(handle, 'desk', [
      'pgrep -u student -l -x "xfce4-session|xfce4-panel|xfwm4|xfdesktop" | sort -k2',
      'cat /etc/lightdm/lightdm.conf.d/50-lab-autologin.conf',
      'tr "\\0" "\\n" < /proc/$(pgrep -u student -x xfce4-session)/environ | grep ^DISPLAY=',
    ].join('; '), X);
    for (const p of ['xfce4-session', 'xfce4-panel', 'xfwm4', 'xfdesktop']) assert.match(r.stdout, new RegExp(`\\b${p}\\b`), `${p} runs as the lab user`);
    assert.match(r.stdout, /autologin-user=student/);
    assert.match(r.stdout, /^DISPLAY=:0$/m);
  });

  it('has a terminal, a text editor and a web browser in the Applications menu', async () => {
    const out = (await backend.exec(handle, 'desk', 'for c in xfce4-terminal mousepad firefox-esr xrandr; do command -v $c >/dev/null && echo ok-$c; done; ls /usr/share/applications', X)).stdout;
    for (const c of ['xfce4-terminal', 'mousepad', 'firefox-esr', 'xrandr']) assert.match(out, new RegExp(`ok-${c}\\b`));
    for (const d of ['xfce4-terminal.desktop', 'org.xfce.mousepad.desktop', 'firefox-esr.desktop']) assert.match(out, new RegExp(d.replace(/\./g, '\\.')));
    await backend.destroy(handle);
    assert.deepEqual(qemuProcessesUnder(dataDir), []);
  });

  it("the lab page's Desktop tab (noVNC in headless Chromium) shows that desktop for a student's lab", async () => {
    execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
    const flow = await startLabPageFlow(backend, {}, { templatesDir: path.resolve('test/fixtures/templates-desktop'), labId: 'desktop-screen', title: 'Desktop screen' });
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
      const frame = await launchInPlatform(page, flow, 'student');
      await frame.locator('.tab .phase-running').waitFor({ timeout: 900_000 });
      await frame.locator('.panel:not([hidden]) .link-connected').waitFor({ timeout: 60_000 });
      let px = await canvasColours(frame);
      // the first frame reaches the canvas shortly after the connection
      await waitFor(async () => { px = await canvasColours(frame); return px.colours >= 256; }, 60_000, 'a drawn desktop in the canvas').catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(px)}`);
      });
      await screenshot(page, 'desktop-image-desktop-tab');
      assert.ok(px.width >= 1024 && px.height >= 600, `the guest's graphical mode: ${px.width}x${px.height}`);
      assert.notEqual(px.dominant, 0, `the desktop's background, not black: ${JSON.stringify(px)}`);
      process.stderr.write(`      [debian-12-desktop] lab page: ${events('qemu.machine_restored').length === 2 ? 'restored from the saved state' : 'cold boot'}, canvas ${px.width}x${px.height}, ${px.colours} colours\n`);
    } finally {
      await browser.close();
      await flow.close();
    }
  });
});
