/**
 * Our ids of users and activities by their platform keys, remembered after a launch. Both are
 * fixed once created (records are never deleted or re-keyed), so a warm launch can look for the
 * user's instance in the same round trip as it updates the user and the activity. A wrong entry
 * cannot do harm: the launch compares what the upserts return and starts over without it.
 */
const MAX = 20_000;

export class LaunchIds {
  private readonly ids = new Map<string, string>();

  get(key: string): string | undefined {
    return this.ids.get(key);
  }

  set(key: string, id: string): void {
    if (this.ids.get(key) === id) return;
    this.ids.set(key, id);
    // oldest first: a Map iterates in insertion order
    if (this.ids.size > MAX) this.ids.delete(this.ids.keys().next().value as string);
  }
}
