/**
 * Websocket proxy vs its floors between the same two ends (a loopback TCP sink that echoes, standing
 * for the guest's VNC/serial socket): a plain Node TCP relay, and a bare websocket-to-TCP relay
 * (websockify's job and nothing else: no ticket, no fanout, no metrics).
 *   throughput (MB/s, one session, each way; the median of WS_BENCH_ROUNDS rounds of the three
 *     paths back to back): the browser is a process of its own
 *     (throughputClient.mts), as in real use, so the websocket client's masking and framing are not
 *     charged to the proxy; the proxy, the relays and the sink share this process;
 *   round-trip latency of 32-byte frames (1 session, then with 50 busy sessions streaming beside it),
 *   memory per idle session over 1,000 sessions, and heap growth over 10,000 open/close cycles: the
 *     clients in this process (the same for every column).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { startTestTool, type TestTool } from '../test/support/tool.js';
import { LoopbackRuntime } from '../test/support/loopbackRuntime.js';
import { TicketService } from '../src/proxy/tickets.js';
import { forkChild, gc, openWebSocket, pct, type BenchRow, type ChildLink } from './lib.mjs';
import type { FromClient, Job, Target, ToClient } from './throughputClient.mjs';

const SECRET_KEY = 'bench-ws-proxy-secret-key-0123456789abcdef';
const MB = Number(process.env.WS_BENCH_MB ?? 200);
const ROUNDS = Number(process.env.WS_BENCH_ROUNDS ?? 5);
const RTTS = Number(process.env.WS_BENCH_RTTS ?? 2000);
const IDLE = Number(process.env.WS_BENCH_IDLE ?? 1000);
const CYCLES = Number(process.env.WS_BENCH_CYCLES ?? 10_000);

interface Conn {
  send(b: Buffer): void;
  onData(fn: (b: Buffer) => void): void;
  close(): Promise<void>;
  /** Bytes queued but not yet handed to the kernel. */
  buffered(): number;
}

interface Path {
  open(i: number): Promise<Conn>;
  /** Where a browser in another process connects for session i. */
  target(i: number): Promise<Target>;
}

function wsPath(tool: TestTool, rt: LoopbackRuntime, tickets: TicketService): Path {
  const origin = new URL(tool.publicUrl).origin;
  const base = tool.url.replace(/^http/, 'ws');
  const added = new Set<string>();
  const target = async (i: number): Promise<Target> => {
    const id = `b${i}`;
    if (!added.has(id)) { added.add(id); await rt.add({ id, userId: `u${i}`, machines: ['m'] }); }
    const { ticket } = tickets.issue({ user: `u${i}`, instance: id, machine: 'm', channel: 'console', mode: 'control' });
    return { kind: 'ws', url: `${base}/ws/console/${id}/m`, protocols: ['lab.v1', `ticket.${ticket}`], headers: { origin } };
  };
  return { target, open: async (i) => connect(await target(i)) };
}

async function relayPath(sinkPort: number): Promise<{ path: Path; close(): Promise<void> }> {
  const relay = net.createServer((client) => {
    const up = net.connect(sinkPort, '127.0.0.1');
    client.pipe(up).pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const port = (relay.address() as AddressInfo).port;
  return {
    path: {
      target: async () => ({ kind: 'tcp', port }),
      async open() {
        const s = net.connect(port, '127.0.0.1');
        s.setNoDelay(true);
        await new Promise<void>((r, j) => { s.once('connect', r); s.once('error', j); });
        return {
          send: (b) => void s.write(b),
          onData: (fn) => s.on('data', fn),
          buffered: () => s.writableLength,
          close: () => new Promise<void>((r) => { s.once('close', () => r()); s.end(); s.destroy(); }),
        };
      },
    },
    close: () => new Promise<void>((r) => relay.close(() => r())),
  };
}

/** websockify's job alone: each websocket to one TCP connection to the sink, backpressure both ways. */
async function wsRelayPath(sinkPort: number): Promise<{ path: Path; close(): Promise<void> }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  server.on('connection', (ws) => {
    const up = net.connect(sinkPort, '127.0.0.1');
    up.setNoDelay(true);
    let queued = 0;
    ws.on('message', (d: Buffer) => {
      if (!up.write(d)) { ws.pause(); up.once('drain', () => ws.resume()); }
    });
    up.on('data', (d: Buffer) => {
      queued += d.length;
      if (queued > 2 ** 20) up.pause();
      ws.send(d, { binary: true }, () => { queued -= d.length; if (queued <= 2 ** 19) up.resume(); });
    });
    ws.on('close', () => up.destroy());
    ws.on('error', () => up.destroy());
    up.on('close', () => ws.close());
    up.on('error', () => ws.terminate());
  });
  await new Promise<void>((r) => server.once('listening', () => r()));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    path: { target: async () => ({ kind: 'ws', url, protocols: [], headers: {} }), open: () => wsClient(url, []) },
    close: () => new Promise<void>((r) => { for (const c of server.clients) c.terminate(); server.close(() => r()); }),
  };
}

function connect(t: Target): Promise<Conn> {
  if (t.kind !== 'ws') throw new Error('in-process clients of the tool are websockets');
  return wsClient(t.url, t.protocols, t.headers);
}

/** The bench's browser: a websocket client (the same for the proxy and the bare websocket relay). */
async function wsClient(url: string, protocols: string[], headers: Record<string, string> = {}): Promise<Conn> {
  const ws = await openWebSocket(url, protocols, headers);
  return {
    send: (b) => ws.send(b, { binary: true }),
    onData: (fn) => ws.on('message', (d: Buffer) => fn(d)),
    buffered: () => ws.bufferedAmount,
    close: () => new Promise<void>((r) => { if (ws.readyState === ws.CLOSED) return r(); ws.once('close', () => r()); ws.close(); }),
  };
}

/** A browser in its own process with one job (see throughputClient.mts). */
function browserProcess(job: Job): ChildLink<FromClient, ToClient> {
  const link = forkChild<FromClient, ToClient>(new URL('./throughputClient.mts', import.meta.url), 'the browser process');
  link.send({ msg: 'job', job });
  return link;
}

/** MB/s browser → machine through one session: the sink counts what arrives (it does not echo here). */
async function throughput(p: Path, rt: LoopbackRuntime, i: number): Promise<number> {
  const total = MB * 2 ** 20;
  let arrived: (() => void) | undefined;
  const prev = rt.onConnection;
  // count without keeping: the loopback sink would otherwise hold every byte it received
  rt.onConnection = (conn) => {
    let n = 0;
    conn.socket.removeAllListeners('data');
    conn.socket.on('data', (d: Buffer) => { n += d.length; if (n >= total) arrived?.(); });
  };
  const client = browserProcess({ dir: 'up', target: await p.target(i), bytes: total });
  try {
    await client.next(); // ready
    const done = new Promise<void>((r) => { arrived = r; });
    const t0 = performance.now();
    client.send({ msg: 'go' });
    await done;
    return MB / ((performance.now() - t0) / 1000);
  } finally {
    rt.onConnection = prev;
    await client.stop({ msg: 'close' });
  }
}

/**
 * MB/s from the machine to the browser through one session (the direction a desktop's framebuffer
 * and a console's output take): the sink writes as fast as the path drains, the browser counts.
 */
async function downloadThroughput(p: Path, rt: LoopbackRuntime, i: number): Promise<number> {
  const total = MB * 2 ** 20;
  const chunk = Buffer.alloc(64 * 1024, 7);
  let t0 = 0;
  const prev = rt.onConnection;
  rt.onConnection = (conn) => {
    let sent = 0;
    t0 = performance.now();
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!conn.socket.write(chunk)) return void conn.socket.once('drain', pump);
      }
    };
    pump();
  };
  const client = browserProcess({ dir: 'down', target: await p.target(i), bytes: total });
  try {
    await client.next(); // ready
    await client.next(); // done
    return MB / ((performance.now() - t0) / 1000);
  } finally {
    rt.onConnection = prev;
    await client.stop({ msg: 'close' });
  }
}

/** Round-trip times (ms) of 32-byte frames on one session, optionally beside `busy` streaming sessions. */
async function latency(p: Path, base: number, busy: number): Promise<number[]> {
  const busyConns = await Promise.all(Array.from({ length: busy }, (_, k) => p.open(base + 1 + k)));
  let stop = false;
  const payload = Buffer.alloc(4096, 1);
  const timers = busyConns.map((c) => { c.onData(() => undefined); return setInterval(() => { if (!stop && c.buffered() < 2 ** 20) c.send(payload); }, 10); });
  const c = await p.open(base);
  const frame = Buffer.alloc(32, 2);
  const times: number[] = [];
  let waiter: (() => void) | undefined;
  let got = 0;
  c.onData((d) => { got += d.length; if (got >= 32) { got -= 32; waiter?.(); } });
  for (let i = 0; i < RTTS; i++) {
    const t0 = performance.now();
    await new Promise<void>((r) => { waiter = r; c.send(frame); });
    times.push(performance.now() - t0);
  }
  stop = true;
  timers.forEach(clearInterval);
  await Promise.all([c, ...busyConns].map((x) => x.close()));
  return times.slice(Math.floor(RTTS / 10)); // drop warm-up
}

async function memoryPerSession(p: Path, base: number): Promise<{ perSessionKiB: number }> {
  gc(); gc();
  const m0 = process.memoryUsage();
  const conns: Conn[] = [];
  for (let i = 0; i < IDLE; i += 50) conns.push(...(await Promise.all(Array.from({ length: Math.min(50, IDLE - i) }, (_, k) => p.open(base + i + k)))));
  await new Promise((r) => setTimeout(r, 200));
  gc(); gc();
  const m1 = process.memoryUsage();
  await Promise.all(conns.map((c) => c.close()));
  // heap + external (Buffers) is what sessions cost in this process; RSS is too coarse to attribute
  const delta = (m1.heapUsed + m1.external) - (m0.heapUsed + m0.external);
  return { perSessionKiB: delta / IDLE / 1024 };
}

async function growth(p: Path, base: number, rt: LoopbackRuntime): Promise<number> {
  // the loopback sink keeps every connection it saw (with what it received): drop the closed ones, so
  // what is measured is the tool's memory, not the harness's
  const prune = () => { const open = rt.connections.filter((c) => !c.socket.destroyed); rt.connections.length = 0; rt.connections.push(...open); };
  const cycle = async (n: number) => {
    for (let i = 0; i < n; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, n - i) }, async (_, k) => (await p.open(base + ((i + k) % 200))).close()));
      if (i % 1000 === 0) prune();
    }
    prune();
  };
  await cycle(1000);
  await new Promise((r) => setTimeout(r, 200));
  gc(); gc();
  const h0 = process.memoryUsage().heapUsed;
  await cycle(CYCLES);
  await new Promise((r) => setTimeout(r, 500));
  gc(); gc();
  return ((process.memoryUsage().heapUsed - h0) / h0) * 100;
}

export async function run(): Promise<BenchRow[]> {
  const rt = await new LoopbackRuntime().listen();
  const tool = await startTestTool({ SECRET_KEY, LOG_LEVEL: 'warn', WS_MAX_PER_USER: '1000' }, { runtime: rt });
  // the relay dials the same console sink the runtime's openChannel dials
  const sinkPort = (rt as unknown as { servers: { console: net.Server } }).servers.console.address() as AddressInfo;
  const relay = await relayPath(sinkPort.port);
  const wsRelay = await wsRelayPath(sinkPort.port);
  const ws = wsPath(tool, rt, new TicketService(SECRET_KEY));
  const rows: BenchRow[] = [];
  const B = 'ws proxy';
  try {
    // a transfer takes a fraction of a second and the machine's speed drifts by more than that
    // between transfers: ROUNDS rounds, each running the three paths back to back, medians compared
    const columns = { relay: relay.path, wsRelay: wsRelay.path, ours: ws };
    const up = { relay: [] as number[], wsRelay: [] as number[], ours: [] as number[] };
    const down = { relay: [] as number[], wsRelay: [] as number[], ours: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) for (const [k, path] of Object.entries(columns) as Array<[keyof typeof columns, Path]>) up[k].push(await throughput(path, rt, 0));
    for (let r = 0; r < ROUNDS; r++) for (const [k, path] of Object.entries(columns) as Array<[keyof typeof columns, Path]>) down[k].push(await downloadThroughput(path, rt, 1));
    const median = (xs: number[]) => pct(xs, 50);
    const perRound = (m: typeof up, floor: 'relay' | 'wsRelay') => {
      const ratios = m.ours.map((v, i) => v / m[floor][i]!).sort((a, b) => a - b);
      return `median of ${ROUNDS} rounds; ratio per round ${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)}`;
    };
    for (const [dir, m] of [['browser → machine', up], ['machine → browser', down]] as const) {
      const [tWs, tRelay, tWsRelay] = [median(m.ours), median(m.relay), median(m.wsRelay)];
      rows.push({ bench: B, metric: `throughput ${dir}, vs TCP relay`, value: tWs, floor: tRelay, unit: 'MB/s', goal: 'ratio ≥ 0.8', meets: tWs / tRelay >= 0.8, note: perRound(m, 'relay') });
      rows.push({ bench: B, metric: `throughput ${dir}, vs bare websocket relay`, value: tWs, floor: tWsRelay, unit: 'MB/s', goal: 'ratio ≥ 0.8', meets: tWs / tWsRelay >= 0.8, note: perRound(m, 'wsRelay') });
    }

    for (const busy of [0, 50]) {
      const lr = await latency(relay.path, 10_000, busy);
      const lw = await latency(ws, 10_000, busy);
      const goal = busy === 0 ? 2 : 5;
      for (const q of [50, 99]) {
        const added = pct(lw, q) - pct(lr, q);
        rows.push({
          bench: B, metric: `RTT p${q}, 32 B frames, ${busy} busy`, value: pct(lw, q), floor: pct(lr, q), unit: 'ms',
          goal: q === 99 ? `added ≤ ${goal} ms` : 'n/a', meets: q === 99 ? added <= goal : undefined, note: `added ${added.toFixed(3)} ms`,
        });
      }
    }

    const mr = await memoryPerSession(relay.path, 20_000);
    const mwr = await memoryPerSession(wsRelay.path, 20_000);
    const mw = await memoryPerSession(ws, 20_000);
    rows.push({ bench: B, metric: `memory per idle session (${IDLE}), vs TCP relay`, value: mw.perSessionKiB, floor: mr.perSessionKiB, unit: 'KiB', goal: '≤ 2× floor', meets: mw.perSessionKiB <= 2 * mr.perSessionKiB, note: 'heap+external of this process (client, proxy and sink sides for both)' });
    rows.push({ bench: B, metric: `memory per idle session (${IDLE}), vs bare websocket relay`, value: mw.perSessionKiB, floor: mwr.perSessionKiB, unit: 'KiB', goal: '≤ 2× floor', meets: mw.perSessionKiB <= 2 * mwr.perSessionKiB, note: 'both with the websocket client in this process' });

    const gw = await growth(ws, 30_000, rt);
    rows.push({ bench: B, metric: `heap growth after ${CYCLES} open/close`, value: gw, unit: '%', goal: '≤ 5 %', meets: gw <= 5 });
  } finally {
    await relay.close();
    await wsRelay.close();
    await tool.shutdown();
    await rt.close();
  }
  return rows;
}
