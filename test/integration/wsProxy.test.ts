/**
 * The websocket proxy against the real tool (real HTTP server, real FerretDB for ticket use) with
 * a LabRuntime whose machines are a loopback TCP sink (it stands for the backend). Every refusal
 * is checked to happen before any upstream dial.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import WebSocket from 'ws';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { LoopbackRuntime } from '../support/loopbackRuntime.js';
import { TicketService, type TicketClaims } from '../../src/proxy/tickets.js';
import { TicketUse } from '../../src/store/TicketUse.js';

const SECRET_KEY = 'ws-proxy-test-secret-key-0123456789abcdef';
type Seat = Partial<Omit<TicketClaims, 'exp' | 'jti'>>;

interface Harness {
  tool: TestTool;
  rt: LoopbackRuntime;
  tickets: TicketService;
  issued: string[];
  origin: string;
}

async function harness(env: Record<string, string>): Promise<Harness> {
  const rt = await new LoopbackRuntime().listen();
  const tool = await startTestTool({ SECRET_KEY, ...env }, { runtime: rt });
  return { tool, rt, tickets: new TicketService(SECRET_KEY), issued: [], origin: new URL(tool.publicUrl).origin };
}

function ticketFor(h: Harness, s: Seat = {}, svc = h.tickets): string {
  const { ticket } = svc.issue({ user: 'alice', instance: 'alicelab', machine: 'web', channel: 'console', mode: 'control', ...s });
  h.issued.push(ticket);
  return ticket;
}

type Outcome = { ws: WebSocket; status: 101 } | { status: number };

function connect(h: Harness, path: string, o: { ticket?: string; origin?: string | null; autoPong?: boolean } = {}): Promise<Outcome> {
  const protocols = ['lab.v1', ...(o.ticket ? [`ticket.${o.ticket}`] : [])];
  const headers: Record<string, string> = o.origin === null ? {} : { origin: o.origin ?? h.origin };
  const ws = new WebSocket(h.tool.url.replace(/^http/, 'ws') + path, protocols, { headers, autoPong: o.autoPong ?? true, origin: undefined as unknown as string });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
    });
    ws.once('error', (err) => reject(err));
  });
}

async function open(h: Harness, path: string, t: string): Promise<WebSocket> {
  const r = await connect(h, path, { ticket: t });
  assert.equal(r.status, 101, `expected ${path} to open`);
  return (r as { ws: WebSocket }).ws;
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string; at: number }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: 'already closed', at: Date.now() });
  return new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString(), at: Date.now() })));
}

/** The server's next ping; rejects if the socket closes first. */
function nextPing(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = (code: number, reason: Buffer) => reject(new Error(`closed with ${code} ${reason.toString()}`));
    ws.once('close', onClose);
    ws.once('ping', () => { ws.off('close', onClose); resolve(); });
  });
}

function nextMessage(ws: WebSocket): Promise<Buffer> {
  return new Promise((r) => ws.once('message', (d: Buffer) => r(d)));
}

async function activeSessions(h: Harness): Promise<number> {
  const m = await h.tool.metrics.wsSessions.get();
  return m.values.reduce((n, v) => n + v.value, 0);
}

const rfbHandshake = Buffer.concat([Buffer.from('RFB 003.008\n', 'latin1'), Buffer.from([1]), Buffer.from([1])]);
const setEncodings = Buffer.from([2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7]);
const updateRequest = Buffer.from([3, 1, 0, 0, 0, 0, 0x04, 0, 0x03, 0]);
const keyEvent = Buffer.from([4, 1, 0, 0, 0, 0, 0, 0x61]);
const pointerEvent = Buffer.from([5, 1, 0, 10, 0, 20]);

describe('websocket proxy', function () {
  this.timeout(90_000);
  let h: Harness;

  before(async () => {
    h = await harness({ WS_MAX_PAYLOAD_BYTES: '65536', WS_MAX_PER_USER: '4' });
    await h.rt.add({ id: 'alicelab', userId: 'alice', machines: ['web', 'db', 'm3', 'm4', 'm5'] });
    await h.rt.add({ id: 'boblab', userId: 'bob', machines: ['web'] });
  });
  after(async () => {
    await h?.tool.shutdown();
    await h?.rt.close();
  });
  afterEach(async () => {
    await waitFor(async () => (await activeSessions(h)) === 0, 5000, 'all sockets of the test closed');
  });

  it('pipes bytes both ways for a valid ticket, dialing the machine once', async () => {
    const dials = h.rt.dials;
    const ws = await open(h, '/ws/console/alicelab/web', ticketFor(h));
    ws.send(Buffer.from('echo hi\n'));
    assert.equal((await nextMessage(ws)).toString(), 'echo hi\n');
    assert.equal(h.rt.dials, dials + 1);
    assert.equal(ws.protocol, 'lab.v1', 'the server answers with the protocol name, never the ticket');
    ws.close();
    await closed(ws);
  });

  describe('refuses before any upstream dial', () => {
    let dials: number;
    beforeEach(() => { dials = h.rt.dials; });
    afterEach(() => assert.equal(h.rt.dials, dials, 'no upstream dial'));

    it('refuses a connection without a ticket (raw 403)', async () => {
      assert.equal((await connect(h, '/ws/console/alicelab/web')).status, 403);
    });

    it('refuses an expired ticket', async () => {
      const past = new TicketService(SECRET_KEY, 30, () => Date.now() - 31_000);
      assert.equal((await connect(h, '/ws/console/alicelab/web', { ticket: ticketFor(h, {}, past) })).status, 403);
    });

    it('refuses a ticket signed with another key', async () => {
      const other = new TicketService('another-secret-key-0123456789abcdefghij');
      assert.equal((await connect(h, '/ws/console/alicelab/web', { ticket: ticketFor(h, {}, other) })).status, 403);
    });

    it('refuses a replayed ticket', async () => {
      const t = ticketFor(h);
      const ws = await open(h, '/ws/console/alicelab/web', t);
      dials += 1;
      assert.equal((await connect(h, '/ws/console/alicelab/web', { ticket: t })).status, 403);
      ws.close();
      await closed(ws);
    });

    it('lets exactly one of ten concurrent uses of one ticket through', async () => {
      const t = ticketFor(h);
      const results = await Promise.all(Array.from({ length: 10 }, () => connect(h, '/ws/console/alicelab/web', { ticket: t })));
      const opened = results.filter((r) => r.status === 101);
      assert.equal(opened.length, 1);
      assert.equal(results.filter((r) => r.status === 403).length, 9);
      dials += 1;
      const ws = (opened[0] as { ws: WebSocket }).ws;
      await waitFor(() => h.rt.dials === dials, 5000, 'the one dial');
      ws.close();
      await closed(ws);
    });

    it('refuses a ticket for another machine or another channel', async () => {
      assert.equal((await connect(h, '/ws/console/alicelab/db', { ticket: ticketFor(h, { machine: 'web' }) })).status, 403);
      assert.equal((await connect(h, '/ws/vnc/alicelab/web', { ticket: ticketFor(h, { channel: 'console' }) })).status, 403);
    });

    it("refuses a ticket for one's own lab used on another user's lab", async () => {
      const t = ticketFor(h, { user: 'bob', instance: 'boblab' });
      assert.equal((await connect(h, '/ws/console/alicelab/web', { ticket: t })).status, 403);
    });

    it("closes with \"not your lab\" when a control ticket names another user's lab", async () => {
      const ws = await open(h, '/ws/console/alicelab/web', ticketFor(h, { user: 'bob' }));
      const c = await closed(ws);
      assert.deepEqual([c.code, c.reason], [4403, 'not your lab']);
    });

    it('refuses a bad or missing Origin', async () => {
      assert.equal((await connect(h, '/ws/console/alicelab/web', { ticket: ticketFor(h), origin: 'https://evil.example' })).status, 403);
      assert.equal((await connect(h, '/ws/console/alicelab/web', { ticket: ticketFor(h), origin: null })).status, 403);
    });

    it('refuses past the per-user connection cap with a reason', async () => {
      const socks = [];
      for (const m of ['web', 'db', 'm3', 'm4']) socks.push(await open(h, `/ws/console/alicelab/${m}`, ticketFor(h, { machine: m })));
      await waitFor(() => h.rt.dials === dials + 4, 5000, 'four dials');
      dials += 4;
      const fifth = await open(h, '/ws/console/alicelab/m5', ticketFor(h, { machine: 'm5' }));
      const c = await closed(fifth);
      assert.deepEqual([c.code, c.reason], [4429, 'too many open connections']);
      for (const s of socks) s.close();
      await Promise.all(socks.map(closed));
    });
  });

  it('closes a frame over the size limit with 1009', async () => {
    const ws = await open(h, '/ws/console/alicelab/web', ticketFor(h));
    ws.send(Buffer.alloc(70_000));
    const c = await closed(ws);
    assert.equal(c.code, 1009);
  });

  it('closes the older socket with "opened in another tab" when the same screen is opened again', async () => {
    const first = await open(h, '/ws/console/alicelab/web', ticketFor(h));
    const firstClosed = closed(first);
    const second = await open(h, '/ws/console/alicelab/web', ticketFor(h));
    const c = await firstClosed;
    assert.deepEqual([c.code, c.reason], [4003, 'opened in another tab']);
    second.send(Buffer.from('still here'));
    assert.equal((await nextMessage(second)).toString(), 'still here');
    second.close();
    await closed(second);
  });

  it('closes every socket of a lab within 5 s when the lab stops', async () => {
    const a = await open(h, '/ws/console/alicelab/web', ticketFor(h));
    const b = await open(h, '/ws/vnc/alicelab/db', ticketFor(h, { channel: 'vnc', machine: 'db' }));
    await waitFor(() => h.rt.connections.filter((c) => c.instance === 'alicelab' && !c.socket.destroyed).length >= 2, 5000, 'both dialed');
    const t0 = Date.now();
    await h.rt.stop('alicelab');
    const [ca, cb] = await Promise.all([closed(a), closed(b)]);
    for (const c of [ca, cb]) {
      assert.deepEqual([c.code, c.reason], [4001, 'lab stopped']);
      assert.ok(c.at - t0 < 5000, `closed after ${c.at - t0} ms`);
    }
    await h.rt.start('alicelab');
  });

  it('passes nothing typed on a read-only console, but shows its output', async () => {
    await h.rt.add({ id: 'carollab', userId: 'carol' });
    let sink: net.Socket | undefined;
    const prev = h.rt.onConnection;
    h.rt.onConnection = (c) => { sink = c.socket; };
    try {
      const ws = await open(h, '/ws/console/carollab/web', ticketFor(h, { user: 'teacher', instance: 'carollab', mode: 'view' }));
      await waitFor(() => sink !== undefined, 5000, 'dial');
      ws.send(Buffer.from('rm -rf /\n'));
      const got = nextMessage(ws);
      sink!.write('login: ');
      assert.equal((await got).toString(), 'login: ');
      const conn = h.rt.connections.find((c) => c.socket.remotePort === sink!.localPort || c.socket === sink)!;
      // anything forwarded would reach the machine before the close that follows it
      ws.close();
      await closed(ws);
      await waitFor(() => conn.socket.destroyed, 20_000, 'the machine side closed');
      assert.equal(conn.bytes(), 0, 'no input reached the machine');
    } finally {
      h.rt.onConnection = prev;
    }
  });

  it("shares one console connection between the student and a watching teacher: both see output, only the student's input goes in", async () => {
    await h.rt.add({ id: 'gretalab', userId: 'greta' });
    const dials = h.rt.dials;
    const student = await open(h, '/ws/console/gretalab/web', ticketFor(h, { user: 'greta', instance: 'gretalab' }));
    await waitFor(() => h.rt.dials === dials + 1, 5000, 'student dial');
    const teacher = await open(h, '/ws/console/gretalab/web', ticketFor(h, { user: 'teacher', instance: 'gretalab', mode: 'view' }));
    const seenByTeacher = nextMessage(teacher);
    teacher.send(Buffer.from('teacher typing\n'));
    student.send(Buffer.from('ls\n'));
    assert.equal((await nextMessage(student)).toString(), 'ls\n');
    assert.equal((await seenByTeacher).toString(), 'ls\n');
    // the teacher receives output only once its session is open, i.e. after any dial of its own
    assert.equal(h.rt.dials, dials + 1, 'the teacher rides on the same connection (QEMU serves one console client)');
    const conn = h.rt.connections.find((c) => c.instance === 'gretalab')!;
    assert.equal(Buffer.concat(conn.received).toString(), 'ls\n');
    teacher.close();
    await closed(teacher);
    student.send(Buffer.from('pwd\n'));
    assert.equal((await nextMessage(student)).toString(), 'pwd\n', 'the student keeps the connection when the teacher leaves');
    student.close();
    await closed(student);
    await waitFor(() => conn.socket.destroyed, 5000, 'the machine side closed with the last socket');
  });

  it("replays the console's recent output to each socket that joins: the teacher's first bytes show the guest's last prompt", async () => {
    await h.rt.add({ id: 'hanslab', userId: 'hans' });
    const echo = h.rt.onConnection;
    h.rt.onConnection = (c) => {
      c.socket.write('Debian GNU/Linux 12 web ttyS0\r\n\r\nweb login: ');
      echo(c);
    };
    try {
      const student = await open(h, '/ws/console/hanslab/web', ticketFor(h, { user: 'hans', instance: 'hanslab' }));
      const first = (await nextMessage(student)).toString();
      assert.match(first, /web login: $/, 'the student sees the login prompt the guest printed on its own');
      student.send(Buffer.from('student@web:~$ '));
      assert.equal((await nextMessage(student)).toString(), 'student@web:~$ ');
      const teacher = await open(h, '/ws/console/hanslab/web', ticketFor(h, { user: 'teacher', instance: 'hanslab', mode: 'view' }));
      const replay = (await nextMessage(teacher)).toString();
      assert.equal(replay, 'Debian GNU/Linux 12 web ttyS0\r\n\r\nweb login: student@web:~$ ', 'the first bytes end with the last prompt');
      student.send(Buffer.from('x'));
      assert.equal((await nextMessage(teacher)).toString(), 'x', 'then live output, nothing twice');
      teacher.close();
      student.close();
      await Promise.all([closed(teacher), closed(student)]);
    } finally {
      h.rt.onConnection = echo;
    }
  });

  it('drops keyboard and pointer events on a view-only desktop but keeps the viewer working', async () => {
    await h.rt.add({ id: 'davelab', userId: 'dave' });
    const prev = h.rt.onConnection;
    h.rt.onConnection = () => undefined;
    try {
      const ws = await open(h, '/ws/vnc/davelab/web', ticketFor(h, { user: 'teacher', instance: 'davelab', channel: 'vnc', mode: 'view' }));
      // split across frames on purpose: the filter must reassemble messages
      const stream = Buffer.concat([rfbHandshake, setEncodings, keyEvent, updateRequest, pointerEvent, keyEvent, updateRequest]);
      for (let i = 0; i < stream.length; i += 5) ws.send(stream.subarray(i, i + 5));
      const want = Buffer.concat([rfbHandshake, setEncodings, updateRequest, updateRequest]);
      await waitFor(() => h.rt.connections.some((c) => c.instance === 'davelab' && c.bytes() >= want.length), 5000, 'viewer traffic');
      const conn = h.rt.connections.find((c) => c.instance === 'davelab')!;
      // a key event let through would reach the machine before the close that follows it
      ws.close();
      await closed(ws);
      await waitFor(() => conn.socket.destroyed, 20_000, 'the machine side closed');
      assert.deepEqual(Buffer.concat(conn.received), want);
      assert.ok(!h.rt.activity.includes('davelab'), 'a viewer is not activity');
    } finally {
      h.rt.onConnection = prev;
    }
  });

  it('counts only user input as activity on a desktop', async () => {
    await h.rt.add({ id: 'evelab', userId: 'eve' });
    const ws = await open(h, '/ws/vnc/evelab/web', ticketFor(h, { user: 'eve', instance: 'evelab', channel: 'vnc' }));
    ws.send(Buffer.concat([rfbHandshake, setEncodings, updateRequest, updateRequest]));
    await waitFor(() => h.rt.connections.some((c) => c.instance === 'evelab' && c.bytes() >= rfbHandshake.length + setEncodings.length + 20), 5000, 'viewer traffic')
      .catch((err: Error) => {
        const seen = h.rt.connections.map((c) => `${c.instance || '?'}/${c.channel}:${c.bytes()}B${c.socket.destroyed ? ' closed' : ''}`).join(', ');
        throw new Error(`${err.message}; socket state ${ws.readyState}; machine side: ${seen}`);
      });
    assert.ok(!h.rt.activity.includes('evelab'), 'update requests are not user input');
    ws.send(keyEvent);
    await waitFor(() => h.rt.activity.includes('evelab'), 5000, 'activity noted for a key press');
    ws.close();
    await closed(ws);
  });

  it('keeps memory bounded for a slow reader under a 200 MB burst', async function () {
    this.timeout(120_000);
    const TOTAL = 200 * 1024 * 1024;
    await h.rt.add({ id: 'burstlab', userId: 'frank' });
    let sent = 0;
    let done = false;
    const prev = h.rt.onConnection;
    h.rt.onConnection = (c) => {
      const chunk = randomBytes(64 * 1024);
      const pump = () => {
        while (sent < TOTAL) {
          sent += chunk.length;
          if (!c.socket.write(chunk)) return void c.socket.once('drain', pump);
        }
        done = true;
      };
      pump();
    };
    const mem = () => { const m = process.memoryUsage(); return m.heapUsed + m.external + m.arrayBuffers; };
    // retained memory, not garbage awaiting collection: collect before measuring
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // twice, with a pause between: array-buffer backing stores are swept after the collection
    const retained = async () => { gc(); await new Promise((r) => setTimeout(r, 50)); gc(); return mem(); };
    try {
      const base = await retained();
      // a raw client, so the test controls exactly when bytes are read
      const t = ticketFor(h, { user: 'frank', instance: 'burstlab' });
      const sock = net.connect(Number(new URL(h.tool.url).port), '127.0.0.1');
      sock.write(`GET /ws/console/burstlab/web HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nOrigin: ${h.origin}\r\n` +
        `Sec-WebSocket-Protocol: lab.v1, ticket.${t}\r\n\r\n`);
      let received = 0;
      let head = '';
      await new Promise<void>((resolve) => {
        const onData = (d: Buffer) => {
          received += d.length;
          if (!head.includes('\r\n\r\n')) {
            head += d.toString('latin1');
            if (head.includes('\r\n\r\n')) { assert.match(head, /^HTTP\/1\.1 101/); resolve(); }
          }
        };
        sock.on('data', onData);
      });
      sock.pause();
      let peak = 0;
      const sampler = setInterval(() => { peak = Math.max(peak, mem() - base); }, 50);
      await new Promise((r) => setTimeout(r, 2000));
      const sentWhilePaused = sent;
      const heldWhilePaused = (await retained()) - base;
      // slow phase: a trickle, ~2 MB/s
      for (let i = 0; i < 20; i++) {
        sock.resume();
        await new Promise((r) => setTimeout(r, 2));
        sock.pause();
        await new Promise((r) => setTimeout(r, 98));
      }
      const sentWhileSlow = sent;
      const readWhileSlow = received;
      const heldWhileSlow = (await retained()) - base;
      sock.resume();
      await waitFor(() => done && received >= TOTAL, 90_000, 'the whole burst read');
      clearInterval(sampler);
      sock.destroy();
      assert.ok(sentWhilePaused < 32 * 1024 * 1024, `machine could write ${(sentWhilePaused / 1048576).toFixed(1)} MB while the browser read nothing`);
      assert.ok(sentWhileSlow - readWhileSlow < 32 * 1024 * 1024, `backlog ${((sentWhileSlow - readWhileSlow) / 1048576).toFixed(1)} MB behind a slow reader`);
      const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
      assert.ok(heldWhilePaused < 16 * 1024 * 1024, `holding ${mb(heldWhilePaused)} while the browser read nothing`);
      assert.ok(heldWhileSlow < 16 * 1024 * 1024, `holding ${mb(heldWhileSlow)} behind a slow reader`);
      // garbage from 200 MB of chunks is collected lazily; this only catches a runaway buffer
      assert.ok(peak < 160 * 1024 * 1024, `memory peaked ${mb(peak)} above the start`);
      console.log(`      burst: ${mb(sentWhilePaused)} in flight / ${mb(heldWhilePaused)} retained while paused; ${mb(heldWhileSlow)} retained while slow; peak ${mb(peak)} incl. garbage`);
    } finally {
      h.rt.onConnection = prev;
    }
  });

  // a nested describe runs after every test above it, nested ones included
  describe('after all of the above', () => {
    it('never wrote a ticket to the logs', () => {
      const logs = h.tool.rawLogs();
      assert.ok(h.issued.length > 20, `${h.issued.length} tickets issued`);
      for (const t of h.issued) {
        assert.ok(!logs.includes(t), 'ticket found in logs');
        assert.ok(!logs.includes(t.split('.')[1]!), 'ticket signature found in logs');
      }
      assert.match(logs, /ws\.refused/);
    });

    it('has the sweeper purge used tickets once they expire', async () => {
      assert.ok((await TicketUse.countDocuments()) > 0);
      await h.tool.sweeper.sweep(new Date(Date.now() + 5 * 60_000));
      assert.equal(await TicketUse.countDocuments(), 0);
    });
  });
});

describe('websocket proxy liveness', function () {
  this.timeout(30_000);
  let h: Harness;
  before(async () => {
    h = await harness({ WS_PING_INTERVAL_MS: '300', WS_IDLE_TIMEOUT_MS: '1500' });
    await h.rt.add({ id: 'alicelab', userId: 'alice' });
  });
  after(async () => {
    await h?.tool.shutdown();
    await h?.rt.close();
  });

  it('drops a client that stops answering pings', async () => {
    const quiet = (await connect(h, '/ws/console/alicelab/web', { ticket: ticketFor(h), autoPong: false })) as { ws: WebSocket };
    const t0 = Date.now();
    const c = await closed(quiet.ws);
    assert.equal(c.code, 1006);
    assert.ok(c.at - t0 < 2000, `dropped after ${c.at - t0} ms`);
    await waitFor(async () => (await activeSessions(h)) === 0, 2000, 'session released');
  });

  it('closes a desktop with "closed after inactivity" when only the viewer talks, not the user', async () => {
    const idle = await open(h, '/ws/vnc/alicelab/web', ticketFor(h, { channel: 'vnc' }));
    const t0 = Date.now();
    const timer = setInterval(() => idle.send(updateRequest), 200);
    idle.send(Buffer.concat([rfbHandshake, setEncodings]));
    const c = await closed(idle);
    clearInterval(timer);
    assert.deepEqual([c.code, c.reason], [4004, 'closed after inactivity']);
    assert.ok(c.at - t0 >= 1400, `closed after ${c.at - t0} ms`);
  });

  it('keeps a desktop open while the user types', async () => {
    const busy = await open(h, '/ws/vnc/alicelab/web', ticketFor(h, { channel: 'vnc' }));
    busy.send(Buffer.concat([rfbHandshake, setEncodings]));
    // typing on every ping (300 ms apart) for longer than the idle limit (1.5 s): eight pings
    for (let i = 0; i < 8; i++) {
      await nextPing(busy);
      busy.send(keyEvent);
    }
    assert.equal(busy.readyState, WebSocket.OPEN);
    busy.close();
    await closed(busy);
  });

  it('closes with "session expired" when the session that asked for the ticket ends', async () => {
    const ws = await open(h, '/ws/console/alicelab/web', ticketFor(h, { sessionExp: Date.now() + 500 }));
    const c = await closed(ws);
    assert.deepEqual([c.code, c.reason], [4002, 'session expired']);
  });

  it('keeps a client that answers pings', async () => {
    const ws = await open(h, '/ws/console/alicelab/web', ticketFor(h));
    // five pings answered (a client that did not answer is dropped at the next one); typing keeps it from idling
    for (let i = 0; i < 5; i++) {
      await nextPing(ws);
      ws.send(Buffer.from(' '));
    }
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
    await closed(ws);
  });
});
