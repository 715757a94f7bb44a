/**
 * The check API (behind the Bearer session):
 *   POST /api/instances/:id/steps/:stepId/check   run the step's checks now (owner only) → StepRun
 *   GET  /api/instances/:id/checks                latest results and score; a teacher of the
 *                                                 course also gets each check's output excerpt
 * A student can never run or read checks of another student's lab.
 */
import express, { type Request, type Router } from 'express';
import type { SessionTokens } from '../../auth/session.js';
import { NotFound } from '../../errors.js';
import type { LabRuntime } from '../../labs/contracts.js';
import { labAccess, requireOwner } from './labAccess.js';
import type { CheckRunner } from '../../labs/checks/CheckRunner.js';

export interface CheckRoutesDeps {
  runtime: LabRuntime;
  runner: CheckRunner;
  sessions: SessionTokens;
}

type Handler = (req: Request, res: express.Response) => Promise<void>;
const wrap = (h: Handler): express.RequestHandler => (req, res, next) => void h(req, res).catch(next);

const STEP_ID = /^[A-Za-z0-9_-]{1,100}$/;

export function checkRoutes(d: CheckRoutesDeps): Router {
  const r = express.Router();
  r.post('/api/instances/:id/steps/:stepId/check', d.sessions.require(), wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    requireOwner(a);
    const stepId = String(req.params.stepId);
    if (!STEP_ID.test(stepId)) throw new NotFound(`no step ${stepId}`, { publicMessage: 'This step does not exist in the lab.', messageKey: 'err.noSuchStep' });
    const run = await d.runner.run(a.inst._id, stepId, {
      userId: req.session!.userId, ...(req.session?.name ? { userName: req.session.name } : {}), ...(req.session?.platformId ? { platformId: req.session.platformId } : {}),
    });
    res.setHeader('Cache-Control', 'no-store');
    res.json(run);
  }));
  r.get('/api/instances/:id/checks', d.sessions.require(), wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    res.setHeader('Cache-Control', 'no-store');
    res.json(await d.runner.results(a.inst, { teacher: a.mode !== 'control' }));
  }));
  return r;
}
