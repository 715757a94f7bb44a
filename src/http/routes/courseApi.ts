/**
 * GET /api/courses/:contextId/instances — the teacher's overview of a course: every student's lab
 * with its state, step progress and time left, a raised hand, and whether the student may be stuck
 * (a raised hand, or no progress for 10 minutes). Instructors (and administrators) of that course
 * only; a learner is refused. POST /api/courses/:contextId/messages sends a teacher's message.
 */
import express, { type Router } from 'express';
import type { SessionTokens } from '../../auth/session.js';
import { requireInstructor } from '../../auth/session.js';
import { BadRequest, NotFound } from '../../errors.js';
import { courseOf } from './labAccess.js';
import { LabInstance, type LabInstanceDoc } from '../../store/LabInstance.js';
import { stepScore } from '../../labs/score.js';
import type { LabCatalogCache } from '../../labs/LabCatalogCache.js';
import type { CheckRunner } from '../../labs/checks/CheckRunner.js';
import type { Classroom } from '../../labs/Classroom.js';
import type { LabRuntime } from '../../labs/contracts.js';

export interface CourseApiDeps {
  sessions: SessionTokens;
  /** Live events of the course's labs (the overview's event stream). */
  runtime?: Pick<LabRuntime, 'subscribe'>;
  /** How often the course stream looks for labs started since it opened (default 10 s). */
  relistMs?: number;
  /** The last console lines of the running labs (a glance for the teacher; courseGlance.ts). */
  consoleTails?: (docs: readonly LabInstanceDoc[]) => Promise<Map<string, { machine: string; lines: string[] }>>;
  catalog: LabCatalogCache;
  /**
   * The machine whose screen thumbnail the lab's card shows (route thumbnailRoutes.ts), when the
   * backend takes them; none when the card shows the console's lines (`tail`) instead.
   */
  screenOf?: (inst: LabInstanceDoc, tail?: { machine: string; lines: string[] }) => Promise<string | undefined>;
  /** Display names for user ids (from the launches), when the LTI module provides them. */
  userNames?: (userIds: string[]) => Promise<Record<string, string>>;
  /** Automatic checks: which each student passed and when (labs that have checks). */
  checks?: Pick<CheckRunner, 'overview'>;
  /** Raised hands and the teacher's messages. */
  classroom?: Classroom;
  /** Every learner of the course (the platform's roster), or null when the platform offers none. */
  learners?: (contextId: string) => Promise<Array<{ userId: string | null; name: string }> | null>;
}

/** A running lab with no new step or passed check for this long is shown as possibly stuck. */
export const STUCK_AFTER_MS = 10 * 60_000;

/**
 * Why a student may be stuck, or null: a raised hand, or a running lab without progress (no step
 * ticked, no check passed) for STUCK_AFTER_MS since the last progress or the start.
 */
function stuckReason(inst: LabInstanceDoc, hand: unknown, passedAts: string[], now: number): { reason: 'hand' | 'no-progress'; sinceMs: number } | null {
  if (hand) return { reason: 'hand', sinceMs: 0 };
  if (inst.state !== 'running') return null;
  const times = [...Object.values(inst.steps ?? {}).map((x) => new Date(x).getTime()), ...passedAts.map((x) => new Date(x).getTime())];
  const last = Math.max(inst.startedAt ? new Date(inst.startedAt).getTime() : 0, ...times);
  return last > 0 && now - last >= STUCK_AFTER_MS ? { reason: 'no-progress', sinceMs: now - last } : null;
}

export function courseApiRouter(d: CourseApiDeps): Router {
  const r = express.Router();
  r.get('/api/courses/:contextId/instances', d.sessions.require(), requireInstructor(), (req, res, next) => {
    void (async () => {
      const contextId = courseOf(req);
      const docs = (await LabInstance.find({ contextId, warmSession: null }).sort({ createdAt: 1 }).limit(2000).lean()) as LabInstanceDoc[];
      const names = d.userNames ? await d.userNames([...new Set(docs.map((x) => x.userId))]).catch(() => ({})) : {};
      const checks = d.checks ? await d.checks.overview(docs).catch(() => undefined) : undefined;
      const roster = d.learners ? await d.learners(contextId).catch(() => null) : null;
      const hands = d.classroom ? await d.classroom.hands(contextId).catch(() => undefined) : undefined;
      const tails = d.consoleTails ? await d.consoleTails(docs).catch(() => undefined) : undefined;
      const started = new Set(docs.map((x) => x.userId));
      const notStarted = roster ? roster.filter((m) => !m.userId || !started.has(m.userId)).map((m) => ({ userId: m.userId, name: m.name })) : null;
      const now = Date.now();
      const rows = await Promise.all(docs.map(async (inst) => {
        const steps = await d.catalog.steps(inst).catch(() => undefined);
        const s = steps ? stepScore(steps.grading, steps.steps, inst.steps ?? {}) : undefined;
        return {
          id: inst._id, userId: inst.userId, name: (names as Record<string, string>)[inst.userId] ?? null, labId: inst.labId, activityId: inst.activityId,
          state: inst.state, progress: inst.progress,
          steps: s ? { ticked: s.ticked, total: s.total, percent: s.maxWeight > 0 ? Math.round((100 * s.weight) / s.maxWeight) : 0 } : null,
          expiresAt: inst.expiresAt, secondsLeft: inst.expiresAt ? Math.max(0, Math.round((new Date(inst.expiresAt).getTime() - now) / 1000)) : null,
          lastActivityAt: inst.lastActivityAt,
          storageGiB: inst.storageGiB ?? null,
          checks: checks?.get(inst._id) ?? null,
          hand: hands?.get(inst._id) ?? null,
          console: tails?.get(inst._id) ?? null,
          screen: d.screenOf && (inst.state === 'running' || inst.state === 'paused') ? (await d.screenOf(inst, tails?.get(inst._id)).catch(() => undefined)) ?? null : null,
          stuck: stuckReason(inst, hands?.get(inst._id), (checks?.get(inst._id)?.list ?? []).map((p) => p.passedAt), now),
        };
      }));
      res.setHeader('Cache-Control', 'no-store');
      res.json({ contextId, serverTime: new Date(now).toISOString(), instances: rows, notStarted });
    })().catch(next);
  });
  // the overview's live stream: which lab of the course changed (state, steps, checks, a hand), so the page reloads it at once
  r.get('/api/courses/:contextId/events', d.sessions.require(), requireInstructor(), (req, res, next) => {
    void (async () => {
      const contextId = courseOf(req);
      if (!d.runtime) throw new NotFound('no live events', { publicMessage: 'Live updates are not available here.' });
      const runtime = d.runtime;
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
      res.flushHeaders();
      const send = (e: object) => res.write(`data: ${JSON.stringify(e)}\n\n`);
      const subs = new Map<string, () => void>();
      const relist = async () => {
        const ids = (await LabInstance.find({ contextId, warmSession: null }, { _id: 1 }).limit(2000).lean()).map((x) => x._id);
        for (const id of ids) {
          if (subs.has(id)) continue;
          subs.set(id, runtime.subscribe(id, (e) => {
            if (e.type === 'state' || e.type === 'steps' || e.type === 'check' || e.type === 'hand') send({ type: e.type, instanceId: e.instanceId });
          }));
        }
      };
      await relist();
      send({ type: 'hello' });
      const timer = setInterval(() => void relist().catch(() => undefined), d.relistMs ?? 10_000);
      const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      req.on('close', () => {
        clearInterval(timer);
        clearInterval(beat);
        for (const u of subs.values()) u();
      });
    })().catch(next);
  });

  // a teacher's message to one lab of the course (instanceId) or to every lab of it
  r.post('/api/courses/:contextId/messages', d.sessions.require(), requireInstructor(), express.json({ limit: '16kb' }), (req, res, next) => {
    void (async () => {
      const contextId = courseOf(req);
      if (!d.classroom) throw new NotFound('no classroom', { publicMessage: 'Messages are not available here.' });
      const body = (req.body ?? {}) as { text?: unknown; instanceId?: unknown };
      if (body.instanceId !== undefined && typeof body.instanceId !== 'string') throw new BadRequest('instanceId must be text');
      const sent = await d.classroom.send(contextId, req.session?.name ?? 'Teacher', body.text, body.instanceId);
      res.status(201).json(sent);
    })().catch(next);
  });
  return r;
}
