/**
 * FerretDB 1.x on SQLite answers a filter from its primary key only when the filter is `{_id}`
 * alone: any other key (a guard such as `generation: 3` beside the id, or a unique pair such as
 * activity and user) reads and decodes every document of the collection, and an update does that
 * before its write. A class launching at once then queues forty such scans of the lab records.
 * FerretDB checks an update's filter on what it read, not again at its write (there is no
 * compare-and-set on it), so on FerretDB a guarded write of one record is done the same way
 * without the scan: read the record by id, check the guard here, write by id. On MongoDB the guard
 * stays in the filter, where the server applies it atomically.
 */

let idOnly = false;

/** Set once at connect: true when the server is FerretDB. */
export function setIdOnlyFilters(on: boolean): void {
  idOnly = on;
}

/** True when writes of one record should name it by id alone and check their guard here. */
export function idOnlyFilters(): boolean {
  return idOnly;
}

/** A guard as our writes use them: equality (null also matching a missing field), `$in` and `$ne`. */
export type Guard = Record<string, unknown>;

type Scalar = string | number | boolean | null;

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** MongoDB's equality on scalars: a null in the filter matches a missing field too. */
function equals(have: unknown, want: Scalar): boolean {
  return want === null ? have === null || have === undefined : have === want;
}

/** Whether `doc` passes `guard`, as MongoDB would decide it. Throws on anything else than the operators above. */
export function matchesGuard(doc: Record<string, unknown>, guard: Guard): boolean {
  for (const [key, want] of Object.entries(guard)) {
    const have = doc[key];
    if (isScalar(want)) {
      if (!equals(have, want)) return false;
      continue;
    }
    if (typeof want !== 'object' || Object.getPrototypeOf(want) !== Object.prototype) throw new TypeError(`guard on ${key}: unsupported value`);
    const ops = Object.entries(want as Record<string, unknown>);
    if (ops.length === 0) throw new TypeError(`guard on ${key}: empty condition`);
    for (const [op, arg] of ops) {
      if (op === '$in' && Array.isArray(arg) && arg.every(isScalar)) {
        if (!arg.some((a) => equals(have, a as Scalar))) return false;
      } else if (op === '$ne' && isScalar(arg)) {
        if (equals(have, arg as Scalar)) return false;
      } else {
        throw new TypeError(`guard on ${key}: unsupported condition ${op}`);
      }
    }
  }
  return true;
}
