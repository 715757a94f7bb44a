/**
 * Login states this process wrote, kept until used or expired. The id_token POST usually comes
 * back to the replica that answered its login, which then reads nothing; another replica (or this
 * one after a restart) reads the database. Either way the used-nonce record stays the once-only
 * gate: an entry taken from here is only what the database holds.
 *
 * Beside a login, what the login started for its launch (`early`: a read, see launch.ts's
 * prefetchAtLogin) is kept for a few seconds: a launch that comes later reads afresh, and a flood
 * of logins nobody completes holds at most EARLY_MAX of them.
 */
import type { LoginStateDoc } from '../store/LtiLogin.js';

const MAX = 50_000;
/** How long what a login started is handed to its launch (a platform answers a login at once). */
export const EARLY_MS = 5_000;
const EARLY_MAX = 1_000;

export class RecentLogins {
  private readonly logins = new Map<string, LoginStateDoc>();
  private readonly early = new Map<string, { value: unknown; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  add(doc: LoginStateDoc, early?: unknown): void {
    this.logins.set(doc._id, doc);
    // every login lives equally long: the oldest come first in a Map's insertion order
    for (const [id, d] of this.logins) {
      if (this.logins.size <= MAX && d.expiresAt.getTime() > this.now()) break;
      this.logins.delete(id);
    }
    if (early === undefined) return;
    const now = this.now();
    this.early.set(doc._id, { value: early, at: now });
    for (const [id, e] of this.early) {
      if (this.early.size <= EARLY_MAX && now - e.at < EARLY_MS) break;
      this.early.delete(id);
    }
  }

  /**
   * The login of this state and what it started (undefined after EARLY_MS), both removed from
   * here (a second post of the state reads the database).
   */
  take(state: string): { doc: LoginStateDoc; early: unknown } | undefined {
    const doc = this.logins.get(state);
    const e = this.early.get(state);
    this.early.delete(state);
    if (!doc) return undefined;
    this.logins.delete(state);
    return { doc, early: e && this.now() - e.at < EARLY_MS ? e.value : undefined };
  }
}
