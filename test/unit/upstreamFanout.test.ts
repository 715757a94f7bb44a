/**
 * UpstreamFanout against real loopback sockets (the server side stands for the machine). The dial
 * is held open by the test, so every ordering of request / open / leave / dial arrival is exact.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { UpstreamFanout, type FanoutSubscriber } from '../../src/proxy/UpstreamFanout.js';

class Sub extends EventEmitter implements FanoutSubscriber {
  readonly got: Buffer[] = [];
  ended = 0;
  backlog = 0;
  constructor(readonly name: string, readonly controls = true) {
    super();
  }
  queued(): number {
    return this.backlog;
  }
  deliver(chunk: Buffer): void {
    this.got.push(chunk);
    this.emit('data');
  }
  upstreamEnded(): void {
    this.ended++;
  }
  text(): string {
    return Buffer.concat(this.got).toString();
  }
}

/** A machine side whose dials the test lets through one at a time. */
class Machine {
  readonly accepted: net.Socket[] = [];
  dials = 0;
  private server = net.createServer((s) => { this.accepted.push(s); s.on('error', () => undefined); });
  private waiting: Array<{ resolve: (s: net.Socket) => void; reject: (e: Error) => void }> = [];

  async listen(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return this;
  }

  readonly dial = (): Promise<net.Socket> => {
    this.dials++;
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  };

  readonly clients: net.Socket[] = [];

  /** Lets the oldest held dial through; resolves with the machine's end of the connection. */
  async connectNext(): Promise<net.Socket> {
    const w = this.waiting.shift();
    assert.ok(w, 'a dial is waiting');
    const n = this.accepted.length;
    const client = net.connect((this.server.address() as AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
    while (this.accepted.length === n) await once(this.server, 'connection');
    this.clients.push(client);
    w.resolve(client);
    return this.accepted[n]!;
  }

  failNext(err: Error): void {
    const w = this.waiting.shift();
    assert.ok(w, 'a dial is waiting');
    w.reject(err);
  }

  async close(): Promise<void> {
    for (const s of this.accepted) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}

/** Resolves when `s` has received `text` in all. */
async function receives(s: Sub, text: string): Promise<void> {
  while (!s.text().includes(text)) await once(s, 'data');
}

describe('UpstreamFanout', () => {
  let m: Machine;
  beforeEach(async () => { m = await new Machine().listen(); });
  afterEach(() => m.close());

  it('counts a member from its request: one leaving while another waits does not end the fanout', async () => {
    let ended = 0;
    const f = new UpstreamFanout({ dial: m.dial, shared: true, highWater: 1 << 20, onEnded: () => ended++ });
    const a = new Sub('a');
    const b = new Sub('b');
    f.request(a);
    const aOpen = f.open(a);
    assert.equal(f.state, 'connecting');
    f.request(b);
    f.leave(a); // the old tab goes while the dial is in flight
    const bOpen = f.open(b);
    const machine = await m.connectNext();
    await Promise.all([aOpen, bOpen]);
    assert.equal(f.state, 'open');
    assert.deepEqual([f.memberCount, f.receiverCount, m.dials, ended, a.ended, b.ended], [1, 1, 1, 0, 0, 0]);
    machine.write('login: ');
    await receives(b, 'login: ');
    assert.equal(a.text(), '', 'a member that left receives nothing');
    f.leave(b);
    await once(machine, 'close');
    assert.deepEqual([f.state, ended], ['ended', 1]);
  });

  it('destroys a dial that arrives after the last member left, and is never reused', async () => {
    let ended = 0;
    const f = new UpstreamFanout({ dial: m.dial, shared: true, highWater: 1 << 20, onEnded: () => ended++ });
    const a = new Sub('a');
    f.request(a);
    const aOpen = f.open(a);
    f.leave(a);
    assert.deepEqual([f.state, ended], ['ended', 1]);
    const machine = await m.connectNext();
    await aOpen;
    await once(machine, 'close');
    assert.deepEqual([a.ended, f.receiverCount], [0, 0], 'a member that left hears nothing');
    const late = new Sub('late');
    f.request(late);
    await f.open(late);
    assert.deepEqual([late.ended, m.dials, f.memberCount], [1, 1, 0], 'an ended fanout only says it ended');
  });

  it('never dials when every member leaves before opening', async () => {
    const f = new UpstreamFanout({ dial: m.dial, shared: false, highWater: 1 << 20 });
    const a = new Sub('a');
    f.request(a);
    f.leave(a);
    await f.open(a);
    assert.deepEqual([m.dials, f.state, a.ended], [0, 'ended', 0]);
  });

  it('a failed dial rejects every waiting member and ends the fanout', async () => {
    let ended = 0;
    const f = new UpstreamFanout({ dial: m.dial, shared: true, highWater: 1 << 20, onEnded: () => ended++ });
    const [a, b] = [new Sub('a'), new Sub('b')];
    f.request(a);
    f.request(b);
    const opens = [f.open(a), f.open(b)];
    m.failNext(new Error('machine not running'));
    for (const p of opens) await assert.rejects(p, /machine not running/);
    assert.deepEqual([f.state, ended, f.memberCount, m.dials], ['ended', 1, 0, 1]);
  });

  it('tells receivers once when the machine side ends, and a member still on its way when it opens', async () => {
    let ended = 0;
    const f = new UpstreamFanout({ dial: m.dial, shared: true, highWater: 1 << 20, onEnded: () => ended++ });
    const [a, b, c] = [new Sub('a'), new Sub('b'), new Sub('c')];
    for (const s of [a, b, c]) f.request(s);
    const opens = [f.open(a), f.open(b)];
    const machine = await m.connectNext();
    await Promise.all(opens);
    machine.end();
    while (f.state !== 'ended') await new Promise((r) => setImmediate(r));
    assert.deepEqual([a.ended, b.ended, c.ended, ended], [1, 1, 0, 1]);
    await f.open(c);
    assert.equal(c.ended, 1);
  });

  it('a slow viewer of a shared console skips output; a slow controller pauses the machine until it drains', async () => {
    const f = new UpstreamFanout({ dial: m.dial, shared: true, highWater: 10 });
    const [owner, viewer] = [new Sub('owner'), new Sub('viewer', false)];
    for (const s of [owner, viewer]) f.request(s);
    const opens = [f.open(owner), f.open(viewer)];
    const machine = await m.connectNext();
    await Promise.all(opens);
    viewer.backlog = 100;
    machine.write('one');
    await receives(owner, 'one');
    assert.equal(viewer.text(), '', 'the slow viewer skipped it');
    owner.backlog = 100;
    machine.write('two');
    await receives(owner, 'two');
    const upstream = m.clients[0]!;
    assert.equal(upstream.isPaused(), true, 'nothing is read from the machine while the owner is over the mark');
    owner.backlog = 0;
    viewer.backlog = 0;
    f.drained();
    assert.equal(upstream.isPaused(), false);
    machine.write('three');
    await receives(owner, 'three');
    await receives(viewer, 'three');
    f.leave(owner);
    f.leave(viewer);
  });

  it('a viewer of a private desktop holds the machine back instead of skipping (RFB bytes cannot be dropped)', async () => {
    const f = new UpstreamFanout({ dial: m.dial, shared: false, highWater: 10 });
    const viewer = new Sub('viewer', false);
    f.request(viewer);
    const open = f.open(viewer);
    const machine = await m.connectNext();
    await open;
    viewer.backlog = 100;
    machine.write('frame-1');
    await receives(viewer, 'frame-1');
    assert.equal(m.clients[0]!.isPaused(), true, 'held back, not skipped');
    viewer.backlog = 0;
    f.drained();
    assert.equal(m.clients[0]!.isPaused(), false);
    machine.write('frame-2');
    await receives(viewer, 'frame-2');
    f.leave(viewer);
  });
});
