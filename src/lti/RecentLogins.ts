/**
 * Login states this process wrote, kept until used or expired. The id_token POST usually comes
 * back to the replica that answered its login, which then reads nothing; another replica (or this
 * one after a restart) reads the database. Either way the used-nonce record stays the once-only
 * gate: an entry taken from here is only what the database holds.
 */
import type { LoginStateDoc } from '../store/LtiLogin.js';

const MAX = 50_000;

export class RecentLogins {
  private readonly logins = new Map<string, LoginStateDoc>();

  constructor(private readonly now: () => number = Date.now) {}

  add(doc: LoginStateDoc): void {
    this.logins.set(doc._id, doc);
    // every login lives equally long: the oldest come first in a Map's insertion order
    for (const [id, d] of this.logins) {
      if (this.logins.size <= MAX && d.expiresAt.getTime() > this.now()) break;
      this.logins.delete(id);
    }
  }

  /** The login of this state, removed from here (a second post of it reads the database). */
  take(state: string): LoginStateDoc | undefined {
    const d = this.logins.get(state);
    if (d) this.logins.delete(state);
    return d;
  }
}
