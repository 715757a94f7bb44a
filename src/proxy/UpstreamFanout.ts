/**
 * One connection to a machine channel shared by the sockets watching it. QEMU (and a container's
 * terminal) serve one console client at a time — a second dial would cut the first — so a
 * teacher watching a console and the student typing in it share one upstream: output goes to
 * every subscriber, input comes only from controlling ones. A desktop (RFB is a stateful protocol
 * per client) gets a fanout of its own per socket.
 *
 * Membership is counted when a subscriber asks for it (`request`), not when it starts receiving
 * (`open`): a socket that is still being checked or still waiting for the dial keeps the upstream
 * alive, so a session closing while another one is on its way cannot empty the fanout under it.
 * The dial starts on the first `open` (after the subscriber's checks passed); the fanout ends when
 * its last member leaves (the upstream is destroyed now, or as soon as a dial in flight arrives),
 * when the machine side ends, or when the dial fails. An ended fanout is never reused.
 *
 * History: a shared console keeps the tail of its output (ReplayBuffer) and replays it to each
 * subscriber before its live output, so a student or a teacher who connects sees the last prompt.
 *
 * Backpressure: a controlling subscriber whose queue towards the browser passes the high-water
 * mark pauses the machine side until it drains. A view-only subscriber of a shared console never
 * holds the student back: past the mark it skips output instead (a viewer of a private desktop
 * must not skip — RFB bytes cannot be dropped — so it applies backpressure like an owner).
 */
import type { Duplex } from 'node:stream';
import { ReplayBuffer } from './ReplayBuffer.js';

export interface FanoutSubscriber {
  /** Whether this subscriber's input goes to the machine. */
  readonly controls: boolean;
  /** Bytes queued towards the browser. */
  queued(): number;
  /** Send machine output to the browser. */
  deliver(chunk: Buffer): void;
  /** The machine side is gone (or never came). */
  upstreamEnded(): void;
}

/** idle: members, no dial yet; connecting: dial in flight; open: upstream there; ended: for good. */
export type FanoutState = 'idle' | 'connecting' | 'open' | 'ended';

export interface UpstreamFanoutOptions {
  /** Opens the machine side; called at most once. */
  dial: () => Promise<Duplex>;
  /** A shared console (slow viewers skip output) rather than a private desktop. */
  shared: boolean;
  /** Bytes queued towards one browser before the machine side is paused. */
  highWater: number;
  /** Bytes of output kept and replayed to each new receiver of a shared console (0: none). */
  historyBytes?: number;
  /** Called once, when the fanout ends (its owner forgets it then). */
  onEnded?: () => void;
}

export class UpstreamFanout {
  private readonly members = new Set<FanoutSubscriber>();
  private readonly receivers = new Set<FanoutSubscriber>();
  /** Members that left: whatever happens afterwards is no longer their business. */
  private readonly departed = new WeakSet<FanoutSubscriber>();
  private current: FanoutState = 'idle';
  private up: Duplex | undefined;
  private dialing: Promise<Duplex> | undefined;
  private paused = false;
  private readonly history: ReplayBuffer;

  constructor(private readonly o: UpstreamFanoutOptions) {
    this.history = new ReplayBuffer(o.shared ? o.historyBytes ?? 0 : 0);
  }

  get shared(): boolean {
    return this.o.shared;
  }

  get state(): FanoutState {
    return this.current;
  }

  /** Subscribers counted (asked, not yet left), whether or not they receive yet. */
  get memberCount(): number {
    return this.members.size;
  }

  /** Subscribers receiving output. */
  get receiverCount(): number {
    return this.receivers.size;
  }

  /** Counts `s` as a member from now on; the fanout lives at least until `s` leaves. */
  request(s: FanoutSubscriber): void {
    if (this.current !== 'ended') this.members.add(s);
  }

  /**
   * Dials the machine side if nobody did yet, waits for it, then lets `s` receive output. A member
   * that left meanwhile is not added and hears nothing; any other whose fanout ended hears
   * `upstreamEnded`. Rejects with the dial's error (the fanout has ended then).
   */
  async open(s: FanoutSubscriber): Promise<void> {
    if (this.current === 'idle' && this.members.has(s)) this.startDial();
    if (this.dialing) await this.dialing;
    if (this.departed.has(s)) return;
    if (this.current !== 'open' || !this.members.has(s)) return s.upstreamEnded();
    const recent = this.history.replay();
    if (recent.length) s.deliver(recent);
    this.receivers.add(s);
  }

  /** The recent output kept for joiners (a shared console's history; empty otherwise). */
  recent(): Buffer {
    return this.history.replay();
  }

  /** A member left; the last one ends the fanout and closes the machine side. */
  leave(s: FanoutSubscriber): void {
    this.receivers.delete(s);
    if (!this.members.delete(s)) return;
    this.departed.add(s);
    if (this.members.size === 0) this.end(false);
    else this.updatePause();
  }

  /** Called by a subscriber whose queue shrank. */
  drained(): void {
    this.updatePause();
  }

  /** Input from a controlling receiver; false when the machine side asks to wait for `onceDrain`. */
  write(b: Buffer): boolean {
    return this.up ? this.up.write(b) : true;
  }

  onceDrain(cb: () => void): void {
    if (this.up) this.up.once('drain', cb);
    else cb();
  }

  private startDial(): void {
    this.current = 'connecting';
    const dialing = this.o.dial();
    this.dialing = dialing;
    dialing.then(
      (up) => {
        if (this.current === 'ended') return destroyQuietly(up); // every member left while it dialed
        this.up = up;
        this.current = 'open';
        this.wire(up);
      },
      () => this.end(false), // each waiting member gets the error from its own open()
    );
  }

  private wire(up: Duplex): void {
    up.on('data', (chunk: Buffer) => {
      this.history.push(chunk);
      for (const s of this.receivers) {
        if (this.o.shared && !s.controls && s.queued() > this.o.highWater) continue; // a slow viewer skips output
        s.deliver(chunk);
      }
      this.updatePause();
    });
    const gone = () => this.end(true);
    up.on('end', gone);
    up.on('close', gone);
    up.on('error', gone);
  }

  /** Ends for good: the machine side is closed; `tell` reports it to the receivers (they are still here). */
  private end(tell: boolean): void {
    if (this.current === 'ended') return;
    this.current = 'ended';
    if (this.up) destroyQuietly(this.up);
    const receivers = [...this.receivers];
    this.receivers.clear();
    this.members.clear();
    this.o.onEnded?.();
    if (tell) for (const s of receivers) s.upstreamEnded();
  }

  private updatePause(): void {
    if (!this.up) return;
    let over = false;
    let belowLow = true;
    for (const s of this.receivers) {
      if (this.o.shared && !s.controls) continue;
      const q = s.queued();
      if (q > this.o.highWater) over = true;
      if (q > this.o.highWater / 2) belowLow = false;
    }
    if (over && !this.paused) {
      this.paused = true;
      this.up.pause();
    } else if (this.paused && belowLow && this.current === 'open') {
      this.paused = false;
      this.up.resume();
    }
  }
}

function destroyQuietly(up: Duplex): void {
  up.on('error', () => undefined); // some Duplex kinds report their own destroy as an error
  up.destroy();
}
