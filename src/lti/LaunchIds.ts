/**
 * What a launch remembers from earlier launches in this process:
 * - our ids of users, activities and each user's instance of an activity, by their platform keys.
 *   They are fixed once created (users and activities are never deleted or re-keyed), so a warm
 *   launch can read the user's instance by its id in the same round trip as the rest. A wrong or
 *   stale entry cannot do harm: the launch compares what it reads with what it expects and falls
 *   back to the full lookup.
 * - the user and activity records this process wrote in the last minute, with the fields it wrote:
 *   a launch that would write the very same fields again takes the record from here instead of
 *   writing it. Another replica may have written other fields meanwhile (a platform that changed a
 *   name, a teacher's new settings): a launch carrying them differs from what is remembered here
 *   and writes; only a change reverted within the minute on another replica can go unwritten
 *   here until then.
 */
const MAX = 20_000;
const RECENT_MS = 60_000;

export class LaunchIds {
  private readonly ids = new Map<string, string>();
  private readonly written = new Map<string, { fields: string; doc: unknown; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  get(key: string): string | undefined {
    return this.ids.get(key);
  }

  set(key: string, id: string): void {
    if (this.ids.get(key) === id) return;
    this.ids.set(key, id);
    trim(this.ids);
  }

  /** The record written for key with exactly these fields within the last minute, if any. */
  recent<T>(key: string, fields: string): T | undefined {
    const w = this.written.get(key);
    if (!w || w.fields !== fields) return undefined;
    if (w.until <= this.now()) {
      this.written.delete(key);
      return undefined;
    }
    return w.doc as T;
  }

  /** Remember the record just written for key with these fields. */
  wrote(key: string, fields: string, doc: unknown): void {
    this.written.delete(key); // re-inserted last: the oldest go first
    this.written.set(key, { fields, doc, until: this.now() + RECENT_MS });
    trim(this.written);
  }
}

/** Oldest first: a Map iterates in insertion order. */
function trim(m: Map<string, unknown>): void {
  if (m.size > MAX) m.delete(m.keys().next().value as string);
}
