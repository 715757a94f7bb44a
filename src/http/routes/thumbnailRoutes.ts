/**
 * GET /api/courses/:contextId/instances/:instanceId/screen — a small PNG of the screen of the
 * machine the student last used, for the teacher's overview. Teachers (and administrators) of that
 * course only: a student is refused (403) even for their own lab, since their own page shows the
 * live desktop. Screenshots are taken only on request and at a bounded rate (labs/Thumbnails.ts).
 */
import express, { type Router } from 'express';
import type { SessionTokens } from '../../auth/session.js';
import { requireInstructor } from '../../auth/session.js';
import { Conflict, NotFound } from '../../errors.js';
import { courseOf } from './labAccess.js';
import { LabInstance } from '../../store/LabInstance.js';
import type { Thumbnails } from '../../labs/Thumbnails.js';
import { glanceMachine, type GlanceDeps } from './courseGlance.js';

export interface ThumbnailRouteDeps extends GlanceDeps {
  sessions: SessionTokens;
  thumbnails: Thumbnails;
}

export function thumbnailRouter(d: ThumbnailRouteDeps): Router {
  const r = express.Router();
  r.get('/api/courses/:contextId/instances/:instanceId/screen', d.sessions.require(), requireInstructor(), (req, res, next) => {
    void (async () => {
      const contextId = courseOf(req);
      const inst = await LabInstance.findOne({ _id: String(req.params.instanceId), contextId }).lean();
      if (!inst) throw new NotFound('no such lab in this course', { publicMessage: 'That lab is not in this course.' });
      if (inst.state !== 'running' && inst.state !== 'paused') throw new Conflict(`instance ${inst._id} is ${inst.state}`, { publicMessage: `The lab is not running (it is ${inst.state}).` });
      const machine = await glanceMachine(d, inst, 'vnc');
      if (!machine) throw new NotFound(`lab ${inst.labId} has no screen`, { publicMessage: 'This lab has no desktop.' });
      const t = await d.thumbnails.get(inst._id, machine);
      res.setHeader('Content-Type', 'image/png');
      res.setHeader('Cache-Control', 'private, no-store');
      res.setHeader('X-Machine', machine);
      res.setHeader('X-Taken-At', new Date(t.at).toISOString());
      res.end(t.png);
    })().catch(next);
  });
  return r;
}
