/**
 * Pipes an accepted websocket to a machine channel (LabRuntime.openChannel) and owns the socket's
 * whole life: backpressure both ways, pings, the idle limit (user input only), per-user caps, one
 * connection per (user, instance, machine, channel), and exactly one close with a reason the page
 * can show. Lab events close the sockets of a lab that stops, pauses or expires.
 */
import type { WebSocket, RawData } from 'ws';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { LabEvent, LabRuntime } from '../labs/contracts.js';
import { AppError, wsCloseFor } from '../errors.js';
import type { TicketClaims } from './tickets.js';
import { RfbClientFilter } from './rfbClientFilter.js';
import { CLOSE } from '../closeCodes.js';
import { UpstreamFanout, type FanoutSubscriber } from './UpstreamFanout.js';

export { CLOSE } from '../closeCodes.js';

export interface ChannelProxyOptions {
  runtime: LabRuntime;
  log: Logger;
  metrics: Metrics;
  pingIntervalMs: number;
  /** No user input for this long closes the socket. */
  idleTimeoutMs: number;
  maxPerUser: number;
  /** Bytes queued towards the browser before the machine side is paused. */
  highWaterBytes?: number;
}

const NOTE_ACTIVITY_EVERY_MS = 5_000;

export class ChannelProxy {
  private readonly sessions = new Set<ProxySession>();
  /** Shared console connections by instance/machine (a dial in progress is a promise). */
  private readonly consoles = new Map<string, Promise<UpstreamFanout>>();
  constructor(readonly o: ChannelProxyOptions) {}

  /** The machine side for a session: a new private one for a desktop, the shared one for a console. */
  async upstreamFor(c: TicketClaims): Promise<UpstreamFanout> {
    const high = this.o.highWaterBytes ?? 1 << 20;
    if (c.channel !== 'console') {
      const up = await this.o.runtime.openChannel(c.instance, c.machine, c.channel);
      return new UpstreamFanout(up, false, high, () => undefined);
    }
    const key = `${c.instance}/${c.machine}`;
    let p = this.consoles.get(key);
    if (!p) {
      p = this.o.runtime.openChannel(c.instance, c.machine, 'console').then((up) => {
        const f: UpstreamFanout = new UpstreamFanout(up, true, high, () => {
          if (this.consoles.get(key) === p) this.consoles.delete(key);
        });
        return f;
      });
      this.consoles.set(key, p);
      p.catch(() => { if (this.consoles.get(key) === p) this.consoles.delete(key); });
    }
    return p;
  }

  /** Open sessions (optionally of one user), for caps and tests. */
  count(user?: string): number {
    let n = 0;
    for (const s of this.sessions) if (!user || s.claims.user === user) n++;
    return n;
  }

  /**
   * Serve an upgraded socket whose ticket was verified and consumed. Checks ownership and the
   * per-user cap before dialing the machine.
   */
  async attach(ws: WebSocket, claims: TicketClaims): Promise<void> {
    const s = new ProxySession(this, ws, claims);
    const same = [...this.sessions].find((x) => x.sameSeat(claims));
    if (!same && this.count(claims.user) >= this.o.maxPerUser) return s.close(CLOSE.tooMany);
    this.sessions.add(s);
    s.onClosed = () => this.sessions.delete(s);
    same?.close(CLOSE.otherTab);
    await s.start();
  }

  closeAll(c: { code: number; reason: string } = CLOSE.shutdown): void {
    for (const s of [...this.sessions]) s.close(c);
  }
}

class ProxySession implements FanoutSubscriber {
  onClosed: (() => void) | undefined;
  private closed = false;
  private fanout: UpstreamFanout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private alive = true;
  private lastNote = 0;
  private counted = false;
  private queuedBytes = 0;
  private readonly filter: RfbClientFilter | undefined;
  private readonly log: Logger;
  private readonly bytes = { up: 0, down: 0 };
  readonly controls: boolean;

  constructor(private readonly proxy: ChannelProxy, private readonly ws: WebSocket, readonly claims: TicketClaims) {
    this.log = proxy.o.log.child({ instance: claims.instance, machine: claims.machine, channel: claims.channel, mode: claims.mode });
    this.filter = claims.channel === 'vnc' ? new RfbClientFilter(claims.mode === 'view') : undefined;
    this.controls = claims.mode === 'control';
  }

  sameSeat(c: TicketClaims): boolean {
    const m = this.claims;
    return m.user === c.user && m.instance === c.instance && m.machine === c.machine && m.channel === c.channel;
  }

  async start(): Promise<void> {
    const { runtime, metrics, pingIntervalMs } = this.proxy.o;
    const c = this.claims;
    metrics.wsSessions.inc({ channel: c.channel });
    this.counted = true;
    // nothing from the browser is read until the machine side is there to take it
    this.ws.pause();
    this.ws.on('close', (code) => this.close({ code, reason: 'client closed' }, { fromClient: true }));
    this.ws.on('error', (err) => {
      this.log.info({ err: err.message }, 'ws.client_error');
      this.close({ code: 1002, reason: 'protocol error' });
    });
    this.ws.on('pong', () => { this.alive = true; });
    this.timers.push(setInterval(() => this.ping(), pingIntervalMs));
    if (c.sessionExp !== undefined) {
      this.timers.push(setTimeout(() => this.close(CLOSE.sessionExpired), Math.min(2 ** 31 - 1, Math.max(0, c.sessionExp - Date.now()))));
    }
    this.resetIdle();
    this.unsubscribe = runtime.subscribe(c.instance, (e) => this.onLabEvent(e));
    let fanout: UpstreamFanout;
    try {
      const inst = await runtime.get(c.instance);
      if (!inst) return this.close(CLOSE.notFound);
      if (c.mode === 'control' && inst.userId !== c.user) return this.close(CLOSE.notYourLab);
      if (this.closed) return;
      fanout = await this.proxy.upstreamFor(c);
    } catch (err) {
      const reason = err instanceof AppError ? err.publicMessage : 'could not reach the machine';
      if (!(err instanceof AppError)) this.log.warn({ err }, 'ws.dial_failed');
      return this.close({ code: wsCloseFor(err), reason });
    }
    this.fanout = fanout;
    fanout.join(this);
    if (this.closed) return fanout.leave(this);
    this.ws.on('message', (data: RawData) => this.fromBrowser(fanout, toBuffer(data)));
    this.ws.resume();
    this.log.info({ shared: fanout.shared && fanout.size > 1 }, 'ws.opened');
  }

  queued(): number {
    return this.queuedBytes;
  }

  deliver(chunk: Buffer): void {
    if (this.closed) return;
    this.bytes.down += chunk.length;
    this.proxy.o.metrics.wsBytes.inc({ channel: this.claims.channel, direction: 'to_browser' }, chunk.length);
    this.queuedBytes += chunk.length;
    this.ws.send(chunk, { binary: true }, () => {
      this.queuedBytes -= chunk.length;
      this.fanout?.drained();
    });
  }

  upstreamEnded(): void {
    this.close(CLOSE.upstreamClosed);
  }

  private fromBrowser(up: UpstreamFanout, data: Buffer): void {
    if (this.closed) return;
    let forward = data;
    let input = data.length > 0;
    if (this.filter) {
      try {
        ({ forward, input } = this.filter.push(data));
      } catch (err) {
        return this.close({ code: CLOSE.policy.code, reason: err instanceof AppError ? err.publicMessage : 'bad VNC message' });
      }
    } else if (!this.controls) {
      forward = Buffer.alloc(0); // a read-only console: nothing typed reaches the machine
    }
    if (input && this.controls) this.noteInput();
    if (forward.length === 0) return;
    this.bytes.up += forward.length;
    this.proxy.o.metrics.wsBytes.inc({ channel: this.claims.channel, direction: 'to_machine' }, forward.length);
    if (!up.write(forward)) {
      this.ws.pause();
      up.up.once('drain', () => { if (!this.closed) this.ws.resume(); });
    }
  }

  private noteInput(): void {
    this.resetIdle();
    const now = Date.now();
    if (now - this.lastNote >= NOTE_ACTIVITY_EVERY_MS) {
      this.lastNote = now;
      this.proxy.o.runtime.noteActivity(this.claims.instance);
    }
  }

  private resetIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.close(CLOSE.idle), this.proxy.o.idleTimeoutMs);
  }

  private ping(): void {
    if (!this.alive) {
      this.log.info('ws.ping_timeout');
      return this.close({ code: 1006, reason: 'no answer to ping' }, { terminate: true });
    }
    this.alive = false;
    this.ws.ping();
  }

  private onLabEvent(e: LabEvent): void {
    if (e.type !== 'state') return;
    if (e.state === 'stopped' || e.state === 'destroyed' || e.state === 'failed') this.close(CLOSE.labStopped);
    else if (e.state === 'paused') this.close(CLOSE.labPaused);
    else if (e.state === 'expired') this.close(CLOSE.labExpired);
  }

  /** The one way out: idempotent, releases everything, tells the browser why (once). */
  close(c: { code: number; reason: string }, o: { terminate?: boolean; fromClient?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.unsubscribe?.();
    this.fanout?.leave(this);
    if (o.terminate) this.ws.terminate();
    else if (!o.fromClient) {
      // a paused socket would never read the browser's answer to our close frame
      this.ws.resume();
      this.ws.close(c.code, c.reason.slice(0, 120));
    }
    if (this.counted) this.proxy.o.metrics.wsSessions.dec({ channel: this.claims.channel });
    this.onClosed?.();
    this.log.info({ code: c.code, reason: c.reason, bytesToMachine: this.bytes.up, bytesToBrowser: this.bytes.down }, 'ws.closed');
  }
}

function toBuffer(d: RawData): Buffer {
  if (Buffer.isBuffer(d)) return d;
  if (Array.isArray(d)) return Buffer.concat(d);
  return Buffer.from(d);
}
