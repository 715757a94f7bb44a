/**
 * One connection to a machine channel shared by the sockets watching it. QEMU (and a container's
 * terminal) serve one console client at a time — a second dial would cut the first — so a
 * teacher watching a console and the student typing in it share one upstream: output goes to
 * every subscriber, input comes only from controlling ones. A desktop (RFB is a stateful protocol
 * per client) gets a fanout of its own per socket.
 *
 * Backpressure: a controlling subscriber whose queue towards the browser passes the high-water
 * mark pauses the machine side until it drains. A view-only subscriber of a shared console never
 * holds the student back: past the mark it skips output instead (a viewer of a private desktop
 * must not skip — RFB bytes cannot be dropped — so it applies backpressure like an owner).
 */
import type { Duplex } from 'node:stream';

export interface FanoutSubscriber {
  /** Whether this subscriber's input goes to the machine. */
  readonly controls: boolean;
  /** Bytes queued towards the browser. */
  queued(): number;
  /** Send machine output to the browser. */
  deliver(chunk: Buffer): void;
  /** The machine side is gone. */
  upstreamEnded(): void;
}

export class UpstreamFanout {
  private readonly subs = new Set<FanoutSubscriber>();
  private paused = false;
  private ended = false;

  constructor(readonly up: Duplex, readonly shared: boolean, private readonly highWater: number, private readonly onEmpty: () => void) {
    up.on('data', (chunk: Buffer) => {
      for (const s of this.subs) {
        if (this.shared && !s.controls && s.queued() > this.highWater) continue; // a slow viewer skips output
        s.deliver(chunk);
      }
      this.updatePause();
    });
    const end = () => {
      if (this.ended) return;
      this.ended = true;
      for (const s of [...this.subs]) s.upstreamEnded();
      this.subs.clear();
      this.onEmpty();
    };
    up.on('end', end);
    up.on('close', end);
    up.on('error', end);
  }

  get size(): number {
    return this.subs.size;
  }

  join(s: FanoutSubscriber): void {
    if (this.ended) {
      queueMicrotask(() => s.upstreamEnded());
      return;
    }
    this.subs.add(s);
  }

  /** A subscriber left; the last one closes the machine side. */
  leave(s: FanoutSubscriber): void {
    if (!this.subs.delete(s)) return;
    if (this.subs.size === 0) {
      this.ended = true;
      this.up.on('error', () => undefined); // some Duplex kinds report their own destroy as an error
      this.up.destroy();
      this.onEmpty();
    } else this.updatePause();
  }

  /** Called by a subscriber whose queue shrank. */
  drained(): void {
    this.updatePause();
  }

  write(b: Buffer): boolean {
    return this.up.write(b);
  }

  private updatePause(): void {
    let over = false;
    let belowLow = true;
    for (const s of this.subs) {
      if (this.shared && !s.controls) continue;
      const q = s.queued();
      if (q > this.highWater) over = true;
      if (q > this.highWater / 2) belowLow = false;
    }
    if (over && !this.paused) {
      this.paused = true;
      this.up.pause();
    } else if (this.paused && belowLow && !this.ended) {
      this.paused = false;
      this.up.resume();
    }
  }
}
