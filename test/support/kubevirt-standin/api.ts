/**
 * The stand-in's virt-api: KubeVirt's subresource paths, authorised like virt-api does it — the
 * caller's bearer token is checked with a TokenReview, then a SubjectAccessReview for the
 * subresource, both against the real API server.
 *
 *   GET (websocket, subprotocol plain.kubevirt.io) .../virtualmachineinstances/{name}/vnc|console
 *   GET (websocket, plain.kubevirt.io) .../virtualmachineinstances/{name}/portforward/{port}[/tcp]:
 *       raw TCP bytes to that port of the guest (a QEMU user-net host forward into its network,
 *       as virt-handler connects into the VM's network); any number of connections at once
 *   GET .../virtualmachineinstances/{name}/vnc/screenshot[?moveCursor=false]: a PNG of the display,
 *       as KubeVirt ≥ v1.7.0 takes it (libvirt's screenshot, a QMP screendump: no VNC connection,
 *       an open VNC viewer stays); 400 "No graphics devices are present." without a display
 *   PUT .../virtualmachineinstances/{name}/pause|unpause
 *   PUT .../virtualmachines/{name}/start|stop|restart
 *
 * under /apis/subresources.kubevirt.io/v1/namespaces/{ns}/. One VNC (and one console) connection
 * per VMI: a new one closes the older, as KubeVirt does.
 */
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { KubeClient, vmiPath, vmPath } from './kube.js';
import type { StandInController, Vmi } from './controller.js';

export const SUBPROTOCOL = 'plain.kubevirt.io';
const PREFIX = '/apis/subresources.kubevirt.io/v1/namespaces/';
const portforwardRoute = /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([a-z0-9-]+)\/virtualmachineinstances\/([a-z0-9.-]+)\/portforward\/(\d{1,5})(?:\/(tcp|udp))?$/;
const screenshotRoute = /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([a-z0-9-]+)\/virtualmachineinstances\/([a-z0-9.-]+)\/vnc\/screenshot$/;
const route = /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([a-z0-9-]+)\/(virtualmachineinstances|virtualmachines)\/([a-z0-9.-]+)\/([a-z]+)$/;

interface Failure { code: number; reason: string; message: string }
const statusBody = (f: Failure): string =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: f.message, reason: f.reason, code: f.code });
const fail = (code: number, message: string): Failure =>
  ({ code, message, reason: ({ 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed', 409: 'Conflict' } as Record<number, string>)[code] ?? 'InternalError' });

export interface SubresourceServerOptions {
  kube: KubeClient;
  controller: StandInController;
  tlsCert: string;
  tlsKey: string;
  log: Logger;
}

export class SubresourceServer {
  private server: https.Server;
  private wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
  /** "<ns>/<name>/<vnc|console>" → the open connection. */
  private open = new Map<string, { ws: WebSocket; sock: net.Socket }>();
  /** Open portforward connections (any number per VMI). */
  private forwards = new Set<{ ws: WebSocket; sock: net.Socket }>();
  url = '';

  constructor(private readonly o: SubresourceServerOptions) {
    this.server = https.createServer({ cert: fs.readFileSync(o.tlsCert), key: fs.readFileSync(o.tlsKey) }, (req, res) => {
      void this.onRequest(req, res).catch((err: unknown) => this.reply(res, fail(500, String(err))));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.onUpgrade(req, socket, head).catch((err: unknown) => rejectUpgrade(socket, fail(500, String(err))));
    });
  }

  listen(port = 0): Promise<string> {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => {
      this.url = `https://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
      resolve(this.url);
    }));
  }

  async close(): Promise<void> {
    for (const c of [...this.open.values(), ...this.forwards]) { c.sock.destroy(); c.ws.terminate(); }
    this.open.clear();
    this.forwards.clear();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** TokenReview, then SubjectAccessReview for the subresource; undefined = allowed. */
  async authorize(req: IncomingMessage, ns: string, resource: string, name: string, subresource: string, verb: string): Promise<Failure | undefined> {
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token) return fail(401, 'Unauthorized: a bearer token is required');
    const review = await this.o.kube.must<{ status: { authenticated?: boolean; user?: { username: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } } }>(
      'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
    const user = review.status.user;
    if (!review.status.authenticated || !user) return fail(401, 'Unauthorized: the token is not valid');
    const sar = await this.o.kube.must<{ status: { allowed?: boolean; reason?: string } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: {
        user: user.username, uid: user.uid, groups: user.groups, extra: user.extra,
        resourceAttributes: { namespace: ns, verb, group: 'subresources.kubevirt.io', version: 'v1', resource, subresource, name },
      },
    });
    if (sar.status.allowed) return undefined;
    return fail(403, `${resource}.subresources.kubevirt.io "${name}" is forbidden: User "${user.username}" cannot ${verb} resource "${resource}/${subresource}" in API group "subresources.kubevirt.io" in the namespace "${ns}"`);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    if (path === '/healthz' || path === '/apis/subresources.kubevirt.io/v1/healthz') { res.end('OK'); return; }
    if (portforwardRoute.test(path)) return this.reply(res, fail(400, 'portforward needs a websocket upgrade'));
    const shot = screenshotRoute.exec(path);
    if (shot) return this.screenshot(req, res, shot[1]!, shot[2]!);
    const m = route.exec(path);
    if (!m) return this.reply(res, fail(404, `no such path ${path.startsWith(PREFIX) ? path : '(not a KubeVirt subresource)'}`));
    const [, ns, resource, name, sub] = m as unknown as [string, string, string, string, string];
    const vmiOps = ['pause', 'unpause'];
    const vmOps = ['start', 'stop', 'restart'];
    if (!(resource === 'virtualmachineinstances' ? vmiOps : vmOps).includes(sub)) {
      if (sub === 'vnc' || sub === 'console') return this.reply(res, fail(400, `${sub} needs a websocket upgrade`));
      return this.reply(res, fail(404, `unknown subresource ${sub}`));
    }
    if (req.method !== 'PUT') return this.reply(res, fail(405, `${sub} requires PUT`));
    const denied = await this.authorize(req, ns, resource, name, sub, 'update');
    if (denied) return this.reply(res, denied);
    req.resume();

    if (resource === 'virtualmachineinstances') {
      if (!(await this.o.kube.get(vmiPath(ns, name)))) return this.reply(res, fail(404, `virtualmachineinstance.kubevirt.io "${name}" not found`));
      const r = await this.o.controller.setPaused(ns, name, sub === 'pause');
      if (r === 'not-running') return this.reply(res, fail(409, 'VMI is not running'));
      if (r === 'already') return this.reply(res, fail(409, sub === 'pause' ? 'VMI is already paused' : 'VMI is not paused'));
      this.o.log.info({ ns, name, op: sub }, 'vmi.paused-state');
      res.end();
      return;
    }
    const vm = await this.o.kube.get<{ spec: { runStrategy?: string; running?: boolean } }>(vmPath(ns, name));
    if (!vm) return this.reply(res, fail(404, `virtualmachine.kubevirt.io "${name}" not found`));
    if (sub === 'restart') {
      await this.o.kube.must('DELETE', vmiPath(ns, name), undefined, [200, 202, 404]);
    } else {
      const runStrategy = sub === 'start' ? 'Always' : 'Halted';
      const spec: Record<string, unknown> = { runStrategy };
      if (vm.spec.running !== undefined) spec.running = null;
      await this.o.kube.mergePatch(vmPath(ns, name), { spec });
    }
    this.o.log.info({ ns, name, op: sub }, 'vm.state-change');
    res.end();
  }

  /** KubeVirt's vnc/screenshot: authorised as get virtualmachineinstances/vnc/screenshot. */
  private async screenshot(req: IncomingMessage, res: ServerResponse, ns: string, name: string): Promise<void> {
    if (req.method !== 'GET') return this.reply(res, fail(405, 'vnc/screenshot requires GET'));
    const denied = await this.authorize(req, ns, 'virtualmachineinstances', name, 'vnc/screenshot', 'get');
    if (denied) return this.reply(res, denied);
    req.resume();
    const vmi = await this.o.kube.get<Vmi>(vmiPath(ns, name));
    if (!vmi) return this.reply(res, fail(404, `virtualmachineinstance.kubevirt.io "${name}" not found`));
    if (vmi.spec.domain?.devices?.autoattachGraphicsDevice === false) return this.reply(res, fail(400, 'No graphics devices are present.'));
    const guest = this.o.controller.guests.get(`${ns}/${name}`)?.guest;
    if (vmi.status?.phase !== 'Running' || !guest?.screenshot) return this.reply(res, fail(400, 'VMI is not running'));
    this.screenshots++;
    const png = await guest.screenshot();
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
    res.end(png);
  }

  /** Screenshots served (for tests). */
  screenshots = 0;

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const pf = portforwardRoute.exec(new URL(req.url ?? '/', 'https://x').pathname);
    if (pf) return this.portforward(req, socket, head, pf[1]!, pf[2]!, Number(pf[3]), pf[4] ?? 'tcp');
    const m = route.exec(new URL(req.url ?? '/', 'https://x').pathname);
    if (!m || m[2] !== 'virtualmachineinstances' || (m[4] !== 'vnc' && m[4] !== 'console')) return rejectUpgrade(socket, fail(404, 'not a websocket subresource'));
    const [, ns, , name, kind] = m as unknown as [string, string, string, string, 'vnc' | 'console'];
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.includes(SUBPROTOCOL)) return rejectUpgrade(socket, fail(400, `subprotocol ${SUBPROTOCOL} is required`));
    const denied = await this.authorize(req, ns, 'virtualmachineinstances', name, kind, 'get');
    if (denied) return rejectUpgrade(socket, denied);
    const vmi = await this.o.kube.get<Vmi>(vmiPath(ns, name));
    if (!vmi) return rejectUpgrade(socket, fail(404, `virtualmachineinstance.kubevirt.io "${name}" not found`));
    const guest = this.o.controller.guests.get(`${ns}/${name}`)?.guest;
    if (vmi.status?.phase !== 'Running' || !guest) return rejectUpgrade(socket, fail(400, `Unable to connect to VM because phase is ${vmi.status?.phase || 'Pending'} instead of Running`));
    // KubeVirt's answers when the VMI has no such device.
    const devices = vmi.spec.domain?.devices;
    if (kind === 'vnc' && devices?.autoattachGraphicsDevice === false) return rejectUpgrade(socket, fail(400, 'No graphics devices are present.'));
    if (kind === 'console' && devices?.autoattachSerialConsole === false) return rejectUpgrade(socket, fail(400, 'No serial consoles are present.'));

    const key = `${ns}/${name}/${kind}`;
    const older = this.open.get(key);
    if (older) {
      // The newest connection wins; the guest's socket is released before we connect again.
      this.open.delete(key);
      older.sock.destroy();
      older.ws.close(1000, 'a newer connection replaced this one');
      this.o.log.info({ ns, name, kind }, 'connection.evicted');
    }
    const sock = net.connect(kind === 'vnc' ? guest.vncSocket : guest.serialSocket);
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const entry = { ws, sock };
      this.open.set(key, entry);
      const done = (): void => {
        if (this.open.get(key) === entry) this.open.delete(key);
        sock.destroy();
        if (ws.readyState === ws.OPEN) ws.close(1000, 'guest connection closed');
      };
      sock.on('data', (d: Buffer) => ws.send(d, { binary: true }));
      sock.on('close', done);
      sock.on('error', done);
      ws.on('message', (d: Buffer) => sock.write(d));
      ws.on('close', () => { if (this.open.get(key) === entry) this.open.delete(key); sock.destroy(); });
      ws.on('error', () => sock.destroy());
      this.o.log.info({ ns, name, kind }, 'connection.open');
    });
  }

  /** KubeVirt's VMI portforward: authorised as get virtualmachineinstances/portforward. */
  private async portforward(req: IncomingMessage, socket: Duplex, head: Buffer, ns: string, name: string, port: number, protocol: string): Promise<void> {
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.includes(SUBPROTOCOL)) return rejectUpgrade(socket, fail(400, `subprotocol ${SUBPROTOCOL} is required`));
    const denied = await this.authorize(req, ns, 'virtualmachineinstances', name, 'portforward', 'get');
    if (denied) return rejectUpgrade(socket, denied);
    if (protocol !== 'tcp' || port < 1 || port > 65535) return rejectUpgrade(socket, fail(400, `unsupported port forward ${port}/${protocol}`));
    const vmi = await this.o.kube.get<Vmi>(vmiPath(ns, name));
    if (!vmi) return rejectUpgrade(socket, fail(404, `virtualmachineinstance.kubevirt.io "${name}" not found`));
    const guest = this.o.controller.guests.get(`${ns}/${name}`)?.guest;
    if (vmi.status?.phase !== 'Running' || !guest) return rejectUpgrade(socket, fail(400, `Unable to connect to VM because phase is ${vmi.status?.phase || 'Pending'} instead of Running`));
    const hostPort = await guest.forwardPort(port);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const sock = net.connect(hostPort, '127.0.0.1');
      const entry = { ws, sock };
      this.forwards.add(entry);
      sock.once('close', () => this.forwards.delete(entry));
      const pending: Buffer[] = [];
      let connected = false;
      sock.once('connect', () => { connected = true; for (const d of pending.splice(0)) sock.write(d); });
      const done = (): void => { sock.destroy(); if (ws.readyState === ws.OPEN) ws.close(1000, 'port closed'); };
      sock.on('data', (d: Buffer) => ws.send(d, { binary: true }));
      sock.on('close', done);
      sock.on('error', done);
      ws.on('message', (d: Buffer) => { if (connected) sock.write(d); else pending.push(d); });
      ws.on('close', () => sock.destroy());
      ws.on('error', () => sock.destroy());
      this.o.log.info({ ns, name, port }, 'portforward.open');
    });
  }

  private reply(res: ServerResponse, f: Failure): void {
    if (res.headersSent) { res.destroy(); return; }
    res.writeHead(f.code, { 'content-type': 'application/json' }).end(statusBody(f));
  }
}

function rejectUpgrade(socket: Duplex, f: Failure): void {
  const body = statusBody(f);
  socket.end(`HTTP/1.1 ${f.code} ${f.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
