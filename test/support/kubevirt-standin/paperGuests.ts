/**
 * Guests that are not booted, for tests about the tool's API traffic and concurrency rather than
 * about guests (30 labs at once on a 2-core machine): a VMI of a namespace marked "without
 * guests" gets a guest with no QEMU process. Everything around it stays real — the API server,
 * the stand-in's CDI clone, the VMI created by the VM controller, its phases, address and
 * readiness probe — only the guest behind it is paper: its "agent" port answers the probe with an
 * error line (as the real check agent answers an empty line), it has no display, its serial
 * console is a loopback line (below), and pause/resume/stop act on nothing.
 *
 * The loopback console greets each connection with `paper console <key>, connection <n>` (n counts
 * the connections made to that guest's serial line, so a test sees how many upstreams there were),
 * echoes every byte typed, and answers Enter with a `$ ` prompt on a new line.
 *
 * A namespace is marked by a file named after it under `<work dir>/without-guests/`
 * (launcher.ts: StandIn.withoutGuests), before the tool creates it.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Guest, GuestRequest, GuestRuntime } from './guests.js';

export const WITHOUT_GUESTS_DIR = 'without-guests';

/** The directory of namespace markers under a stand-in work dir. */
export function withoutGuestsDir(workDir: string): string {
  return path.join(workDir, WITHOUT_GUESTS_DIR);
}

/** Boots real guests except in namespaces marked under the work dir, which get paper guests. */
export function withPaperGuests(real: GuestRuntime, workDir: string, log: Logger): GuestRuntime {
  const dir = withoutGuestsDir(workDir);
  let serials = 0;
  return {
    boot(req: GuestRequest): Promise<Guest> {
      const ns = req.key.split('/')[0] ?? '';
      if (!fs.existsSync(path.join(dir, ns))) return real.boot(req);
      log.info({ key: req.key }, 'guest.paper');
      return paperGuest(req.key, path.join(dir, `serial-${++serials}.sock`));
    },
  };
}

/** The loopback serial line: a greeting naming the connection, every byte echoed, a prompt after Enter. */
function serialLine(key: string, sockets: Set<net.Socket>): net.Server {
  let connections = 0;
  return net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.write(`paper console ${key}, connection ${++connections}\r\n$ `);
    sock.on('data', (d: Buffer) => {
      sock.write(d);
      if (d.includes(13)) sock.write('\n$ ');
    });
  });
}

async function paperGuest(key: string, serialSocket: string): Promise<Guest> {
  let exit!: (v: { code: number | null; signal: string | null }) => void;
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => (exit = r));
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const forwards = new Map<number, Promise<number>>();
  const end = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    fs.rmSync(serialSocket, { force: true });
    exit({ code: 0, signal: null });
    await exited;
  };
  const serial = serialLine(key, sockets);
  servers.push(serial);
  fs.mkdirSync(path.dirname(serialSocket), { recursive: true });
  fs.rmSync(serialSocket, { force: true });
  await new Promise<void>((resolve, reject) => {
    serial.once('error', reject);
    serial.listen(serialSocket, () => resolve());
  });
  return {
    pid: undefined,
    vncSocket: '',
    serialSocket,
    exited,
    forwardPort(guestPort: number): Promise<number> {
      let p = forwards.get(guestPort);
      if (!p) {
        p = new Promise<number>((resolve, reject) => {
          const srv = net.createServer((sock) => {
            sockets.add(sock);
            sock.on('close', () => sockets.delete(sock));
            sock.on('error', () => undefined);
            sock.resume(); // read what comes, so the caller's end closes the socket
            sock.end('ERR paper guest: nothing runs here\n');
          });
          servers.push(srv);
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port));
        });
        forwards.set(guestPort, p);
      }
      return p;
    },
    pause: () => Promise.resolve(),
    resume: () => Promise.resolve(),
    stop: end,
    kill: end,
  };
}
