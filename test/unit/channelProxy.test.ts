/**
 * ChannelProxy.attach orderings with real websockets and a real loopback machine (an echo server).
 * The runtime holds every ownership lookup and every dial until the test lets it through, so the
 * interleavings that used to race ("opened in another tab" while the old socket still connects)
 * are exact, not left to timing.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { pino } from 'pino';
import { ChannelProxy, type ProxyRuntime } from '../../src/proxy/channelProxy.js';
import type { TicketClaims } from '../../src/proxy/tickets.js';
import type { LabInstanceDoc } from '../../src/store/LabInstance.js';
import type { LabEvent } from '../../src/labs/contracts.js';
import { Metrics } from '../../src/metrics.js';
import { CLOSE } from '../../src/closeCodes.js';
import { connectDatabase, type Database } from '../../src/store/database.js';
import { sharedMongoUri, uniqueDbName } from '../support/ferret.js';

/** Calls held until the test releases them, oldest first. */
class Gate<T> extends EventEmitter {
  private readonly held: Array<{ resolve: (v: T) => void; reject: (e: Error) => void }> = [];
  hold = true;
  calls = 0;
  constructor(private readonly make: () => Promise<T>) {
    super();
  }
  run(): Promise<T> {
    this.calls++;
    if (!this.hold) return this.make();
    return new Promise((resolve, reject) => {
      this.held.push({ resolve, reject });
      this.emit('held');
    });
  }
  get waiting(): number {
    return this.held.length;
  }
  /** Waits until `n` calls are held. */
  async until(n: number): Promise<void> {
    while (this.held.length < n) await once(this, 'held');
  }
  async release(): Promise<void> {
    await this.until(1);
    const h = this.held.shift()!;
    this.make().then(h.resolve, h.reject);
  }
  async fail(err: Error): Promise<void> {
    await this.until(1);
    this.held.shift()!.reject(err);
  }
}

class Machine extends EventEmitter {
  readonly sockets: net.Socket[] = [];
  private readonly server = net.createServer((s) => {
    this.sockets.push(s);
    this.emit('socket');
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(d));
  });
  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}

class GatedRuntime implements ProxyRuntime {
  port = 0;
  readonly lookups = new Gate<LabInstanceDoc | undefined>(async () => ({ _id: 'lab1', userId: 'alice' }) as LabInstanceDoc); // only the owner is read
  readonly dials = new Gate<Duplex>(async () => {
    const s = net.connect(this.port, '127.0.0.1');
    await once(s, 'connect');
    return s;
  });
  get(): Promise<LabInstanceDoc | undefined> {
    return this.lookups.run();
  }
  openChannel(): Promise<Duplex> {
    return this.dials.run();
  }
  private readonly events = new EventEmitter();
  subscribe(_id: string, listener: (e: LabEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }
  emit(e: LabEvent): void {
    this.events.emit('event', e);
  }
  noteActivity(): void {}
}

interface Harness {
  rt: GatedRuntime;
  machine: Machine;
  proxy: ChannelProxy;
  wss: WebSocketServer;
  url: string;
  claims: Map<string, TicketClaims>;
  clients: WebSocket[];
  /** The server side of each client, in the same order. */
  served: WebSocket[];
}

const seat = (o: Partial<TicketClaims> = {}): TicketClaims =>
  ({ user: 'alice', instance: 'lab1', machine: 'web', channel: 'console', mode: 'control', jti: 'j', exp: 0, ...o });

async function harness(): Promise<Harness> {
  const rt = new GatedRuntime();
  const machine = new Machine();
  rt.port = await machine.listen();
  const proxy = new ChannelProxy({
    runtime: rt, log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }),
    pingIntervalMs: 60_000, idleTimeoutMs: 600_000, maxPerUser: 8,
  });
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const claims = new Map<string, TicketClaims>();
  const served: WebSocket[] = [];
  wss.on('connection', (ws, req) => {
    served.push(ws);
    void proxy.attach(ws, claims.get(req.url ?? '')!);
  });
  return { rt, machine, proxy, wss, url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, claims, clients: [], served };
}

/** Opens a socket with the given claims; resolves once the server side is attached. */
async function connect(h: Harness, c: TicketClaims): Promise<WebSocket> {
  const path = `/s${h.clients.length}`;
  h.claims.set(path, c);
  const ws = new WebSocket(h.url + path);
  h.clients.push(ws);
  await once(ws, 'open');
  return ws;
}

function closed(ws: WebSocket): Promise<[number, string]> {
  return once(ws, 'close').then(([code, reason]) => [code as number, String(reason)]);
}

async function echoes(ws: WebSocket, text: string): Promise<void> {
  const got = once(ws, 'message');
  ws.send(Buffer.from(text));
  assert.equal(String((await got)[0]), text);
}

/** Until the proxy counts two sessions: both sockets have their seat and are members of the fanout. */
async function bothCounted(h: Harness): Promise<void> {
  if (h.proxy.count() >= 2) return;
  await new Promise<void>((resolve) => {
    const off = h.proxy.onJoin(() => { if (h.proxy.count() >= 2) { off(); resolve(); } });
  });
}

describe('ChannelProxy.attach orderings', () => {
  let h: Harness;
  let db: Database; // the per-user socket cap counts seats in the database
  before(async () => { db = await connectDatabase(sharedMongoUri(), uniqueDbName('proxy'), pino({ level: 'silent' })); });
  after(() => db.close());
  beforeEach(async () => { h = await harness(); });
  afterEach(async () => {
    h.proxy.closeAll();
    await Promise.all(h.clients.filter((c) => c.readyState !== WebSocket.CLOSED).map((c) => once(c, 'close')));
    h.wss.close();
    await h.machine.close();
  });

  it('a new tab while the old socket still waits for the console dial: the old one closes, the new one gets the shared upstream', async () => {
    h.rt.lookups.hold = false;
    const first = await connect(h, seat());
    await h.rt.dials.until(1);
    const firstClosed = closed(first);
    const second = await connect(h, seat());
    assert.deepEqual(await firstClosed, [CLOSE.otherTab.code, CLOSE.otherTab.reason]);
    await h.rt.dials.release();
    await echoes(second, 'still here');
    assert.equal(h.rt.dials.calls, 1, 'one dial for the seat');
  });

  it('a new tab while the old socket is still being checked: the old one never dials', async () => {
    const first = await connect(h, seat());
    await h.rt.lookups.until(1);
    const firstClosed = closed(first);
    const second = await connect(h, seat());
    assert.deepEqual(await firstClosed, [CLOSE.otherTab.code, CLOSE.otherTab.reason]);
    await h.rt.lookups.release(); // the old session's lookup answers after it closed
    await h.rt.lookups.release();
    await h.rt.dials.release();
    await echoes(second, 'hello');
    assert.equal(h.rt.dials.calls, 1);
  });

  it('a new tab after the old socket is open shares its upstream (no second dial)', async () => {
    h.rt.lookups.hold = false;
    h.rt.dials.hold = false;
    const first = await connect(h, seat());
    await echoes(first, 'one');
    const firstClosed = closed(first);
    const second = await connect(h, seat());
    assert.deepEqual(await firstClosed, [CLOSE.otherTab.code, CLOSE.otherTab.reason]);
    await echoes(second, 'two');
    assert.deepEqual([h.rt.dials.calls, h.machine.sockets.filter((s) => !s.destroyed).length], [1, 1]);
  });

  it('a teacher watching and the student typing share one dial made while both were connecting', async () => {
    h.rt.lookups.hold = false;
    const student = await connect(h, seat());
    const teacher = await connect(h, seat({ user: 'teacher', mode: 'view' }));
    await h.rt.dials.until(1);
    await h.rt.dials.release();
    const teacherSees = once(teacher, 'message');
    await echoes(student, 'ls\n');
    assert.equal(String((await teacherSees)[0]), 'ls\n');
    assert.equal(h.rt.dials.calls, 1);
  });

  it('the lab stopping while the console dials closes every socket, and the dial is closed when it arrives; the next socket dials afresh', async () => {
    h.rt.lookups.hold = false;
    const [a, b] = [await connect(h, seat()), await connect(h, seat({ user: 'teacher', mode: 'view' }))];
    const both = Promise.all([closed(a), closed(b)]);
    await bothCounted(h); // a socket is in the fanout once its seat is counted (a database write after 'open')
    await h.rt.dials.until(1);
    h.rt.emit({ type: 'state', instanceId: 'lab1', state: 'stopped' });
    assert.deepEqual((await both).map(([code]) => code), [CLOSE.labStopped.code, CLOSE.labStopped.code]);
    assert.equal(h.proxy.count(), 0);
    const dialed = once(h.machine, 'socket');
    await h.rt.dials.release();
    await dialed;
    const stale = h.machine.sockets[0]!;
    if (!stale.destroyed) await once(stale, 'close');
    h.rt.dials.hold = false;
    await echoes(await connect(h, seat()), 'fresh');
    assert.equal(h.rt.dials.calls, 2);
  });

  it('a failed dial closes every waiting socket with its reason; the next socket dials again', async () => {
    h.rt.lookups.hold = false;
    const [a, b] = [await connect(h, seat()), await connect(h, seat({ user: 'teacher', mode: 'view' }))];
    const [ca, cb] = [closed(a), closed(b)];
    await bothCounted(h);
    await h.rt.dials.until(1);
    await h.rt.dials.fail(new Error('connect ECONNREFUSED'));
    assert.deepEqual((await Promise.all([ca, cb])).map(([code]) => code), [1011, 1011]);
    h.rt.dials.hold = false;
    await echoes(await connect(h, seat()), 'again');
    assert.equal(h.rt.dials.calls, 2);
  });
});
