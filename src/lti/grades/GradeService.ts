/**
 * Publishes AGS scores through the durable outbox (src/store/GradeOutbox.ts).
 *
 * Contract:
 * - publish() returns once the score is written to the database; delivery happens later.
 * - Per (line item, user) entries are sent one at a time in timestamp order; an entry that fails
 *   blocks the later ones of its stream until it is delivered or rejected (never out of order).
 * - Retries use exponential backoff with jitter up to `retryMaxMs`, forever (the backlog shows in
 *   the lab_grade_outbox_* metrics). Pending entries are picked up again after a restart.
 * - Outcome of a send: 2xx delivered; 409 on a retry delivered (the platform already has this or
 *   a later score); 409 on a first try, and other 4xx except 401/408/425/429, rejected
 *   (permanent, e.g. Moodle's 400 for a teacher); 401 → token refreshed once and resent; the
 *   rest (5xx, network, token trouble) retried.
 */
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { NotFound, ValidationFailed } from '../../errors.js';
import { GradeOutbox, appendToOutbox, type GradeOutboxDoc } from '../../store/GradeOutbox.js';
import { AccessTokens } from './AccessTokens.js';
import {
  ACTIVITY_PROGRESS, AGS_SCORE_SCOPE, GRADING_PROGRESS,
  type GradeTarget, type GradeTargetResolver, type PlatformDirectory, type ScoreInput, type ToolKeyProvider,
} from './types.js';

export interface GradeServiceOptions {
  log: Logger;
  metrics?: Metrics;
  /** First retry delay; doubles per attempt. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Even with nothing due, look for work this often (entries written by other replicas). */
  pollMs?: number;
}

export interface GradePorts {
  keys?: ToolKeyProvider;
  platforms?: PlatformDirectory;
  targets?: GradeTargetResolver;
}

const LEASE_MS = 60_000;
const SEND_TIMEOUT_MS = 15_000;
const STREAM_CONCURRENCY = 4;

/** Delay before attempt `attempts + 1`: base·2^(attempts-1), capped, ±20 % jitter. */
export function retryDelayMs(attempts: number, baseMs: number, maxMs: number, random = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(Math.min(maxMs, raw * (0.8 + 0.4 * random())));
}

/** The scores URL for a line item URL: path + '/scores', query kept after it (Moodle's `?type_id=`). */
export function scoresUrl(lineItemUrl: string): string {
  const u = new URL(lineItemUrl);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/scores`;
  return u.toString();
}

export function validateScore(s: ScoreInput): void {
  const problems: string[] = [];
  if (!ACTIVITY_PROGRESS.includes(s.activityProgress)) problems.push(`activityProgress: one of ${ACTIVITY_PROGRESS.join(', ')}`);
  if (!GRADING_PROGRESS.includes(s.gradingProgress)) problems.push(`gradingProgress: one of ${GRADING_PROGRESS.join(', ')}`);
  if (s.scoreGiven !== undefined && !(Number.isFinite(s.scoreGiven) && s.scoreGiven >= 0)) problems.push('scoreGiven: a number >= 0');
  if (s.scoreGiven !== undefined && !(Number.isFinite(s.scoreMaximum) && (s.scoreMaximum ?? 0) > 0)) problems.push('scoreMaximum: a number > 0, required with scoreGiven');
  if (problems.length) throw new ValidationFailed(`invalid score: ${problems.join('; ')}`, problems);
}

type Outcome = { kind: 'delivered' } | { kind: 'rejected'; error: string } | { kind: 'retry'; error: string };

export class GradeService {
  readonly tokens: AccessTokens;
  private readonly ports: GradePorts = {};
  private readonly log: Logger;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private readonly held = new Set<string>();

  constructor(private readonly o: GradeServiceOptions) {
    this.log = o.log.child({ component: 'grades' });
    this.tokens = new AccessTokens(this.ports, this.log);
    this.baseMs = o.retryBaseMs ?? 2_000;
    this.maxMs = o.retryMaxMs ?? 600_000;
    this.pollMs = o.pollMs ?? 30_000;
    o.metrics?.onCollect(async () => {
      const pending = await GradeOutbox.find({ state: 'pending' }, { createdAt: 1 }).sort({ createdAt: 1 }).limit(1).lean();
      o.metrics?.gradeBacklog.set(await GradeOutbox.countDocuments({ state: 'pending' }));
      o.metrics?.gradeOldestPending.set(pending[0] ? (Date.now() - pending[0].createdAt.getTime()) / 1000 : 0);
    });
  }

  /** Plug in the tool side's implementations (key signing, platform lookup, instance → target). */
  use(ports: GradePorts): this {
    Object.assign(this.ports, ports);
    this.kick();
    return this;
  }

  /**
   * Write a score to the outbox and wake the worker. `target` is an instance id (resolved through
   * the GradeTargetResolver) or an explicit platform + line item + user. Throws ValidationFailed
   * for a bad score and NotFound when an instance has no grade target.
   */
  async publish(target: string | GradeTarget, score: ScoreInput): Promise<GradeOutboxDoc> {
    validateScore(score);
    let t: GradeTarget | undefined = typeof target === 'string' ? await this.ports.targets?.targetFor(target) : target;
    if (!t) throw new NotFound('no line item is known for this lab instance (no grade target)');
    const scale = t.scoreMaximum;
    t = { issuer: t.issuer, clientId: t.clientId, lineItemUrl: t.lineItemUrl, userSub: t.userSub };
    new URL(t.lineItemUrl); // throws on a malformed URL before anything is written
    const clean: ScoreInput = {
      activityProgress: score.activityProgress, gradingProgress: score.gradingProgress,
      ...(score.scoreGiven !== undefined ? onScale(score.scoreGiven, score.scoreMaximum!, scale) : {}),
      ...(score.comment !== undefined ? { comment: score.comment } : {}),
    };
    const doc = await appendToOutbox({ ...t, instanceId: typeof target === 'string' ? target : null, score: clean });
    this.log.info({ entry: String(doc._id), instance: doc.instanceId, attempts: 0 }, 'grades.queued');
    this.kick();
    return doc;
  }

  start(): void {
    this.stopped = false;
    this.kick();
  }

  /** Stop the worker, wait for an in-flight pass, and release the entries this process holds. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (this.held.size) await GradeOutbox.updateMany({ _id: { $in: [...this.held] } }, { $set: { leaseUntil: new Date(0) } });
    this.held.clear();
  }

  /** Run a pass now (or right after the current one). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    let sends = 0;
    this.running = this.pass()
      .then((n) => { sends = n; })
      .catch((err: unknown) => this.log.warn({ err }, 'grades.pass_failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        } else void this.schedule(sends > 0);
      });
  }

  /**
   * Sleep until the earliest due entry, at most pollMs. After a pass that sent nothing, sleep at
   * least a short floor: entries can be due yet not sendable (behind a stream head in backoff,
   * leased by another replica), and waking for them in a tight loop would burn CPU.
   */
  private async schedule(progressed: boolean): Promise<void> {
    if (this.stopped) return;
    let delay = this.pollMs;
    if (this.ports.keys && this.ports.platforms) {
      try {
        const next = await GradeOutbox.findOne({ state: 'pending' }, { nextAttemptAt: 1 }).sort({ nextAttemptAt: 1 }).lean();
        const floor = progressed ? 0 : Math.min(this.baseMs, 1000);
        if (next) delay = Math.min(delay, Math.max(floor, next.nextAttemptAt.getTime() - Date.now() + 5));
      } catch (err) {
        this.log.warn({ err }, 'grades.schedule_failed');
      }
    }
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), delay);
    this.timer.unref();
  }

  /** One pass: every stream with a due head entry is drained as far as it goes. Returns the number of sends. */
  private async pass(): Promise<number> {
    // until the tool side has plugged in its keys and platform lookup, sending cannot work: do not burn attempts
    if (!this.ports.keys || !this.ports.platforms) return 0;
    const due = await GradeOutbox.find({ state: 'pending', nextAttemptAt: { $lte: new Date() } }, { stream: 1 })
      .sort({ timestamp: 1 }).limit(500).lean();
    const streams = [...new Set(due.map((d) => d.stream))];
    let sends = 0;
    const workers = Array.from({ length: Math.min(STREAM_CONCURRENCY, streams.length) }, async () => {
      for (let s = streams.shift(); s !== undefined && !this.stopped; s = streams.shift()) sends += await this.drain(s);
    });
    await Promise.all(workers);
    return sends;
  }

  /** Send a stream's entries in order until one has to wait; returns the number of sends. */
  private async drain(stream: string): Promise<number> {
    let sends = 0;
    while (!this.stopped) {
      const head = await GradeOutbox.findOne({ stream, state: 'pending' }).sort({ timestamp: 1 }).lean();
      const now = new Date();
      if (!head || head.nextAttemptAt > now) return sends;
      const claimed = await GradeOutbox.findOneAndUpdate(
        { _id: head._id, state: 'pending', leaseUntil: { $lte: now } },
        { $set: { leaseUntil: new Date(now.getTime() + LEASE_MS) } },
        { new: true, lean: true },
      );
      if (!claimed) return sends; // another worker has it
      this.held.add(String(claimed._id));
      const outcome = await this.send(claimed).catch((err: unknown): Outcome => ({ kind: 'retry', error: (err as Error).message }));
      await this.record(claimed, outcome);
      this.held.delete(String(claimed._id));
      sends++;
      if (outcome.kind === 'retry') return sends;
    }
    return sends;
  }

  private async record(e: GradeOutboxDoc, outcome: Outcome): Promise<void> {
    const attempts = e.attempts + 1;
    const log = { entry: String(e._id), instance: e.instanceId, attempts };
    if (outcome.kind === 'retry') {
      const delay = retryDelayMs(attempts, this.baseMs, this.maxMs);
      const next = new Date(Date.now() + delay);
      await GradeOutbox.updateOne({ _id: e._id }, {
        $set: { attempts, nextAttemptAt: next, leaseUntil: new Date(0), lastError: outcome.error.slice(0, 500) },
      });
      // the entries queued behind it wait as long (they cannot go first), so they do not look due
      await GradeOutbox.updateMany({ stream: e.stream, state: 'pending', _id: { $ne: e._id }, nextAttemptAt: { $lt: next } }, { $set: { nextAttemptAt: next } });
      this.log.warn({ ...log, retryInMs: delay, error: outcome.error.slice(0, 200) }, 'grades.retry');
      return;
    }
    await GradeOutbox.updateOne({ _id: e._id }, {
      $set: { attempts, state: outcome.kind, deliveredAt: new Date(), leaseUntil: new Date(0), lastError: outcome.kind === 'rejected' ? outcome.error.slice(0, 500) : e.lastError },
    });
    if (outcome.kind === 'delivered') this.log.info(log, 'grades.delivered');
    else this.log.warn({ ...log, error: outcome.error.slice(0, 200) }, 'grades.rejected');
  }

  private async send(e: GradeOutboxDoc): Promise<Outcome> {
    const platform = { issuer: e.issuer, clientId: e.clientId };
    const body = JSON.stringify({
      userId: e.userSub, ...e.score, timestamp: e.timestamp.toISOString(),
    });
    const post = async (token: string) => {
      const res = await fetch(scoresUrl(e.lineItemUrl), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/vnd.ims.lis.v1.score+json' },
        body,
        signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      });
      return { status: res.status, text: (await res.text()).slice(0, 300) };
    };
    let token = await this.tokens.get(platform, AGS_SCORE_SCOPE);
    let res = await post(token);
    if (res.status === 401) {
      this.tokens.invalidate(platform, AGS_SCORE_SCOPE, token);
      token = await this.tokens.get(platform, AGS_SCORE_SCOPE);
      res = await post(token);
    }
    const s = res.status;
    if (s >= 200 && s < 300) return { kind: 'delivered' };
    if (s === 409) {
      return e.attempts > 0 ? { kind: 'delivered' } : { kind: 'rejected', error: `409: the platform has a later score: ${res.text}` };
    }
    if (s >= 400 && s < 500 && ![401, 408, 425, 429].includes(s)) return { kind: 'rejected', error: `${s}: ${res.text}` };
    return { kind: 'retry', error: `${s}: ${res.text}` };
  }
}

/** A score on the lab's scale moved to the activity's (`scale`), rounded to 3 decimals; unchanged without one. */
export function onScale(given: number, max: number, scale: number | null | undefined): { scoreGiven: number; scoreMaximum: number } {
  if (!scale || !(scale > 0) || scale === max || !(max > 0)) return { scoreGiven: given, scoreMaximum: max };
  return { scoreGiven: Math.round((given / max) * scale * 1000) / 1000, scoreMaximum: scale };
}
