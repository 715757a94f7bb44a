/**
 * Warm sessions of a course: POST /api/courses/:contextId/warm-sessions schedules one (labs prepared
 * before the start, handed out at launch), GET lists them with their pool's counts, DELETE
 * /api/courses/:contextId/warm-sessions/:id cancels one that has not ended (the warm duty destroys
 * its labs nobody took; handed-out labs stay the students'). The course overview's rule:
 * instructors (and administrators) of that course only.
 */
import express, { type Router } from 'express';
import type { SessionTokens } from '../../auth/session.js';
import { requireInstructor } from '../../auth/session.js';
import { Conflict, NotFound } from '../../errors.js';
import { courseOf } from './labAccess.js';
import { scheduleWarmSession, type ScheduleDeps } from '../../labs/warmSchedule.js';
import { cancelWarmSession, courseWarmSessions, type WarmSessionDoc } from '../../store/WarmSession.js';
import { poolCounts } from '../../store/WarmLabs.js';

export interface WarmSessionRouteDeps extends ScheduleDeps {
  sessions: SessionTokens;
}

function view(s: WarmSessionDoc, c?: { ready: number; preparing: number; handedOut: number; wasted: number }) {
  return {
    id: s._id, activityId: s.activityId, labId: s.labId, startsAt: s.startsAt, endsAt: s.endsAt, expected: s.expected, state: s.cancelledAt ? 'cancelled' : s.state,
    cancelledAt: s.cancelledAt ?? null,
    ready: c?.ready ?? 0, preparing: c?.preparing ?? 0, handedOut: c?.handedOut ?? 0, wasted: c?.wasted ?? 0,
  };
}

export function warmSessionRoutes(d: WarmSessionRouteDeps): Router {
  const r = express.Router();
  const path = '/api/courses/:contextId/warm-sessions';
  r.post(path, d.sessions.require(), requireInstructor(), express.json({ limit: '4kb' }), (req, res, next) => {
    void (async () => {
      const contextId = courseOf(req);
      const body = (req.body ?? {}) as Record<string, unknown>;
      const activityId = typeof body.activityId === 'string' && body.activityId ? body.activityId : req.session?.activityId;
      const s = await scheduleWarmSession({
        contextId, activityId: activityId ?? '', createdBy: req.session!.userId, startsAt: body.startsAt, expected: body.expected, durationMinutes: body.durationMinutes,
      }, d);
      res.status(201).json({ ...view(s), requested: s.requested });
    })().catch(next);
  });
  r.get(path, d.sessions.require(), requireInstructor(), (req, res, next) => {
    void (async () => {
      const list = await courseWarmSessions(courseOf(req));
      const counts = await poolCounts(list.map((s) => s._id));
      res.setHeader('Cache-Control', 'no-store');
      res.json({ sessions: list.map((s) => view(s, counts.get(s._id))) });
    })().catch(next);
  });
  r.delete(`${path}/:id`, d.sessions.require(), requireInstructor(), (req, res, next) => {
    void (async () => {
      const contextId = courseOf(req);
      const s = await cancelWarmSession(contextId, String(req.params.id), req.session!.userId, d.now?.() ?? new Date());
      if (!s) throw new NotFound(`warm session ${String(req.params.id)} not in course ${contextId}`, { publicMessage: 'This class session is not part of this course.' });
      if (!s.cancelledAt) throw new Conflict(`warm session ${s._id} is ${s.state}`, { publicMessage: 'This class session is already over.' });
      const counts = await poolCounts([s._id]);
      res.json(view(s, counts.get(s._id)));
    })().catch(next);
  });
  return r;
}
