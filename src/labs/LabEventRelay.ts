/**
 * Carries lab events between replicas through the database (src/store/LabEventLog.ts): what this
 * process publishes is written as a row; while this process has subscribers, it reads the rows
 * other replicas wrote for their instances every `pollMs` and delivers each once.
 *
 * Read windows overlap by `overlapMs` (a row is stamped by its writer's clock before its insert
 * lands, and replicas' clocks differ a little), and the ids seen in the overlap are remembered, so
 * a row read twice is delivered once. A subscription receives only rows stamped after it began.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import { appendLabEvent, labEventsSince } from '../store/LabEventLog.js';
import type { LabEvent } from './contracts.js';

export interface LabEventRelayOptions {
  log: Logger;
  /** Hand a remote event to this process's subscribers (never published again). */
  deliver(event: LabEvent): void;
  /** Instances this process has subscribers for now. */
  subscribed(): string[];
  pollMs: number;
  overlapMs?: number;
  /** This replica's name in the rows (default: random). */
  origin?: string;
  now?: () => number;
}

export class LabEventRelay {
  readonly origin: string;
  private readonly overlapMs: number;
  private readonly now: () => number;
  /** Row ids delivered, with their stamp (forgotten once older than the read window). */
  private readonly seen = new Map<string, number>();
  /** When each subscribed instance was first seen subscribed (older rows are not for it). */
  private readonly since = new Map<string, number>();
  private cursor: number;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private writes = new Set<Promise<unknown>>();

  constructor(private readonly o: LabEventRelayOptions) {
    this.origin = o.origin ?? `r${randomBytes(6).toString('hex')}`;
    this.overlapMs = o.overlapMs ?? 5000;
    this.now = o.now ?? Date.now;
    this.cursor = this.now();
  }

  /** Write a local event for the other replicas (in the background; a failure is logged). */
  publish(event: LabEvent): void {
    const w = appendLabEvent(this.origin, event, new Date(this.now()))
      .catch((err: unknown) => this.o.log.warn({ err, instance: event.instanceId, type: event.type }, 'lab.event_publish_failed'))
      .finally(() => this.writes.delete(w));
    this.writes.add(w);
  }

  /** A subscription for the instance begins now: rows stamped before it are not delivered to it. */
  watch(instanceId: string): void {
    if (!this.since.has(instanceId)) this.since.set(instanceId, this.now());
  }

  start(): void {
    this.timer ??= setInterval(() => void this.poll(), this.o.pollMs);
    this.timer.unref();
  }

  /** One read of the rows other replicas wrote for the subscribed instances; never overlaps itself. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce()
      .catch((err: unknown) => this.o.log.warn({ err }, 'lab.event_poll_failed'))
      .finally(() => { this.polling = undefined; });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const started = this.now();
    const ids = this.o.subscribed();
    for (const id of this.since.keys()) if (!ids.includes(id)) this.since.delete(id);
    for (const id of ids) if (!this.since.has(id)) this.since.set(id, started);
    if (!ids.length) { this.cursor = started; this.seen.clear(); return; }
    const from = this.cursor - this.overlapMs;
    const rows = await labEventsSince(ids, this.origin, new Date(from));
    for (const row of rows) {
      const at = row.at.getTime();
      if (this.seen.has(row._id) || at < (this.since.get(row.instanceId) ?? started)) continue;
      this.seen.set(row._id, at);
      this.o.deliver(row.event as unknown as LabEvent);
    }
    // a full page means more rows wait: read on from the last one next time
    this.cursor = rows.length >= 1000 ? rows.at(-1)!.at.getTime() + this.overlapMs : started;
    for (const [id, at] of this.seen) if (at < from) this.seen.delete(id);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
    await Promise.allSettled([...this.writes]);
  }
}
