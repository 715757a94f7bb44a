/**
 * Serializes async sections per key (not re-entrant). FerretDB 1.x runs an update as read-modify-
 * write without a transaction, so two concurrent updates of one document can lose one of them:
 * every write of an instance record in this process goes through here. Across processes, the
 * decisive step (claiming a generation) is a unique-index insert, which the database does enforce.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
