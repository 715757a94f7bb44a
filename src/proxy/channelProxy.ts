/**
 * Pipes an accepted websocket to a machine channel (LabRuntime.openChannel) and owns the socket's
 * whole life: backpressure both ways, pings, the idle limit (user input only), per-user caps, one
 * connection per (user, instance, machine, channel), and exactly one close with a reason the page
 * can show. Lab events close the sockets of a lab that stops, pauses or expires.
 */
import { randomBytes } from 'node:crypto';
import type { WebSocket, RawData } from 'ws';
import { releaseSocketSeat, renewSocketSeats, SEAT_TTL_MS, socketSeatId, takeSocketSeat } from '../store/SocketSeat.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { LabEvent, LabRuntime } from '../labs/contracts.js';
import { AppError, wsCloseFor } from '../errors.js';
import type { TicketClaims } from './tickets.js';
import type { ChannelKind } from '../backends/types.js';
import { RfbClientFilter } from './rfbClientFilter.js';
import { CLOSE } from '../closeCodes.js';
import { UpstreamFanout, type FanoutSubscriber } from './UpstreamFanout.js';
import { lastLines } from './consoleText.js';

export { CLOSE } from '../closeCodes.js';

/** What the proxy needs of the lab runtime. */
export type ProxyRuntime = Pick<LabRuntime, 'get' | 'openChannel' | 'subscribe' | 'noteActivity'>;

export interface ChannelProxyOptions {
  runtime: ProxyRuntime;
  log: Logger;
  metrics: Metrics;
  pingIntervalMs: number;
  /** No user input for this long closes the socket. */
  idleTimeoutMs: number;
  maxPerUser: number;
  /** How long a socket's seat counts after its replica stopped renewing it (default SEAT_TTL_MS). */
  seatTtlMs?: number;
  /** Bytes queued towards the browser before the machine side is paused. */
  highWaterBytes?: number;
  /** Bytes of a console's recent output replayed to each socket that joins it (default 16 KiB). */
  consoleHistoryBytes?: number;
  /** Whether a user who does not own the lab controls it now (a teacher's accepted take-over). */
  mayControl?: (instanceId: string, userId: string) => Promise<boolean>;
}

const CONSOLE_HISTORY_BYTES = 16 * 1024;
const NOTE_ACTIVITY_EVERY_MS = 5_000;

export class ChannelProxy {
  private readonly sessions = new Set<ProxySession>();
  /** Shared console connections by instance/machine, from the first request until they end. */
  private readonly consoles = new Map<string, UpstreamFanout>();
  private readonly replica = randomBytes(6).toString('hex');
  private seq = 0;
  private renewal: NodeJS.Timeout | undefined;
  private readonly joinListeners = new Set<() => void>();
  private readonly seatTtlMs: number;
  constructor(readonly o: ChannelProxyOptions) {
    this.seatTtlMs = o.seatTtlMs ?? SEAT_TTL_MS;
  }

  /** Calls `listener` each time a session joins (its seat counted, its fanout requested); returns the unsubscribe. */
  onJoin(listener: () => void): () => void {
    this.joinListeners.add(listener);
    return () => { this.joinListeners.delete(listener); };
  }

  /**
   * The machine side for a session: a private one for a desktop, the shared one for a console. Nothing
   * is dialed here; the caller requests membership at once and opens it after its checks.
   */
  fanoutFor(c: TicketClaims): UpstreamFanout {
    const highWater = this.o.highWaterBytes ?? 1 << 20;
    const dial = () => this.o.runtime.openChannel(c.instance, c.machine, c.channel);
    if (c.channel !== 'console') return new UpstreamFanout({ dial, shared: false, highWater });
    const key = `${c.instance}/${c.machine}`;
    const known = this.consoles.get(key);
    if (known) return known;
    const created = new UpstreamFanout({
      dial, shared: true, highWater, historyBytes: this.o.consoleHistoryBytes ?? CONSOLE_HISTORY_BYTES,
      onEnded: () => { if (this.consoles.get(key) === created) this.consoles.delete(key); },
    });
    this.consoles.set(key, created);
    return created;
  }

  /**
   * The last lines of each console of these labs that someone has open on this replica (from the
   * shared console's history: nothing is dialed for it), by instance id.
   */
  consoleTails(instanceIds: readonly string[], lines = 6): Map<string, { machine: string; lines: string[] }> {
    const want = new Set(instanceIds);
    const out = new Map<string, { machine: string; lines: string[] }>();
    for (const [key, fanout] of this.consoles) {
      const [instance, machine] = key.split('/') as [string, string];
      if (!want.has(instance) || out.has(instance)) continue;
      const text = lastLines(fanout.recent(), lines);
      if (text.length) out.set(instance, { machine, lines: text });
    }
    return out;
  }

  /** The desktop or console last opened (not view-only) on this replica, per lab. */
  private readonly used = new Map<string, { machine: string; channel: ChannelKind }>();

  private noteUsed(instance: string, machine: string, channel: ChannelKind): void {
    this.used.delete(instance); // oldest first: the map forgets the labs not used for longest
    this.used.set(instance, { machine, channel });
    if (this.used.size > 10_000) this.used.delete(this.used.keys().next().value!);
  }

  /** The machine and channel of this lab its student last opened here, if any. */
  lastUsed(instanceId: string): { machine: string; channel: ChannelKind } | undefined {
    return this.used.get(instanceId);
  }

  /** Open sessions (optionally of one user), for caps and tests. */
  count(user?: string): number {
    let n = 0;
    for (const s of this.sessions) if (!user || s.claims.user === user) n++;
    return n;
  }

  /**
   * Serve an upgraded socket whose ticket was verified and consumed. Checks ownership and the
   * per-user cap before dialing the machine. The new session counts in its fanout before an older
   * socket of the same seat is closed, so that close can never end the upstream the new one shares.
   */
  async attach(ws: WebSocket, claims: TicketClaims): Promise<void> {
    // nothing from the browser is read (or lost) while the seat is counted
    ws.pause();
    const s = new ProxySession(this, ws, claims);
    let same = [...this.sessions].find((x) => x.sameSeat(claims));
    if (!same && this.count(claims.user) >= this.o.maxPerUser) return s.close(CLOSE.tooMany);
    if (!same) {
      // the cap counts the user's sockets on every replica (a lab's sockets all reach one replica; a user's labs need not)
      // one row per screen, held by this socket (a row of the same screen left by a replica that died is taken over)
      const seat = { id: socketSeatId(claims.user, claims.instance, claims.machine, claims.channel), owner: `${this.replica}-${++this.seq}` };
      let taken: boolean;
      try {
        taken = await takeSocketSeat(seat.id, claims.user, this.o.maxPerUser, new Date(), this.seatTtlMs, seat.owner);
      } catch (err) {
        this.o.log.warn({ err }, 'ws.seat_failed');
        return s.close(CLOSE.internal); // the page reconnects by itself with a fresh ticket
      }
      if (!taken) return s.close(CLOSE.tooMany);
      if (ws.readyState !== ws.OPEN) {
        // the browser left while the seat was counted
        releaseSocketSeat(seat.id, seat.owner).catch((err: unknown) => this.o.log.warn({ err }, 'ws.seat_release_failed'));
        return;
      }
      s.seat = seat;
      same = [...this.sessions].find((x) => x.sameSeat(claims)); // opened meanwhile
    }
    if (same && !s.seat) {
      // the same screen again: its seat moves to the newer socket (the older one closes without giving it back)
      s.seat = same.seat;
      same.seat = undefined;
    }
    s.request(this.fanoutFor(claims));
    this.sessions.add(s);
    if (claims.mode !== 'view') this.noteUsed(claims.instance, claims.machine, claims.channel);
    for (const l of [...this.joinListeners]) l();
    this.renewSeats();
    s.onClosed = () => {
      this.sessions.delete(s);
      if (s.seat) releaseSocketSeat(s.seat.id, s.seat.owner).catch((err: unknown) => this.o.log.warn({ err }, 'ws.seat_release_failed'));
    };
    same?.close(CLOSE.otherTab);
    await s.start();
  }

  /** Keeps this replica's seats alive while it has sockets (a dead replica's seats expire). */
  private renewSeats(): void {
    if (this.renewal) return;
    this.renewal = setInterval(() => {
      const seats = [...this.sessions].map((x) => x.seat).filter((x): x is { id: string; owner: string } => x !== undefined);
      if (!seats.length) {
        clearInterval(this.renewal);
        this.renewal = undefined;
        return;
      }
      renewSocketSeats(seats.map((x) => x.id), new Date(), this.seatTtlMs, seats.map((x) => x.owner)).catch((err: unknown) => this.o.log.warn({ err }, 'ws.seat_renew_failed'));
    }, this.seatTtlMs / 3);
    this.renewal.unref();
  }

  closeAll(c: { code: number; reason: string } = CLOSE.shutdown): void {
    clearInterval(this.renewal);
    this.renewal = undefined;
    for (const s of [...this.sessions]) s.close(c);
  }
}

type LabelledCounter = ReturnType<Metrics['wsBytes']['labels']>;

/**
 * A session's log lines carry its lab, machine, channel and mode. Not a logger child: a child per
 * open socket costs more memory than the rest of an idle session's state, for five lines in its life.
 */
class SessionLog {
  constructor(private readonly log: Logger, private readonly c: TicketClaims) {}
  info(msg: string, o: object = {}): void {
    this.log.info(this.fields(o), msg);
  }
  warn(msg: string, o: object = {}): void {
    this.log.warn(this.fields(o), msg);
  }
  private fields(o: object): object {
    return { instance: this.c.instance, machine: this.c.machine, channel: this.c.channel, mode: this.c.mode, ...o };
  }
}

/** connecting: checks and dial under way (nothing read from the browser); open: piping; closed: for good. */
export type SessionState = 'connecting' | 'open' | 'closed';

class ProxySession implements FanoutSubscriber {
  onClosed: (() => void) | undefined;
  /** Its row in the shared per-user count (moved to the newer socket when the same screen opens again). */
  seat: { id: string; owner: string } | undefined;
  private current: SessionState = 'connecting';
  private fanout: UpstreamFanout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private alive = true;
  private lastNote = 0;
  private counted = false;
  private queuedBytes = 0;
  private readonly filter: RfbClientFilter | undefined;
  private readonly log: SessionLog;
  private readonly bytes = { up: 0, down: 0 };
  /** The byte counters of this session's channel, looked up once (not per frame). */
  private readonly counters: { toBrowser: LabelledCounter; toMachine: LabelledCounter };
  readonly controls: boolean;

  constructor(private readonly proxy: ChannelProxy, private readonly ws: WebSocket, readonly claims: TicketClaims) {
    this.log = new SessionLog(proxy.o.log, claims);
    this.filter = claims.channel === 'vnc' ? new RfbClientFilter(claims.mode === 'view') : undefined;
    this.controls = claims.mode === 'control';
    const { wsBytes } = proxy.o.metrics;
    this.counters = { toBrowser: wsBytes.labels(claims.channel, 'to_browser'), toMachine: wsBytes.labels(claims.channel, 'to_machine') };
  }

  sameSeat(c: TicketClaims): boolean {
    const m = this.claims;
    return m.user === c.user && m.instance === c.instance && m.machine === c.machine && m.channel === c.channel;
  }

  get state(): SessionState {
    return this.current;
  }

  /** Counts this session in `fanout` from now until it closes. */
  request(fanout: UpstreamFanout): void {
    this.fanout = fanout;
    fanout.request(this);
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
      this.log.info('ws.client_error', { err: err.message });
      this.close({ code: 1002, reason: 'protocol error' });
    });
    this.ws.on('pong', () => { this.alive = true; });
    this.timers.push(setInterval(() => this.ping(), pingIntervalMs));
    if (c.sessionExp !== undefined) {
      this.timers.push(setTimeout(() => this.close(CLOSE.sessionExpired), Math.min(2 ** 31 - 1, Math.max(0, c.sessionExp - Date.now()))));
    }
    this.resetIdle();
    this.unsubscribe = runtime.subscribe(c.instance, (e) => this.onLabEvent(e));
    const fanout = this.fanout;
    if (!fanout) throw new Error('a session starts after requesting its fanout');
    try {
      const inst = await runtime.get(c.instance);
      if (!inst) return this.close(CLOSE.notFound);
      if (c.mode === 'control' && inst.userId !== c.user && !(await this.proxy.o.mayControl?.(c.instance, c.user))) return this.close(CLOSE.notYourLab);
      if (this.current !== 'connecting') return;
      await fanout.open(this);
    } catch (err) {
      const reason = err instanceof AppError ? err.publicMessage : 'could not reach the machine';
      if (!(err instanceof AppError)) this.log.warn('ws.dial_failed', { err });
      return this.close({ code: wsCloseFor(err), reason });
    }
    if (this.current !== 'connecting') return; // closed while dialing (the fanout let it go then)
    this.current = 'open';
    this.ws.on('message', (data: RawData) => this.fromBrowser(fanout, toBuffer(data)));
    this.ws.resume();
    this.log.info('ws.opened', { shared: fanout.shared && fanout.receiverCount > 1 });
  }

  queued(): number {
    return this.queuedBytes;
  }

  deliver(chunk: Buffer): void {
    if (this.current === 'closed') return;
    this.bytes.down += chunk.length;
    this.counters.toBrowser.inc(chunk.length);
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
    if (this.current !== 'open') return;
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
    this.counters.toMachine.inc(forward.length);
    if (!up.write(forward)) {
      this.ws.pause();
      up.onceDrain(() => { if (this.current === 'open') this.ws.resume(); });
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
    // a take-over ended: the teacher's controlling sockets close (the page reconnects watching)
    if (e.type === 'takeover' && e.state === 'ended' && this.claims.mode === 'control' && this.claims.user === e.by) return this.close(CLOSE.takeoverEnded);
    if (e.type !== 'state') return;
    if (e.state === 'stopped' || e.state === 'destroyed' || e.state === 'failed') this.close(CLOSE.labStopped);
    else if (e.state === 'paused') this.close(CLOSE.labPaused);
    else if (e.state === 'expired') this.close(CLOSE.labExpired);
  }

  /** The one way out: idempotent, releases everything, tells the browser why (once). */
  close(c: { code: number; reason: string }, o: { terminate?: boolean; fromClient?: boolean } = {}): void {
    if (this.current === 'closed') return;
    this.current = 'closed';
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
    this.log.info('ws.closed', { code: c.code, reason: c.reason, bytesToMachine: this.bytes.up, bytesToBrowser: this.bytes.down });
  }
}

function toBuffer(d: RawData): Buffer {
  if (Buffer.isBuffer(d)) return d;
  if (Array.isArray(d)) return Buffer.concat(d);
  return Buffer.from(d);
}
