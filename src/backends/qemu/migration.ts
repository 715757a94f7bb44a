/**
 * Saving a stopped guest's memory and device state to a file, and starting a guest from it.
 * QEMU 7.2 has no file: migration target, and the seccomp sandbox forbids exec: ones, so the
 * stream goes through a unix socket the tool serves (save) or connects to (restore).
 */
import fs from 'node:fs';
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import { BackendFailure } from '../../errors.js';
import type { Qmp } from './Qmp.js';

interface MigrateInfo { status?: string; 'error-desc'?: string }

/** Stop the guest and write its state to `file` (through a temp file: a crash never leaves half a state). */
export async function saveState(qmp: Qmp, sockPath: string, file: string, timeoutMs = 300_000): Promise<void> {
  fs.rmSync(sockPath, { force: true });
  const tmp = `${file}.tmp`;
  const received = new Promise<void>((resolve, reject) => {
    const server = net.createServer((sock) => {
      server.close();
      pipeline(sock, fs.createWriteStream(tmp, { mode: 0o600 })).then(resolve, reject);
    });
    server.once('error', reject);
    server.listen(sockPath);
  });
  await new Promise((r) => setTimeout(r, 10));
  await qmp.execute('stop');
  await qmp.execute('migrate', { uri: `unix:${sockPath}` });
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = await qmp.execute<MigrateInfo>('query-migrate');
    if (info.status === 'completed') break;
    if (info.status === 'failed' || info.status === 'cancelled') throw new BackendFailure(`saving the guest state failed: ${info['error-desc'] ?? info.status}`);
    if (Date.now() > end) throw new BackendFailure(`saving the guest state took more than ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await received;
  fs.rmSync(sockPath, { force: true });
  fs.renameSync(tmp, file);
}

/**
 * Feed `file` to a QEMU started with `-incoming unix:<sockPath>` and wait until it has loaded it
 * (the guest is then paused). Throws BackendFailure when QEMU refuses the state (it exits).
 */
export async function loadState(qmp: Qmp, sockPath: string, file: string, exited: Promise<void>, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let sock: net.Socket | undefined;
  while (!sock) {
    try {
      sock = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(sockPath);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > end) throw new BackendFailure(`QEMU never listened for the saved state: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  let gone = false;
  void exited.then(() => { gone = true; });
  // QEMU closes the socket when it has read the state (or gives up on it): neither is an error here
  await pipeline(fs.createReadStream(file), sock).catch(() => undefined);
  for (;;) {
    if (gone) throw new BackendFailure('QEMU refused the saved state and exited');
    let status: string | undefined;
    try {
      status = (await qmp.execute<{ status: string }>('query-status', undefined, 5000)).status;
    } catch (err) {
      throw new BackendFailure(`QEMU stopped answering while loading the saved state: ${(err as Error).message}`);
    }
    if (status !== 'inmigrate') {
      if (status === 'paused' || status === 'running') return;
      throw new BackendFailure(`QEMU is ${status} after loading the saved state`);
    }
    if (Date.now() > end) throw new BackendFailure(`loading the saved state took more than ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
