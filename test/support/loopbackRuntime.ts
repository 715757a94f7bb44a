/**
 * A LabRuntime for proxy and page tests whose machines are a loopback TCP sink: it stands for
 * the backend (the thing the proxy dials), not for the proxy. Counts every dial, records what each
 * connection received, and lets a test decide what the "machine" sends back (echo by default).
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { ChannelKind, MachineStatus } from '../../src/backends/types.js';
import type { InstanceKey, LabEvent, LabRuntime, RenderedInstructions, StepTickResult } from '../../src/labs/contracts.js';
import { LabInstance, type InstanceState, type LabInstanceDoc } from '../../src/store/LabInstance.js';
import { Conflict, NotFound } from '../../src/errors.js';
import { pino } from 'pino';
import { KeyedMutex } from '../../src/KeyedMutex.js';
import { StepTicks } from '../../src/labs/StepTicks.js';
import type { ScorePublisher } from '../../src/labs/score.js';
import { thumbnailPng } from '../../src/backends/thumbnail.js';

/** A desktop-like screen: a gradient background, a panel, and a window that moves with `n`. */
export function screenPpm(width: number, height: number, n: number): Buffer {
  const head = Buffer.from(`P6\n${width} ${height}\n255\n`, 'latin1');
  const px = Buffer.alloc(width * height * 3);
  const wx = (n * 37) % Math.max(1, width - 300);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inWindow = x >= wx && x < wx + 300 && y >= 120 && y < 420;
      const panel = y < 24;
      px[i] = panel ? 40 : inWindow ? 240 : 30 + ((x * 90) / width) | 0;
      px[i + 1] = panel ? 40 : inWindow ? 240 : 60 + ((y * 120) / height) | 0;
      px[i + 2] = panel ? 48 : inWindow ? (x ^ y) & 0xff : 120;
    }
  }
  return Buffer.concat([head, px]);
}

export interface SinkConnection {
  instance: string;
  machine: string;
  channel: ChannelKind;
  socket: net.Socket;
  received: Buffer[];
  bytes(): number;
}

export class LoopbackRuntime implements LabRuntime {
  readonly connections: SinkConnection[] = [];
  readonly activity: string[] = [];
  dials = 0;
  /** What the machine does with a new connection (default: echo). */
  onConnection: (c: SinkConnection) => void = (c) => c.socket.on('data', (d: Buffer) => c.socket.write(d));
  private readonly events = new EventEmitter();
  /** Where step scores go: a test plugs the tool's grade service in, as the composition root does for LabService. */
  grades: ScorePublisher | undefined;
  private readonly stepTicks = new StepTicks({
    lock: new KeyedMutex(), emit: (e) => this.emit(e), log: pino({ level: 'silent' }),
    grades: { publish: (id, score) => (this.grades ? this.grades.publish(id, score) : Promise.reject(new Error('no grades plugged in'))) },
  });
  private readonly servers: Partial<Record<ChannelKind, net.Server>> = {};

  constructor() {
    this.events.setMaxListeners(0);
  }

  /** One sink per channel kind, so a sink knows at accept time what it serves (RFB speaks first). */
  async listen(): Promise<this> {
    for (const channel of ['vnc', 'console'] as const) {
      const server = net.createServer((socket) => {
        const received: Buffer[] = [];
        // instance and machine are filled in by openChannel once it knows which socket is its own
        const c: SinkConnection = { instance: '', machine: '', channel, socket, received, bytes: () => received.reduce((n, b) => n + b.length, 0) };
        socket.on('data', (d: Buffer) => received.push(d));
        socket.on('error', () => undefined);
        this.connections.push(c);
        this.onConnection(c);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      this.servers[channel] = server;
    }
    return this;
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await Promise.all(Object.values(this.servers).map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  /** Add a running instance with the given machines (stored in the real database, as LabService would). */
  async add(o: { id: string; userId: string; contextId?: string; labId?: string; machines?: string[]; state?: InstanceState; steps?: Record<string, Date> }): Promise<LabInstanceDoc> {
    const now = new Date();
    const doc: LabInstanceDoc = {
      _id: o.id, activityId: `act-${o.id}`, userId: o.userId, contextId: o.contextId ?? 'course-1', labId: o.labId ?? 'demo-lab', labVersion: '1',
      backend: 'qemu', handle: { instanceId: o.id, backend: 'qemu', name: o.id, generation: 1 }, generation: 1,
      state: o.state ?? 'running', failureReason: null, progress: { phase: 'machines-booted', percent: 100, message: 'ready' },
      machines: Object.fromEntries((o.machines ?? ['web']).map((m) => [m, {}])), steps: o.steps ?? {},
      createdAt: now, updatedAt: now, startedAt: now, expiresAt: new Date(now.getTime() + 3600_000), lastActivityAt: null,
      lifetime: { maxMinutes: 60, idleMinutes: 30, pausable: true, warnBeforeMinutes: 5 }, warnedAt: null, timeLimitMinutes: null,
    };
    await LabInstance.create(doc);
    return doc;
  }

  /** Force a state (and its event), e.g. 'failed', as the runtime would after a failure. */
  setStateForTest(id: string, state: InstanceState): Promise<void> {
    return this.setState(id, state);
  }

  private async setState(id: string, state: InstanceState): Promise<void> {
    const d = await LabInstance.findOneAndUpdate({ _id: id }, { $set: { state } }, { new: true });
    if (!d) throw new NotFound('no such lab');
    this.emit({ type: 'state', instanceId: id, state });
  }

  async ensureInstance(key: InstanceKey): Promise<LabInstanceDoc> {
    const found = (await LabInstance.findOne({ activityId: key.activityId, userId: key.userId }).lean()) as LabInstanceDoc | null;
    return found ?? this.add({ id: `i${Date.now().toString(36)}`, userId: key.userId, contextId: key.contextId });
  }
  async start(id: string): Promise<LabInstanceDoc> {
    await this.setState(id, 'running');
    return (await this.get(id))!;
  }
  async get(id: string): Promise<LabInstanceDoc | undefined> {
    return ((await LabInstance.findById(id).lean()) as LabInstanceDoc | null) ?? undefined;
  }
  async pause(id: string): Promise<void> { await this.setState(id, 'paused'); }
  async resume(id: string): Promise<void> { await this.setState(id, 'running'); }
  async stop(id: string): Promise<void> { await this.setState(id, 'stopped'); }
  readonly resets: Array<{ id: string; machine: string | undefined }> = [];
  async reset(id: string, machine?: string): Promise<void> {
    this.resets.push({ id, machine });
    for (const c of this.connections) if (c.instance === id && (!machine || c.machine === machine)) c.socket.destroy();
  }
  async destroy(id: string): Promise<void> { await this.setState(id, 'destroyed'); }
  tickStep(id: string, stepId: string, done: boolean, lab: Pick<RenderedInstructions, 'steps' | 'grading'>): Promise<StepTickResult> {
    return this.stepTicks.tick(id, stepId, done, lab);
  }
  async status(id: string): Promise<Record<string, MachineStatus>> {
    const d = await this.get(id);
    if (!d) throw new NotFound('no such lab');
    return Object.fromEntries(Object.keys(d.machines).map((m) => [m, { phase: d.state === 'running' ? 'running' : 'stopped' } as MachineStatus]));
  }

  async openChannel(id: string, machine: string, channel: ChannelKind): Promise<Duplex> {
    this.dials++;
    const d = await this.get(id);
    if (!d || !(machine in d.machines)) throw new NotFound(`no machine ${machine}`, { publicMessage: 'This machine does not exist.' });
    if (d.state !== 'running') throw new Conflict('lab not running', { publicMessage: 'lab stopped' });
    const addr = this.servers[channel]!.address() as AddressInfo;
    const s = net.connect(addr.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    for (let i = 0; i < 100; i++) {
      // only a connection no dial has claimed yet: a closed one keeps the port it had, which a new dial may get again
      const c = this.connections.find((x) => x.instance === '' && !x.socket.destroyed && x.socket.remotePort === s.localPort);
      if (c) {
        Object.assign(c, { instance: id, machine, channel });
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return s;
  }

  /** Every screenshot asked of this "backend", in order. */
  readonly screenshots: Array<{ id: string; machine: string }> = [];
  /** Every console history read, in order. */
  readonly historyReads: Array<{ id: string; machine: string }> = [];
  /** What each machine's console printed, as the backend would keep it (a test fills it in). */
  readonly consoleLogs = new Map<string, Buffer>();
  /** The screen each screenshot decodes: a PPM of this size, as QEMU's screendump writes it. */
  screenSize = { width: 1024, height: 768 };
  private readonly screens = new Map<string, Buffer>();

  /** How long a screenshot takes (ms), and the most that ran at once. */
  screenshotDelayMs = 0;
  maxConcurrentScreenshots = 0;
  private screenshotsRunning = 0;

  async screenshot(id: string, machine: string): Promise<Buffer> {
    this.screenshots.push({ id, machine });
    this.maxConcurrentScreenshots = Math.max(this.maxConcurrentScreenshots, ++this.screenshotsRunning);
    try {
      if (this.screenshotDelayMs) await new Promise((r) => setTimeout(r, this.screenshotDelayMs));
      return await this.takeScreenshot(id, machine);
    } finally {
      this.screenshotsRunning--;
    }
  }

  private async takeScreenshot(id: string, machine: string): Promise<Buffer> {
    const d = await this.get(id);
    if (!d || !(machine in d.machines)) throw new NotFound(`no machine ${machine}`, { publicMessage: 'This machine does not exist.' });
    if (d.state !== 'running' && d.state !== 'paused') throw new Conflict('lab not running', { publicMessage: 'lab stopped' });
    // eight screens drawn once: the stand-in's drawing is not what a screenshot costs the tool
    const n = this.screenshots.length % 8;
    const key = `${this.screenSize.width}x${this.screenSize.height}/${n}`;
    let ppm = this.screens.get(key);
    if (!ppm) this.screens.set(key, (ppm = screenPpm(this.screenSize.width, this.screenSize.height, n)));
    // what the tool does with a QEMU screendump: decode, scale down, encode
    return thumbnailPng(ppm);
  }

  async consoleHistory(id: string, machine: string, maxBytes: number): Promise<Buffer | null> {
    this.historyReads.push({ id, machine });
    const log = this.consoleLogs.get(`${id}/${machine}`);
    return log ? log.subarray(Math.max(0, log.length - maxBytes)) : null;
  }

  noteActivity(id: string): void {
    this.activity.push(id);
  }
  subscribe(id: string, listener: (e: LabEvent) => void): () => void {
    const l = (e: LabEvent) => { if (e.instanceId === id) listener(e); };
    this.events.on('event', l);
    return () => this.events.off('event', l);
  }
  emit(e: LabEvent): void {
    this.events.emit('event', e);
  }
}
