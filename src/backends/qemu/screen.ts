/**
 * What a guest's VGA screen shows, read through QMP `screendump` (QEMU writes a PPM file). A
 * desktop guest's saved state is taken only once its desktop is drawn: Xorg starts on a black
 * screen and Xfce paints it tens of seconds later under TCG, so a state saved earlier gives every
 * lab restored from it that black screen (or the boot console's leftovers) in the Desktop tab.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { BackendFailure } from '../../errors.js';
import type { Qmp } from './Qmp.js';

export interface ScreenSample {
  width: number;
  height: number;
  /** Distinct colours over every pixel. */
  colours: number;
  /** Share of the pixels that are black (0 to 1). */
  black: number;
  /** sha256 of the pixels: two equal samples mean nothing was drawn in between. */
  digest: string;
}

/** Reads a binary PPM (P6, 8 bits per channel) as QEMU's screendump writes it. */
export function readPpm(file: string): ScreenSample {
  const buf = fs.readFileSync(file);
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(buf.subarray(0, 64).toString('latin1'));
  if (!header) throw new BackendFailure(`${file} is not a P6 PPM with 8-bit channels`);
  const [width, height] = [Number(header[1]), Number(header[2])];
  const px = buf.subarray(header[0].length, header[0].length + width * height * 3);
  const seen = new Set<number>();
  let black = 0;
  for (let i = 0; i + 2 < px.length; i += 3) {
    const c = (px[i]! << 16) | (px[i + 1]! << 8) | px[i + 2]!;
    seen.add(c);
    if (c === 0) black++;
  }
  return { width, height, colours: seen.size, black: black / Math.max(1, width * height), digest: crypto.createHash('sha256').update(px).digest('hex') };
}

export async function screenSample(qmp: Qmp, file: string): Promise<ScreenSample> {
  fs.rmSync(file, { force: true });
  await qmp.execute('screendump', { filename: file }, 30_000);
  try {
    return readPpm(file);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/**
 * A text console has two or three colours on black; Xorg's empty screen is black with the mouse
 * pointer drawn on it (some 80 colours); an Xfce desktop has thousands over its own background.
 */
export function looksDrawn(s: ScreenSample): boolean {
  return s.colours >= 256 && s.black < 0.5;
}

/**
 * Waits until the screen shows a drawn desktop (looksDrawn); with `settled` (the default), one that
 * stays the same across two samples `intervalMs` apart (painting finished). Throws BackendFailure
 * at the deadline, saying what the screen showed last.
 */
export async function waitForDrawnScreen(qmp: Qmp, file: string, timeoutMs: number, o: { settled?: boolean; intervalMs?: number } = {}): Promise<ScreenSample> {
  const end = Date.now() + timeoutMs;
  const intervalMs = o.intervalMs ?? 2000;
  let prev: ScreenSample | undefined;
  for (;;) {
    const s = await screenSample(qmp, file);
    if (looksDrawn(s) && (o.settled === false || prev?.digest === s.digest)) return s;
    prev = s;
    if (Date.now() + intervalMs > end) {
      throw new BackendFailure(`the desktop was not drawn within ${Math.round(timeoutMs / 1000)} s: the screen shows ${s.colours} colours at ${s.width}x${s.height}, ${Math.round(s.black * 100)} % black`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
