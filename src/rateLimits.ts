/**
 * Rate limits per user and per platform, held for the whole tool however many replicas serve it.
 *
 * Counted in one-minute windows of numbered slots in a SlotStore (store/RateSlots.ts: one
 * document per claimed slot, `<key>@<window>#<n>`). Claiming a slot is an insert of a unique id,
 * atomic on FerretDB 1.x (which has no transactions and whose `$inc` loses counts under
 * concurrency), and every database access is by `_id` (the only lookup FerretDB's SQLite backend
 * answers without scanning the collection). A window has perMinute/B slots and each slot stands
 * for B uses (B = perMinute/20, at least 1): a replica claims a slot and spends its B uses
 * locally, so a class of 40 launching at once costs a couple of inserts, not 40 contended ones.
 * Within a clock minute a limit is never exceeded; over a sliding minute a replica may spend the
 * rest of a slot claimed in the previous window (at most B-1 more). It is exact for the small
 * per-user limits where B is 1, where every use claims a slot: one insert in the usual case,
 * with no read (see claimSlot).
 *
 * The previous window still counts, weighted by how much of it lies in the last minute (a
 * sliding minute: no double burst at a window edge). Past the limit: TooManyRequests (429) with
 * Retry-After. A refused use claims nothing.
 *
 * Sizing (defaults, per minute): launches 10 per user, 600 per platform; websocket tickets 60 per
 * user, 2400 per platform; check runs 600 per platform (per user: CHECK_RATE_PER_MINUTE, counted
 * by the check runner's own sliding window). A class of 40 at once costs 40 launches and ~4
 * tickets each (two machines, desktop and console): a fifteenth of the platform's launch budget
 * and a fifteenth of its ticket budget. Several classes of one school starting in the same
 * minute still pass; one user or one platform hammering the tool does not.
 */
import { TooManyRequests } from './errors.js';
import { KeyedMutex } from './KeyedMutex.js';

export const RATE_WINDOW_MS = 60_000;

/** Numbered slots per key and window, shared by every replica. */
export interface SlotStore {
  /** The highest slot known to be claimed for key in the window (0 when none); may lag behind, never ahead. */
  highest(key: string, windowStart: number): Promise<number>;
  /** Claim slot n; false when another claim has it. */
  claim(key: string, windowStart: number, n: number, expiresAt: Date): Promise<boolean>;
  /** Record that slot n is claimed (raises highest()). */
  noteHighest(key: string, windowStart: number, n: number, expiresAt: Date): Promise<void>;
  /** Give back slot n, claimed by a use that was then refused. */
  release(key: string, windowStart: number, n: number): Promise<void>;
}

/** Slots in this process only (unit tests, or a tool without a database). */
export class MemorySlots implements SlotStore {
  private readonly slots = new Map<string, number>();
  private readonly top = new Map<string, number>();
  highest(key: string, windowStart: number): Promise<number> {
    return Promise.resolve(this.top.get(`${key}@${windowStart}`) ?? 0);
  }
  claim(key: string, windowStart: number, n: number, expiresAt: Date): Promise<boolean> {
    const id = `${key}@${windowStart}#${n}`;
    if (this.slots.has(id)) return Promise.resolve(false);
    this.slots.set(id, expiresAt.getTime());
    if (this.slots.size > 10_000) for (const [k, e] of this.slots) if (e <= windowStart) this.slots.delete(k);
    return Promise.resolve(true);
  }
  release(key: string, windowStart: number, n: number): Promise<void> {
    this.slots.delete(`${key}@${windowStart}#${n}`);
    return Promise.resolve();
  }
  noteHighest(key: string, windowStart: number, n: number): Promise<void> {
    const k = `${key}@${windowStart}`;
    this.top.set(k, Math.max(n, this.top.get(k) ?? 0));
    if (this.top.size > 10_000) for (const t of this.top.keys()) if (Number(t.slice(t.lastIndexOf('@') + 1)) < windowStart - RATE_WINDOW_MS) this.top.delete(t);
    return Promise.resolve();
  }
}

/** What this process knows of a key's slots in one window. */
interface Known {
  windowStart: number;
  /** The highest slot known to be claimed in the window (this process's claims, or a hint read after a lost claim). */
  top: number;
  /** This process's highest claim of the previous window: it counts even before its hint is written. */
  prevOwn: number;
  /** The previous window's highest slot, read once, when a claim's decision needs it. */
  prevTop?: Promise<number>;
  /** The same, once read. */
  prevValue?: number;
}

/** One limit: at most `perMinute` uses per key in any minute. */
export class RateLimit {
  /** Uses per slot. */
  readonly perSlot: number;
  private readonly slotsPerWindow: number;
  /** The slot this process holds per key: its window and the uses left in it. */
  private readonly held = new Map<string, { windowStart: number; left: number }>();
  private readonly known = new Map<string, Known>();
  private readonly lock = new KeyedMutex();

  constructor(
    readonly perMinute: number,
    private readonly what: string,
    private readonly slots: SlotStore,
    private readonly scope: string,
    private readonly now: () => number = Date.now,
  ) {
    this.perSlot = Math.max(1, Math.floor(perMinute / 20));
    this.slotsPerWindow = Math.floor(perMinute / this.perSlot);
  }

  /** Count one use for key, or throw TooManyRequests with the seconds until one would pass. */
  take(key: string): Promise<void> {
    const k = `${this.scope}\n${key}`;
    return this.lock.run(k, async () => {
      const t = this.now();
      const windowStart = t - (t % RATE_WINDOW_MS);
      const h = this.held.get(k);
      // the rest of a slot claimed in this or the previous window (the previous one counts it whole)
      if (h && h.left > 0 && windowStart - h.windowStart <= RATE_WINDOW_MS) {
        h.left--;
        return;
      }
      await this.claimSlot(k, key, t, windowStart);
    });
  }

  /** What this process knows of key in the window (nothing read yet for a new one). */
  private knownFor(k: string, windowStart: number): Known {
    const had = this.known.get(k);
    if (had?.windowStart === windowStart) return had;
    const known: Known = { windowStart, top: 0, prevOwn: had?.windowStart === windowStart - RATE_WINDOW_MS ? had.top : 0 };
    this.known.set(k, known);
    if (this.known.size > 10_000) {
      for (const [x, v] of this.known) if (v.windowStart < windowStart) this.known.delete(x);
      // still full within one window: the oldest go first (a take without them claims from slot 1 again)
      for (const x of this.known.keys()) {
        if (this.known.size <= 10_000) break;
        this.known.delete(x);
      }
    }
    return known;
  }

  /** The previous window's highest slot: read once per window (a failed read is read again by the next take). */
  private prevTop(k: string, known: Known): Promise<number> {
    known.prevTop ??= this.slots.highest(k, known.windowStart - RATE_WINDOW_MS).then(
      (read) => (known.prevValue = Math.max(read, known.prevOwn)),
      (err: unknown) => {
        known.prevTop = undefined;
        throw err;
      },
    );
    return known.prevTop;
  }

  private maxSlot(prevTop: number, t: number, windowStart: number): number {
    const inside = 1 - (t - windowStart) / RATE_WINDOW_MS;
    return Math.min(this.slotsPerWindow, Math.floor((this.perMinute - prevTop * this.perSlot * inside) / this.perSlot));
  }

  /**
   * Claim the next slot, one past the highest this process knows: one insert in the usual case,
   * with no read. The previous window is read only when its weight could refuse that slot (early
   * in a window; once per window), and then beside the claim, which is given back if the use is
   * refused; once it is known, a spent budget refuses without a write. A claim lost to another
   * replica reads the hint and goes on past it.
   */
  private async claimSlot(k: string, key: string, t: number, windowStart: number): Promise<void> {
    // a window's slots are read during the next window too: they expire after both
    const expiresAt = new Date(windowStart + 2 * RATE_WINDOW_MS);
    const known = this.knownFor(k, windowStart);
    // the slots that pass now even after a previous window claimed to the full
    const surely = this.maxSlot(this.slotsPerWindow, t, windowStart);
    for (;;) {
      const n = known.top + 1;
      if (n > this.slotsPerWindow) this.refuse(key, n, known.prevValue ?? 0, t, windowStart);
      // what passes for sure now: with the previous window known, exactly; without it, `surely`
      const max = known.prevValue === undefined ? surely : this.maxSlot(known.prevValue, t, windowStart);
      if (n <= max) {
        if (await this.slots.claim(k, windowStart, n, expiresAt)) return this.hold(k, known, windowStart, n, expiresAt);
      } else if (known.prevValue !== undefined) {
        this.refuse(key, n, known.prevValue, t, windowStart);
      } else {
        const [won, prevTop] = await Promise.all([this.slots.claim(k, windowStart, n, expiresAt), this.prevTop(k, known)]);
        const fits = n <= this.maxSlot(prevTop, t, windowStart);
        if (won && fits) return this.hold(k, known, windowStart, n, expiresAt);
        // refused: a refused use claims nothing
        if (won) await this.slots.release(k, windowStart, n);
        if (!fits) this.refuse(key, n, prevTop, t, windowStart);
      }
      // slot n is another replica's: every slot up to it is taken
      known.top = Math.max(n, await this.slots.highest(k, windowStart));
    }
  }

  /** Slot n is this process's: its uses are spent here, and the hint is raised once the take is answered. */
  private hold(k: string, known: Known, windowStart: number, n: number, expiresAt: Date): void {
    known.top = Math.max(known.top, n);
    // once the use's caller has gone on (its answer first); a hint that stays low only costs a
    // later claim a lost try (see SlotStore.highest)
    setImmediate(() => { this.slots.noteHighest(k, windowStart, n, expiresAt).catch(() => undefined); });
    this.held.set(k, { windowStart, left: this.perSlot - 1 });
    if (this.held.size > 10_000) for (const [x, v] of this.held) if (v.windowStart < windowStart - RATE_WINDOW_MS) this.held.delete(x);
  }

  /** Slot n would pass once enough of the previous window has slid out, or in the next window. */
  private refuse(key: string, n: number, prevTop: number, t: number, windowStart: number): never {
    const prevUses = prevTop * this.perSlot;
    const passAt = n > this.slotsPerWindow || prevUses === 0
      ? windowStart + RATE_WINDOW_MS
      : windowStart + RATE_WINDOW_MS * (1 - (this.perMinute - n * this.perSlot) / prevUses);
    const wait = Math.max(1, Math.ceil((passAt - t) / 1000));
    throw new TooManyRequests(`rate limit: ${this.what} for ${key}`, wait, {
      publicMessage: `Too many ${this.what}: at most ${this.perMinute} a minute. Try again in ${wait} s.`,
    });
  }
}

/** A per-user and a per-platform limit on one kind of request. */
export class UserAndPlatformLimit {
  readonly user: RateLimit;
  readonly platform: RateLimit;

  constructor(o: { what: string; scope: string; perUser: number; perPlatform: number; slots: SlotStore; now?: () => number }) {
    this.user = new RateLimit(o.perUser, o.what, o.slots, `${o.scope}:user`, o.now);
    this.platform = new RateLimit(o.perPlatform, `${o.what} from this platform`, o.slots, `${o.scope}:platform`, o.now);
  }

  /**
   * Count one request by `user` of `platform` (a platform id; unknown for sessions issued before
   * sessions named their platform). The user's limit is checked first, so one user hammering
   * never uses up the platform's budget.
   */
  async take(user: string, platform: string | undefined): Promise<void> {
    await this.user.take(platform ? `${platform}\n${user}` : user);
    if (platform) await this.platform.take(platform);
  }
}

export interface RateLimitSettings {
  launchPerUser: number;
  launchPerPlatform: number;
  ticketPerUser: number;
  ticketPerPlatform: number;
  checkPerPlatform: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  launchPerUser: 10,
  launchPerPlatform: 600,
  ticketPerUser: 60,
  ticketPerPlatform: 2400,
  checkPerPlatform: 600,
};

/** The tool's limits: LTI launches, websocket tickets, check runs. */
export class RateLimits {
  readonly launch: UserAndPlatformLimit;
  readonly ticket: UserAndPlatformLimit;
  /** Check runs of a platform's students (each student's own limit is the check runner's). */
  readonly checkPerPlatform: RateLimit;

  constructor(s: Partial<RateLimitSettings> = {}, slots: SlotStore = new MemorySlots(), now?: () => number) {
    const c = { ...DEFAULT_RATE_LIMITS, ...s };
    const n = now ? { now } : {};
    this.launch = new UserAndPlatformLimit({ what: 'launches', scope: 'launch', perUser: c.launchPerUser, perPlatform: c.launchPerPlatform, slots, ...n });
    this.ticket = new UserAndPlatformLimit({ what: 'connections', scope: 'ticket', perUser: c.ticketPerUser, perPlatform: c.ticketPerPlatform, slots, ...n });
    this.checkPerPlatform = new RateLimit(c.checkPerPlatform, 'checks from this platform', slots, 'check:platform', now);
  }
}
