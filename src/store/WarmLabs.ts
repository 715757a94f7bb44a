/**
 * The labs prepared for a warm session ("pool labs"): LabInstance records owned by no student
 * (userId `warm:<session>:<n>`, `warmSession` set), provisioned like any lab. A student takes one
 * by ONE insert into a unique key: the claim (pool lab, round). FerretDB 1.x has no transactions,
 * and its findAndModify does not re-check the filter against a concurrent writer, so a conditional
 * update cannot be the arbiter; a duplicate-key error can. Giving a claim back bumps the pool
 * lab's round, so the next claim is a new key. `claimedBy`/`claimedGen`/`claimedAt` on the pool
 * record mirror the winning claim for queries. What follows the claim (the student's record
 * adopting the handle) is a compare-and-set on the generation the claim recorded, which anyone may
 * finish or, once that generation has passed, undo (see labs/WarmHandout.ts).
 */
import { LabInstance, newInstanceId, updateInstance, type LabInstanceDoc } from './LabInstance.js';
import mongoose, { Schema } from 'mongoose';
import { isDuplicateKey, retryUpsert } from './database.js';
import { cancelledAmong } from './WarmSession.js';
import type { ExpiryRule } from './ExpirySweeper.js';

export interface WarmClaimDoc {
  /** `<pool lab id>:<round>`: the unique key a claim is. */
  _id: string;
  pool: string;
  round: number;
  /** The student's instance id, or UNUSED_POOL_LAB. */
  taker: string;
  /** The taker's generation when it claimed. */
  gen: number | null;
  at: Date;
}

const claimSchema = new Schema<WarmClaimDoc>(
  { _id: { type: String, required: true }, pool: { type: String, required: true }, round: { type: Number, required: true }, taker: { type: String, required: true }, gen: { type: Number, default: null }, at: { type: Date, required: true } },
  { versionKey: false },
);
claimSchema.index({ at: 1 });
export const WarmClaim = mongoose.model<WarmClaimDoc>('WarmClaim', claimSchema, 'warm_claims');
/**
 * A claim decides a hand-out once; afterwards only recovery reads it (claims of the last day). A
 * week on, its pool lab is long handed out or gone: the sweeper removes it.
 */
export const warmClaimExpiryRules: ExpiryRule[] = [{ collection: 'warm_claims', field: 'at', kind: 'maxAge', maxAgeMs: 7 * 86_400_000 }];

/** The unique key of a pool lab's claim in its current round. */
const claimKey = (pool: Pick<LabInstanceDoc, '_id' | 'claimRound'>): string => `${pool._id}:${pool.claimRound ?? 0}`;

/** Insert the claim of round `round` of a pool lab; false when someone else holds it. */
async function insertClaim(pool: string, round: number, taker: string, gen: number | null, at: Date): Promise<boolean> {
  try {
    await WarmClaim.create({ _id: claimKey({ _id: pool, claimRound: round }), pool, round, taker, gen, at });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/** `claimedBy` of a pool lab withdrawn from the pool (the session ended before anyone took it). */
export const UNUSED_POOL_LAB = 'unused';

export function poolUserId(sessionId: string, n: number): string {
  return `warm:${sessionId}:${n}`;
}

/** Pool lab n of a session, created if missing (exactly one per (session, n): the (activity, user) unique index). */
export async function ensurePoolLab(k: { sessionId: string; n: number; activityId: string; contextId: string; labId: string; labVersion: string }): Promise<LabInstanceDoc> {
  const doc = await retryUpsert(() => LabInstance.findOneAndUpdate(
    { activityId: k.activityId, userId: poolUserId(k.sessionId, k.n) },
    { $setOnInsert: { _id: newInstanceId(), contextId: k.contextId, labId: k.labId, labVersion: k.labVersion, state: 'requested', warmSession: k.sessionId, claimedBy: null, claimedGen: null, claimedAt: null } },
    { upsert: true, new: true, lean: true },
  ));
  if (!doc) throw new Error('upsert returned no document');
  return doc as LabInstanceDoc;
}

/** Where claimPoolLab finds the pool labs it tries, one at a time. */
export interface PoolLabSource {
  /** A pool lab of this activity and version to try to claim; undefined when there is none. */
  next(activityId: string, labVersion: string): Promise<LabInstanceDoc | undefined>;
}

/**
 * Read afresh before each try: a lab picked at random among those no claim names yet (a running
 * one, else one still provisioning). Reads run side by side, while every insert, won or lost, waits
 * for SQLite's one writer on FerretDB, so picking among the unclaimed keeps lost tries rare.
 */
export const freshPoolLab: PoolLabSource = {
  async next(activityId, labVersion) {
    const free = await unclaimedPoolLabs(activityId, labVersion);
    return free ? free[Math.floor(Math.random() * free.length)] : undefined;
  },
};

/** The free pool labs no claim names yet: the running ones, else those still provisioning; undefined when none. */
export async function unclaimedPoolLabs(activityId: string, labVersion: string): Promise<LabInstanceDoc[] | undefined> {
  return (await unclaimed(await freePoolLabs(activityId, labVersion, 'running'))) ?? (await unclaimed(await freePoolLabs(activityId, labVersion, 'provisioning')));
}

/**
 * Claim a free pool lab of the activity at this lab version for `taker` (its record at generation
 * `gen`): a running one, or, when none runs yet, one still provisioning (the taker finishes it).
 * What `source` offers may be stale: the claim's insert decides, a lost try (another launch took
 * that lab, or it left the pool) moves to the next lab, and the caller reads the lab it won afresh.
 */
export async function claimPoolLab(activityId: string, labVersion: string, taker: string, gen: number, at: Date, source: PoolLabSource = freshPoolLab): Promise<LabInstanceDoc | null> {
  for (let attempt = 0; attempt < 256; attempt++) {
    const c = await source.next(activityId, labVersion);
    if (!c) return null;
    const round = c.claimRound ?? 0;
    if (!(await insertClaim(c._id, round, taker, gen, at))) continue;
    await updateInstance(c._id, { claimRound: round }, { $set: { claimedBy: taker, claimedGen: gen, claimedAt: at } });
    return { ...c, claimedBy: taker, claimedGen: gen, claimedAt: at, claimRound: round };
  }
  return null;
}

/** Those of `labs` whose current round nobody has claimed (their `claimedBy` is written just after the claim); undefined when none. */
async function unclaimed(labs: LabInstanceDoc[] | undefined): Promise<LabInstanceDoc[] | undefined> {
  if (!labs) return undefined;
  const taken = new Set((await WarmClaim.find({ _id: { $in: labs.map(claimKey) } }, { _id: 1 }).lean()).map((x) => x._id));
  const left = labs.filter((c) => !taken.has(claimKey(c)));
  return left.length > 0 ? left : undefined;
}

/** Free pool labs in this state (with a handle), leaving out cancelled sessions' (the warm duty destroys those); undefined when none. */
async function freePoolLabs(activityId: string, labVersion: string, state: 'running' | 'provisioning'): Promise<LabInstanceDoc[] | undefined> {
  const found = (await LabInstance.find({ activityId, warmSession: { $ne: null }, claimedBy: null, state, labVersion, handle: { $ne: null } }).limit(64).lean()) as LabInstanceDoc[];
  const cancelled = await cancelledAmong([...new Set(found.map((p) => p.warmSession!))]);
  const free = found.filter((p) => !cancelled.has(p.warmSession!));
  return free.length > 0 ? free : undefined;
}

/** Give a claimed, not yet handed-out pool lab back to the pool (the next claim is a new round). */
export async function releasePoolLab(pool: Pick<LabInstanceDoc, '_id'>, round: number): Promise<boolean> {
  return (await updateInstance(pool._id, { claimRound: round, state: { $in: ['running', 'provisioning', 'failed'] } }, { $set: { claimedBy: null, claimedGen: null, claimedAt: null, claimRound: round + 1 } })) !== null;
}

/** The taker's record now holds the pool lab's handle: the pool record lets go of it (it never destroys it). */
export async function retirePoolLab(pool: Pick<LabInstanceDoc, '_id'>, round: number, taker: string): Promise<boolean> {
  return (await updateInstance(pool._id, { claimRound: round, state: { $in: ['running', 'provisioning'] } }, { $set: { state: 'destroyed', handle: null, claimedBy: taker } })) !== null;
}

/** Take a free pool lab out of the pool for good (before destroying it), so no launch can claim it meanwhile. */
export async function withdrawPoolLab(pool: Pick<LabInstanceDoc, '_id' | 'claimRound'>, at: Date): Promise<LabInstanceDoc | null> {
  const round = pool.claimRound ?? 0;
  if (!(await insertClaim(pool._id, round, UNUSED_POOL_LAB, null, at))) return null;
  return (await LabInstance.findOneAndUpdate({ _id: pool._id }, { $set: { claimedBy: UNUSED_POOL_LAB, claimedAt: at } }, { new: true, lean: true })) as LabInstanceDoc | null;
}

/** Every pool lab of a session. */
export async function sessionPoolLabs(sessionId: string): Promise<LabInstanceDoc[]> {
  return (await LabInstance.find({ warmSession: sessionId }).lean()) as LabInstanceDoc[];
}

/**
 * Claims by students whose pool lab still holds the handle at that round (a hand-out in flight,
 * or one a crash cut short), made between `since` and `before`.
 */
export async function pendingClaims(since: Date, before: Date): Promise<Array<{ claim: WarmClaimDoc; pool: LabInstanceDoc }>> {
  const claims = (await WarmClaim.find({ at: { $gte: since, $lte: before }, taker: { $ne: UNUSED_POOL_LAB } }).lean()) as WarmClaimDoc[];
  if (claims.length === 0) return [];
  const pools = (await LabInstance.find({ _id: { $in: claims.map((c) => c.pool) }, state: { $in: ['running', 'provisioning'] } }).lean()) as LabInstanceDoc[];
  const byId = new Map(pools.map((p) => [p._id, p]));
  return claims.flatMap((claim) => {
    const pool = byId.get(claim.pool);
    return pool && (pool.claimRound ?? 0) === claim.round ? [{ claim, pool }] : [];
  });
}

/** Counts per session: labs ready now, handed out, withdrawn unused. */
export async function poolCounts(sessionIds: string[]): Promise<Map<string, { ready: number; preparing: number; handedOut: number; wasted: number }>> {
  const out = new Map<string, { ready: number; preparing: number; handedOut: number; wasted: number }>();
  const docs = (await LabInstance.find({ warmSession: { $in: sessionIds } }, { warmSession: 1, state: 1, claimedBy: 1 }).lean()) as LabInstanceDoc[];
  for (const d of docs) {
    const c = out.get(d.warmSession!) ?? { ready: 0, preparing: 0, handedOut: 0, wasted: 0 };
    if (d.claimedBy === UNUSED_POOL_LAB) c.wasted++;
    else if (d.claimedBy) c.handedOut += d.state === 'destroyed' ? 1 : 0;
    else if (d.state === 'running') c.ready++;
    else if (d.state === 'provisioning' || d.state === 'requested') c.preparing++;
    out.set(d.warmSession!, c);
  }
  return out;
}
