/**
 * Screen thumbnails for the teacher's overview, taken only when a teacher's page asks for one: per
 * machine, at most one screenshot every `minIntervalMs` (a second teacher, or a second request
 * within the interval, gets the same image), at most `maxConcurrent` screenshots at once in this
 * process (the others wait their turn), and requests for the same machine share one screenshot.
 * Nothing runs in the background: no request, no screenshot.
 */
export interface ThumbnailOptions {
  /** Takes the screenshot (LabRuntime.screenshot). */
  take: (instanceId: string, machine: string) => Promise<Buffer>;
  minIntervalMs?: number;
  maxConcurrent?: number;
  now?: () => number;
}

export interface Thumbnail {
  png: Buffer;
  /** When it was taken (ms since the epoch). */
  at: number;
}

export const THUMBNAIL_MIN_INTERVAL_MS = 5000;
export const THUMBNAIL_MAX_CONCURRENT = 4;

export class Thumbnails {
  private readonly cache = new Map<string, Thumbnail>();
  private readonly inFlight = new Map<string, Promise<Thumbnail>>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  /** Screenshots taken (for tests and the bench). */
  taken = 0;

  constructor(private readonly o: ThumbnailOptions) {}

  private get minIntervalMs(): number {
    return this.o.minIntervalMs ?? THUMBNAIL_MIN_INTERVAL_MS;
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** The machine's thumbnail: the cached one while it is fresh, else a new one. */
  async get(instanceId: string, machine: string): Promise<Thumbnail> {
    const key = `${instanceId}/${machine}`;
    const known = this.cache.get(key);
    if (known && this.now() - known.at < this.minIntervalMs) return known;
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.take(key, instanceId, machine).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }

  private async take(key: string, instanceId: string, machine: string): Promise<Thumbnail> {
    await this.slot();
    try {
      this.taken++;
      const png = await this.o.take(instanceId, machine);
      const t = { png, at: this.now() };
      this.cache.set(key, t);
      this.forgetStale();
      return t;
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private slot(): Promise<void> {
    if (this.running < (this.o.maxConcurrent ?? THUMBNAIL_MAX_CONCURRENT)) {
      this.running++;
      return Promise.resolve();
    }
    // the finishing screenshot hands its slot over (running stays counted)
    return new Promise((resolve) => this.waiting.push(() => { this.running++; resolve(); }));
  }

  /** Images nobody asked for again within a few intervals are dropped (a closed overview keeps nothing). */
  private forgetStale(): void {
    const old = this.now() - 6 * this.minIntervalMs;
    for (const [k, t] of this.cache) if (t.at < old) this.cache.delete(k);
  }
}
